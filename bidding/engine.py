"""The bid engine: every decision about a lot is one Lua script run atomically in Redis (see bidding.scripts).

`ACCEPTED` means durable when Redis runs with `appendonly yes` and `appendfsync always`: Redis fsyncs the
append-only file before it answers the script. Each accepted change appends one public event to
`events_key(lot_id)` and one private record to `lot_key(lot_id, "bids")` (the PostgreSQL consumer's source).

Outbid notices: when a bid takes the lead from someone, the engine appends `{type: outbid, lot_id, price,
at_ms}` to `notices_key(user_id)` (`user:{ID}:notices`, MAXLEN ~ 1000) right after the script. This key lives
outside the lot's hash slot, so it is written outside the script and is best effort; the durable source is the
`outbid_user_id` field of the lot's bids stream record.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from bidding import scripts
from bidding.lots import BidKind, BidReply, LotResult, LotRules, LotStatus, LotView, Rejection
from bidding.redis_mux import MuxScript, RedisMux

NOTICES_MAXLEN = 1000
# Every armed lot's id: the PostgreSQL persister reads the bids streams of these lots (bidding.persistence).
LOTS_KEY = "bidding:lots"


def lot_key(lot_id: int, part: str) -> str:
    """A key of one lot; the `{lot:ID}` hash tag keeps all of them on one Redis Cluster shard."""
    return f"{{lot:{lot_id}}}:{part}"


def events_key(lot_id: int) -> str:
    """The lot's stream of public events (price | extended | closed)."""
    return lot_key(lot_id, "events")


def bids_key(lot_id: int) -> str:
    """The lot's private stream of accepted bids, retractions and the close (for PostgreSQL persistence)."""
    return lot_key(lot_id, "bids")


def notices_key(user_id: int) -> str:
    """A buyer's stream of outbid notices."""
    return f"user:{user_id}:notices"


def idem_key(lot_id: int, user_id: int, key: str) -> str:
    """Where the first reply to (user, Idempotency-Key) is kept for 24 h."""
    return lot_key(lot_id, f"idem:{user_id}:{key}")


def rules_fields(rules: LotRules) -> dict[str, str]:
    """The lot's initial state hash: its rules and an empty (no bids) settled state."""
    return {
        "lot_id": str(rules.lot_id),
        "auction_id": str(rules.auction_id),
        "seller": str(rules.seller_user_id),
        "currency": rules.currency,
        "starting": str(rules.starting_price),
        "incs": ",".join(f"{start}:{step}" for start, step in rules.increments),
        "starts_at": str(rules.starts_at_ms),
        "ends_at": str(rules.ends_at_ms),
        "sched_end": str(rules.ends_at_ms),
        "reserve": "" if rules.reserve_price is None else str(rules.reserve_price),
        "buy_now": "" if rules.buy_now_price is None else str(rules.buy_now_price),
        "sc_ms": str(rules.soft_close_s * 1000),
        "cap_ms": str(rules.soft_close_cap_s * 1000),
        "tie": rules.tie_policy,
        "status": LotStatus.SCHEDULED.value,
        "price": str(rules.starting_price),
        "min_next": str(rules.starting_price),
        "bid_count": "0",
        "leader": "",
        "leader_max": "0",
        "leader_no": "",
        "reserve_met": "1" if rules.reserve_price is None else "0",
        "floor": "0",
        "seq": "0",
        "bidder_seq": "0",
        "outcome": "",
        "closed_at": "0",
    }


def validate_rules(rules: LotRules) -> None:
    if not rules.increments or any(step <= 0 for _, step in rules.increments):
        raise ValueError("increments must be a non-empty table of positive steps")
    starts = [start for start, _ in rules.increments]
    if starts != sorted(starts) or len(set(starts)) != len(starts):
        raise ValueError("increment bands must ascend by from_price")
    if rules.starting_price <= 0 or rules.ends_at_ms <= rules.starts_at_ms:
        raise ValueError("starting price must be positive and the lot must end after it starts")


