"""Rebuilding a lot in Redis from PostgreSQL, for when Redis lost it (flushed, a new server, a lost AOF).

The lot is armed with its rules, then every persisted bid and retraction is replayed, in arrival order, through
the engine's own scripts with the clock each was accepted at. The scripts are deterministic in their arguments,
so the replay ends in the very state the lost Redis held after the last persisted record: price, leader,
maximums and their arrival order, bidder numbers, soft-close end, live-bid floor; a lot closed in PostgreSQL is
closed again at its recorded time. Each replayed record must be accepted with its original bid id, or the rebuild
stops (`RebuildError`) and the lot stays unarmed: bidding never reopens on a state that differs from the record.

The replay runs in scratch keys of the same hash slot; one script then installs them only if the lot is still
missing (another process may have rebuilt it meanwhile), and drops the replay's events and records, so nothing is
published or persisted twice. Accepted bids that never reached PostgreSQL are lost with Redis: the persister's lag.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from bidding import scripts
from bidding.engine import LOTS_KEY, BidEngine, lot_key, rules_fields, validate_rules
from bidding.lots import LotRules

PARTS = ("state", "maxes", "bidders", "events", "bids")

INSTALL = r"""
-- KEYS: state, maxes, bidders (the lot's), then the scratch state, maxes, bidders, events, bids
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('RENAME', KEYS[4], KEYS[1])
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('RENAME', KEYS[5], KEYS[2]) end
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('RENAME', KEYS[6], KEYS[3]) end
redis.call('DEL', KEYS[7], KEYS[8])
return 1
"""


class RebuildError(RuntimeError):
    """The persisted history does not replay to the same bids; the lot must not reopen (the message says where)."""


class LotRebuilder:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._arm: AsyncScript = redis.register_script(scripts.ARM)
        self._place: AsyncScript = redis.register_script(scripts.PLACE_BID)
        self._retract: AsyncScript = redis.register_script(scripts.RETRACT)
        self._close: AsyncScript = redis.register_script(scripts.CLOSE_IF_DUE)
        self._install: AsyncScript = redis.register_script(INSTALL)

    async def rebuild(self, rules: LotRules, history: Sequence[dict[str, Any]], closed_at_ms: int | None) -> bool:
        """Replay `history` (rows of `bid_store.lot_history`, in arrival order) and install the lot unless it
        exists; True when this call installed it."""
        validate_rules(rules)
        lot_id = rules.lot_id
        token = secrets.token_hex(6)
        scratch = [lot_key(lot_id, f"rebuild:{token}:{part}") for part in PARTS]
        real = [lot_key(lot_id, part) for part in PARTS[:3]]
        await self.redis.sadd(LOTS_KEY, str(lot_id))
        try:
            argv: list[str] = []
            for name, value in rules_fields(rules).items():
                argv += [name, value]
            await self._arm(keys=[scratch[0]], args=argv)
            for record in history:
                await self._replay(rules, scratch, record)
            if closed_at_ms is not None:
                await self._close(keys=scratch, args=[str(closed_at_ms)])
            return bool(await self._install(keys=[*real, *scratch]))
        except BaseException:
            await self.redis.delete(*scratch)
            raise

    async def _replay(self, rules: LotRules, scratch: list[str], record: dict[str, Any]) -> None:
        at_ms = int(record["at"].timestamp() * 1000)
        user = str(record["user_id"])
        if record["type"] == "bid":
            cents = int(record["amount_cents"])
            raw, _ = await self._place(
                keys=[*scratch, scratch[0]], args=[user, str(cents), record["kind"], str(at_ms), rules.currency, "0"]
            )
        else:
            raw = await self._retract(keys=scratch, args=[user, str(at_ms)])
        reply = json.loads(raw)
        if reply.get("status") != "ACCEPTED" or reply.get("bid_id") != record["bid_ref"]:
            raise RebuildError(
                f"lot {rules.lot_id}: replaying {record['type']} {record['bid_ref']} of user {user} gave "
                f"{reply.get('status')} {reply.get('bid_id') or reply.get('reason')}; the lot stays closed to bids"
            )


async def arm_or_rebuild(
    engine: BidEngine, rules: LotRules, history: Sequence[dict[str, Any]], closed_at_ms: int | None
) -> None:
    """Arm a lot with no persisted history; otherwise rebuild it from that history (a no-op if it exists)."""
    if not history and closed_at_ms is None:
        await engine.arm(rules)
        return
    if await engine.redis.exists(lot_key(rules.lot_id, "state")):
        return
    await LotRebuilder(engine.redis).rebuild(rules, history, closed_at_ms)
