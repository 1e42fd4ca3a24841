"""A pure-Python model of the bid engine: the same rules as bidding.scripts, in memory, with no Redis.

Same inputs give the same `BidReply` fields (except `event_id`, a Redis stream id) and the same `LotView`.
tests/bidding/test_model_agrees.py drives both with random sequences; change the two together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bidding.lots import BidKind, BidReply, LotResult, LotRules, LotStatus, LotView, Rejection

MESSAGES = {
    Rejection.CURRENCY: "wrong currency for this lot",
    Rejection.OWN_LOT: "you cannot bid on your own lot",
    Rejection.CLOSED: "bidding has ended",
    Rejection.NOT_STARTED: "bidding has not started; place a maximum bid",
}
LOWER_WHILE_OPEN = "a maximum can only be raised once bidding is open"
LOWER_BELOW_PRICE = "a maximum cannot go below the current price"
SAME_MAX = "this is already your maximum"
BELOW_MIN_NEXT = "below the minimum next bid"
RETRACT_STARTED = "a maximum can only be retracted before the start"
NO_MAX = "you have no maximum on this lot"
UNKNOWN = BidReply("REJECTED", 0, 0, 0, 0, False, reason=Rejection.UNKNOWN_LOT, message="no such lot")


@dataclass
class MaxBid:
    amount: int
    seq: int  # the arrival number of the bid that set this maximum
    live: bool


def increment(rules: LotRules, price: int) -> int:
    """The step of the highest price band starting at or below `price` (the first band below its start)."""
    step = rules.increments[0][1]
    for start, band_step in rules.increments:
        if price < start:
            break
        step = band_step
    return step


@dataclass
class LotModel:
    """One lot's state, changed only by the same operations the scripts implement."""

    rules: LotRules
    status: LotStatus = LotStatus.SCHEDULED
    ends_at_ms: int = 0
    price: int = 0
    min_next: int = 0
    bid_count: int = 0
    leader: int | None = None
    leader_max: int = 0
    reserve_met: bool = False
    floor: int = 0  # the highest live bid: the price never goes below it
    seq: int = 0
    maxes: dict[int, MaxBid] = field(default_factory=dict)
    bidders: dict[int, int] = field(default_factory=dict)  # user -> anonymous bidder number
    outcome: str = ""
    replies: dict[tuple[int, str], BidReply] = field(default_factory=dict)  # idempotency store
    records: list[dict[str, str]] = field(default_factory=list)  # what the script appends to the bids stream
    notices: list[tuple[int, int]] = field(default_factory=list)  # (outbid user, price)

    def __post_init__(self) -> None:
        self.ends_at_ms = self.rules.ends_at_ms
        self.settle()

    def _ranks_before(self, a: MaxBid, b: MaxBid) -> bool:
        if a.amount != b.amount:
            return a.amount > b.amount
        if self.rules.tie_policy == "live_beats_proxy" and a.live != b.live:
            return a.live
        return a.seq < b.seq

    def settle(self) -> None:
        """Leader, price, minimum next bid and reserve flag from the standing maximums (as the script's settle)."""
        rules = self.rules
        best: tuple[int, MaxBid] | None = None
        for user, bid in self.maxes.items():
            if best is None or self._ranks_before(bid, best[1]):
                best = (user, bid)
        if best is None:
            self.leader, self.leader_max = None, 0
            self.price = self.min_next = rules.starting_price
            self.reserve_met = rules.reserve_price is None
            return
        leader, top = best
        others = [bid.amount for user, bid in self.maxes.items() if user != leader]
        base = rules.starting_price
        if others:
            second = max(others)
            base = max(base, second + increment(rules, second))
        base = max(base, self.floor)
        if rules.reserve_price is not None and top.amount >= rules.reserve_price:
            base = max(base, rules.reserve_price)
        self.price = min(top.amount, base)
        self.min_next = self.price + increment(rules, self.price)
        self.leader, self.leader_max = leader, top.amount
        self.reserve_met = rules.reserve_price is None or top.amount >= rules.reserve_price

    def reply(self, user_id: int, reason: Rejection | None = None, message: str = "") -> BidReply:
        return BidReply(
            status="REJECTED" if reason else "ACCEPTED",
            current_price=self.price,
            min_next_bid=self.min_next,
            bid_count=self.bid_count,
            ends_at_ms=self.ends_at_ms,
            reserve_met=self.reserve_met,
            is_leader=self.leader == user_id,
            reason=reason,
            message=message,
        )

    def effective_status(self, now_ms: int) -> LotStatus:
        if self.status is LotStatus.SCHEDULED and now_ms >= self.rules.starts_at_ms:
            return LotStatus.OPEN
        return self.status

    def check(self, user_id: int, amount: int, kind: BidKind, now_ms: int, currency: str) -> BidReply | None:
        """The rejection for this bid, or None when it is accepted."""
        status = self.effective_status(now_ms)
        rejection: Rejection | None = None
        if currency != self.rules.currency:
            rejection = Rejection.CURRENCY
        elif user_id == self.rules.seller_user_id:
            rejection = Rejection.OWN_LOT
        elif status is LotStatus.CLOSED or now_ms >= self.ends_at_ms:
            rejection = Rejection.CLOSED
        elif status is LotStatus.SCHEDULED and kind == "live":
            rejection = Rejection.NOT_STARTED
        if rejection is not None:
            return self.reply(user_id, rejection, MESSAGES[rejection])
        mine = self.maxes[user_id].amount if user_id in self.maxes else 0
        if 0 < mine and amount < mine:
            if status is not LotStatus.SCHEDULED:
                return self.reply(user_id, Rejection.LOWER_MAX, LOWER_WHILE_OPEN)
            if amount < self.price:
                return self.reply(user_id, Rejection.LOWER_MAX, LOWER_BELOW_PRICE)
        elif amount == mine:
            return self.reply(user_id, Rejection.TOO_LOW, SAME_MAX)
        elif amount < self.min_next:
            return self.reply(user_id, Rejection.TOO_LOW, BELOW_MIN_NEXT)
        return None

    def place_bid(
        self,
        user_id: int,
        amount: int,
        *,
        kind: BidKind = "max",
        now_ms: int,
        currency: str,
        idempotency_key: str | None = None,
    ) -> BidReply:
        if idempotency_key is not None and (user_id, idempotency_key) in self.replies:
            return self.replies[(user_id, idempotency_key)]
        reply = self.check(user_id, amount, kind, now_ms, currency) or self.accept(user_id, amount, kind, now_ms)
        if idempotency_key is not None:
            self.replies[(user_id, idempotency_key)] = reply
        return reply

    def accept(self, user_id: int, amount: int, kind: BidKind, now_ms: int) -> BidReply:
        rules = self.rules
        status = self.effective_status(now_ms)
        previous_leader = self.leader
        buy_now_price = rules.buy_now_price
        buy_now = (
            buy_now_price is not None and status is LotStatus.OPEN and self.leader is None and amount >= buy_now_price
        )
        self.status = status
        self.seq += 1
        self.bid_count += 1
        self.bidders.setdefault(user_id, len(self.bidders) + 1)
        self.maxes[user_id] = MaxBid(amount, self.seq, kind == "live")
        if kind == "live":
            self.floor = max(self.floor, amount)
        self.settle()
        if buy_now and buy_now_price is not None:
            self.price = buy_now_price
            self.min_next = self.price + increment(rules, self.price)
        elif status is LotStatus.OPEN and now_ms >= self.ends_at_ms - rules.soft_close_s * 1000:
            new_end = min(now_ms + rules.soft_close_s * 1000, rules.ends_at_ms + rules.soft_close_cap_s * 1000)
            self.ends_at_ms = max(self.ends_at_ms, new_end)
        bid_id = f"{rules.lot_id}-{self.seq}"
        self.records.append(
            {"type": "bid", "bid_id": bid_id, "user_id": str(user_id), "amount": str(amount), "kind": kind}
        )
        if previous_leader is not None and previous_leader != self.leader:
            self.notices.append((previous_leader, self.price))
        if buy_now:
            self.close(now_ms)
        return BidReply(**{**self.reply(user_id).__dict__, "bid_id": bid_id, "ended_by_buy_now": buy_now})

    def retract(self, user_id: int, *, now_ms: int) -> BidReply:
        if self.status is LotStatus.CLOSED or now_ms >= self.ends_at_ms:
            return self.reply(user_id, Rejection.CLOSED, MESSAGES[Rejection.CLOSED])
        if self.status is not LotStatus.SCHEDULED or now_ms >= self.rules.starts_at_ms:
            return self.reply(user_id, Rejection.LOWER_MAX, RETRACT_STARTED)
        if self.maxes.pop(user_id, None) is None:
            return self.reply(user_id, Rejection.LOWER_MAX, NO_MAX)
        self.seq += 1
        self.settle()
        bid_id = f"{self.rules.lot_id}-{self.seq}"
        self.records.append({"type": "retract", "bid_id": bid_id, "user_id": str(user_id)})
        return BidReply(**{**self.reply(user_id).__dict__, "bid_id": bid_id})

    def open_due(self, now_ms: int) -> bool:
        if self.status is not LotStatus.SCHEDULED or now_ms < self.rules.starts_at_ms:
            return False
        self.status = LotStatus.OPEN
        return True

    def close(self, now_ms: int) -> LotResult:
        reserve = self.rules.reserve_price
        if self.leader is None:
            self.outcome = "no_bids"
        elif reserve is not None and self.leader_max < reserve:
            self.outcome = "if_bid"
        else:
            self.outcome = "sold"
        self.status = LotStatus.CLOSED
        self.records.append({"type": "close", "outcome": self.outcome, "user_id": str(self.leader or "")})
        return LotResult(
            lot_id=self.rules.lot_id,
            outcome=self.outcome,  # type: ignore[arg-type]
            price=self.price,
            winner_user_id=self.leader,
            bid_count=self.bid_count,
            closed_at_ms=now_ms,
        )

    def close_if_due(self, now_ms: int) -> LotResult | None:
        if self.status is LotStatus.CLOSED or now_ms < self.ends_at_ms:
            return None
        return self.close(now_ms)

    def view(self) -> LotView:
        rules = self.rules
        return LotView(
            lot_id=rules.lot_id,
            status=self.status,
            current_price=self.price,
            min_next_bid=self.min_next,
            bid_count=self.bid_count,
            leader_number=self.bidders[self.leader] if self.leader is not None else None,
            reserve_met=self.reserve_met,
            has_reserve=rules.reserve_price is not None,
            ends_at_ms=self.ends_at_ms,
            currency=rules.currency,
            buy_now_price=rules.buy_now_price if self.status is not LotStatus.CLOSED and self.leader is None else None,
        )


@dataclass
class BidModel:
    """Many lots, with the engine's method signatures (synchronous, no Redis)."""

    lots: dict[int, LotModel] = field(default_factory=dict)

    def arm(self, rules: LotRules) -> None:
        self.lots.setdefault(rules.lot_id, LotModel(rules))

    def place_bid(
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
        lot = self.lots.get(lot_id)
        if lot is None:
            return UNKNOWN
        return lot.place_bid(
            user_id, amount, kind=kind, now_ms=now_ms, currency=currency, idempotency_key=idempotency_key
        )

    def retract(self, lot_id: int, user_id: int, *, now_ms: int) -> BidReply:
        lot = self.lots.get(lot_id)
        return UNKNOWN if lot is None else lot.retract(user_id, now_ms=now_ms)

    def open_due(self, lot_id: int, now_ms: int) -> bool:
        lot = self.lots.get(lot_id)
        return lot is not None and lot.open_due(now_ms)

    def close_if_due(self, lot_id: int, now_ms: int) -> LotResult | None:
        lot = self.lots.get(lot_id)
        return None if lot is None else lot.close_if_due(now_ms)

    def view(self, lot_id: int) -> LotView | None:
        lot = self.lots.get(lot_id)
        return None if lot is None else lot.view()