def reply_from(data: dict[str, Any]) -> BidReply:
    reason = data.get("reason")
    return BidReply(
        status=data["status"],
        current_price=int(data["current_price"]),
        min_next_bid=int(data["min_next_bid"]),
        bid_count=int(data["bid_count"]),
        ends_at_ms=int(data["ends_at_ms"]),
        reserve_met=bool(data["reserve_met"]),
        is_leader=bool(data.get("is_leader", False)),
        reason=Rejection(reason) if reason else None,
        message=data.get("message", ""),
        bid_id=data.get("bid_id"),
        event_id=data.get("event_id"),
        ended_by_buy_now=bool(data.get("ended_by_buy_now", False)),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class BidEngine:
    """Places, retracts, opens and closes bids on lots; Redis is the only state (processes share nothing)."""

    def __init__(self, redis: aioredis.Redis, bid_path: RedisMux | None = None) -> None:
        """`bid_path`: a multiplexed connection for the bid script and its outbid notice (the hot path)."""
        self.redis = redis
        self.bid_path: aioredis.Redis | RedisMux = bid_path or redis
        self._arm: AsyncScript = redis.register_script(scripts.ARM)
        self._place: AsyncScript | MuxScript = self.bid_path.register_script(scripts.PLACE_BID)
        self._retract: AsyncScript = redis.register_script(scripts.RETRACT)
        self._open: AsyncScript = redis.register_script(scripts.OPEN_DUE)
        self._announce: AsyncScript = redis.register_script(scripts.ANNOUNCE)
        self._close: AsyncScript = redis.register_script(scripts.CLOSE_IF_DUE)
        self._reschedule: AsyncScript = redis.register_script(scripts.RESCHEDULE)
        self._withdraw: AsyncScript = redis.register_script(scripts.WITHDRAW)

    @staticmethod
    def _keys(lot_id: int) -> list[str]:
        return [lot_key(lot_id, part) for part in ("state", "maxes", "bidders", "events", "bids")]

    async def arm(self, rules: LotRules) -> None:
        """Load a lot's rules; a lot that already exists is left exactly as it is."""
        validate_rules(rules)
        await self.redis.sadd(LOTS_KEY, str(rules.lot_id))  # before the lot exists: no bid escapes the persister
        argv: list[str] = []
        for name, value in rules_fields(rules).items():
            argv += [name, value]
        await self._arm(keys=[lot_key(rules.lot_id, "state")], args=argv)

    async def place_bid(
        self,
        lot_id: int,
        user_id: int,
        amount: int,
        *,
        kind: BidKind = "max",
        now_ms: int,
        currency: str,
        idempotency_key: str | None = None,
    ) -> BidReply:
        """Place a maximum (proxy) bid or a live bid; one atomic decision, ACCEPTED or REJECTED with a reason."""
        idem = idem_key(lot_id, user_id, idempotency_key) if idempotency_key else ""
        keys = [*self._keys(lot_id), idem or lot_key(lot_id, "state")]
        raw, fresh = await self._place(
            keys=keys,
            args=[str(user_id), str(amount), kind, str(now_ms), currency, "1" if idem else "0"],
        )
        data = orjson.loads(raw)
        outbid = data.pop("outbid_user_id", None)
        if fresh and outbid is not None:
            notice = ("type", "outbid", "lot_id", lot_id, "price", data["current_price"], "at_ms", now_ms)
            await self.bid_path.execute_command(
                "XADD", notices_key(int(outbid)), "MAXLEN", "~", NOTICES_MAXLEN, "*", *notice
            )
        return reply_from(data)

    async def retract(self, lot_id: int, user_id: int, *, now_ms: int) -> BidReply:
        """Withdraw a pre-bid maximum (only while the lot is scheduled)."""
        raw = await self._retract(keys=self._keys(lot_id), args=[str(user_id), str(now_ms)])
        return reply_from(orjson.loads(raw))

    async def open_due(self, lot_id: int, now_ms: int) -> bool:
        """Open a scheduled lot whose start has passed; True when this call opened it."""
        return bool(await self._open(keys=[lot_key(lot_id, "state")], args=[str(now_ms)]))

    async def announce(self, lot_id: int, now_ms: int) -> bool:
        """Record the lot's state for the persister to publish (search learns a lot is upcoming or live, and its
        end, without waiting for a bid); False for a closed or unknown lot."""
        return bool(await self._announce(keys=[lot_key(lot_id, "state"), bids_key(lot_id)], args=[str(now_ms)]))

    async def close_if_due(self, lot_id: int, now_ms: int) -> LotResult | None:
        """Close a lot past its (possibly extended) end; exactly one caller across processes gets the result."""
        raw = await self._close(keys=self._keys(lot_id), args=[str(now_ms)])
        if raw is None:
            return None
        data = orjson.loads(raw)
        return LotResult(
            lot_id=lot_id,
            outcome=data["outcome"],
            price=int(data["price"]),
            winner_user_id=int(data["winner"]) if data["winner"] else None,
            bid_count=int(data["bid_count"]),
            closed_at_ms=int(data["closed_at_ms"]),
            events=[_text(data["event_id"])],
        )

    async def reschedule(self, lot_id: int, starts_at_ms: int, ends_at_ms: int, *, now_ms: int) -> bool:
        """New times for a lot that has not opened (its auction was moved); False when it is open, closed or
        unknown, or the times are unchanged. Pre-bids stay."""
        if ends_at_ms <= starts_at_ms:
            raise ValueError("the lot must end after it starts")
        args = [str(starts_at_ms), str(ends_at_ms), str(now_ms)]
        return bool(await self._reschedule(keys=self._keys(lot_id), args=args))

    async def withdraw(self, lot_id: int, *, now_ms: int) -> bool:
        """Close a lot whose auction was cancelled (outcome `withdrawn`, no result); False if already closed."""
        return bool(await self._withdraw(keys=self._keys(lot_id), args=[str(now_ms)]))

    async def forget(self, lot_id: int) -> None:
        """Remove a lot that no longer exists in PostgreSQL (its auction's lots were replaced before any bid)."""
        await self.redis.delete(*self._keys(lot_id))
        await self.redis.srem(LOTS_KEY, str(lot_id))

    async def view(self, lot_id: int) -> LotView | None:
        """What any buyer may see of the lot, or None for an unknown lot."""
        found = await self.view_and_leader(lot_id)
        return None if found is None else found[0]

    async def view_and_leader(self, lot_id: int) -> tuple[LotView, int | None] | None:
        """The lot's view and the user id leading it (None: nobody), from one read; None for an unknown lot."""
        raw = await self.redis.hgetall(lot_key(lot_id, "state"))
        if not raw:
            return None
        state = {_text(k): _text(v) for k, v in raw.items()}
        return view_from(state), int(state["leader"]) if state["leader"] else None


def view_from(state: dict[str, str]) -> LotView:
    status = LotStatus(state["status"])
    buy_now = int(state["buy_now"]) if state["buy_now"] else None
    return LotView(
        lot_id=int(state["lot_id"]),
        status=status,
        current_price=int(state["price"]),
        min_next_bid=int(state["min_next"]),
        bid_count=int(state["bid_count"]),
        leader_number=int(state["leader_no"]) if state["leader_no"] else None,
        reserve_met=state["reserve_met"] == "1",
        has_reserve=state["reserve"] != "",
        ends_at_ms=int(state["ends_at"]),
        currency=state["currency"],
        # buy-now is offered while nobody holds a bid (pre-bids count), as on eBay, and never after the close
        buy_now_price=buy_now if status is not LotStatus.CLOSED and not state["leader"] else None,
    )
