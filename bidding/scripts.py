"""The Lua scripts that decide every change of a lot atomically inside Redis (one script per operation).

All keys a script touches are passed in KEYS and share the lot's hash tag `{lot:ID}`, so a Redis Cluster keeps
them on one shard. Scripts take the caller's clock (`now_ms`) as an argument, never Redis TIME, so the pure
Python model in `bidding.model` can replay them exactly. `bidding.model` mirrors this file rule for rule: change
both together (tests/bidding/test_model_agrees.py drives them side by side).

Key layout of lot ID (see `bidding.engine.lot_key`):
  {lot:ID}:state    hash   rules + the settled state (price, leader, ends_at, ...)
  {lot:ID}:maxes    hash   user id -> "max|seq|kind" (the standing maximum, the arrival number that set it)
  {lot:ID}:bidders  hash   user id -> anonymous bidder number (1, 2, ... in order of first accepted bid)
  {lot:ID}:events   stream public events (price | extended | closed), MAXLEN ~ 10000
  {lot:ID}:bids     stream private record of every accepted bid, retraction and close (for PostgreSQL), and of the
                           lot's state when armed, opened or moved (for search)
  {lot:ID}:idem:U:K string the reply first given to user U for idempotency key K (24 h)
"""

from __future__ import annotations

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
EVENTS_MAXLEN = 10_000

_PRELUDE = r"""
local NUMERIC = {'lot_id', 'seller', 'starting', 'starts_at', 'ends_at', 'sched_end', 'sc_ms', 'cap_ms',
  'price', 'min_next', 'bid_count', 'leader_max', 'floor', 'seq', 'bidder_seq', 'closed_at'}
local OPTIONAL = {'reserve', 'buy_now'}

local function fmt(x) return string.format('%d', x) end

local function load_state(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local s = {}
  for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
  for _, f in ipairs(NUMERIC) do s[f] = tonumber(s[f]) end
  for _, f in ipairs(OPTIONAL) do
    if s[f] == '' then s[f] = nil else s[f] = tonumber(s[f]) end
  end
  s.bands = {}
  for from, step in string.gmatch(s.incs, '(%d+):(%d+)') do
    s.bands[#s.bands + 1] = {tonumber(from), tonumber(step)}
  end
  return s
end

local function save_state(key, s)
  redis.call('HSET', key, 'status', s.status, 'price', fmt(s.price), 'min_next', fmt(s.min_next),
    'bid_count', fmt(s.bid_count), 'leader', s.leader, 'leader_max', fmt(s.leader_max), 'leader_no', s.leader_no,
    'reserve_met', s.reserve_met, 'floor', fmt(s.floor), 'seq', fmt(s.seq), 'bidder_seq', fmt(s.bidder_seq),
    'ends_at', fmt(s.ends_at), 'outcome', s.outcome, 'closed_at', fmt(s.closed_at))
end

local function increment(s, price)
  local step = s.bands[1][2]
  for i = 1, #s.bands do
    if price >= s.bands[i][1] then step = s.bands[i][2] else break end
  end
  return step
end

local function parse_entry(user, raw)
  local m, q, k = string.match(raw, '^(%d+)|(%d+)|(%a+)$')
  return {u = user, m = tonumber(m), q = tonumber(q), live = (k == 'live')}
end

-- Leader = highest max; equal maxes: the earlier arrival (or, with live_beats_proxy, a live bid first).
-- Price = second-highest max + one increment (never below the start, the highest live bid, or the reserve
-- once the leader's max meets it), capped by the leader's max.
local function settle(s, maxes_key, bidders_key)
  local flat = redis.call('HGETALL', maxes_key)
  local live_first = s.tie == 'live_beats_proxy'
  local function before(a, b)
    if a.m ~= b.m then return a.m > b.m end
    if live_first and a.live ~= b.live then return a.live end
    return a.q < b.q
  end
  local entries = {}
  for i = 1, #flat, 2 do entries[#entries + 1] = parse_entry(flat[i], flat[i + 1]) end
  local best = nil
  for _, e in ipairs(entries) do
    if best == nil or before(e, best) then best = e end
  end
  if best == nil then
    s.leader, s.leader_max, s.leader_no = '', 0, ''
    s.price, s.min_next = s.starting, s.starting
    if s.reserve == nil then s.reserve_met = '1' else s.reserve_met = '0' end
    return
  end
  local second = nil
  for _, e in ipairs(entries) do
    if e ~= best and (second == nil or e.m > second) then second = e.m end
  end
  local base = s.starting
  if second ~= nil then base = math.max(base, second + increment(s, second)) end
  base = math.max(base, s.floor)
  if s.reserve ~= nil and best.m >= s.reserve then base = math.max(base, s.reserve) end
  s.price = math.min(best.m, base)
  s.min_next = s.price + increment(s, s.price)
  s.leader, s.leader_max = best.u, best.m
  s.leader_no = redis.call('HGET', bidders_key, best.u) or ''
  if s.reserve == nil or best.m >= s.reserve then s.reserve_met = '1' else s.reserve_met = '0' end
end

local function emit(events_key, s, kind, now, outcome)
  local fields = {'type', kind, 'lot_id', fmt(s.lot_id), 'price', fmt(s.price), 'bid_count', fmt(s.bid_count),
    'leader', s.leader_no, 'reserve_met', s.reserve_met, 'ends_at_ms', fmt(s.ends_at), 'accepted_at_ms', fmt(now)}
  if outcome ~= nil then
    fields[#fields + 1] = 'outcome'
    fields[#fields + 1] = outcome
  end
  return redis.call('XADD', events_key, 'MAXLEN', '~', '__MAXLEN__', '*', unpack(fields))
end

local function outcome_of(s)
  if s.leader == '' then return 'no_bids' end
  if s.reserve ~= nil and s.leader_max < s.reserve then return 'if_bid' end
  return 'sold'
end

local function close_lot(s, events_key, bids_key, now)
  s.status, s.outcome, s.closed_at = 'closed', outcome_of(s), now
  redis.call('XADD', bids_key, '*', 'type', 'close', 'outcome', s.outcome, 'user_id', s.leader,
    'amount', fmt(s.price), 'accepted_at_ms', fmt(now), 'seq', fmt(s.seq), 'bid_count', fmt(s.bid_count),
    'ends_at_ms', fmt(s.ends_at))
  return emit(events_key, s, 'closed', now, s.outcome)
end

local function reply_of(s, user, status, reason, message)
  return {status = status, current_price = s.price, min_next_bid = s.min_next, bid_count = s.bid_count,
    ends_at_ms = s.ends_at, reserve_met = (s.reserve_met == '1'), is_leader = (s.leader == user),
    reason = reason, message = message}
end
""".replace("__MAXLEN__", str(EVENTS_MAXLEN))

ARM = r"""
-- KEYS: state; ARGV: field, value, ... (only when the lot does not exist yet)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

PLACE_BID = (
    _PRELUDE
    + r"""
-- KEYS: state, maxes, bidders, events, bids, idem; ARGV: user, amount, kind, now, currency, use_idem
local user, amount, kind, now, currency = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local use_idem = ARGV[6] == '1'
local s = load_state(KEYS[1])
if s == nil then
  return {cjson.encode({status = 'REJECTED', current_price = 0, min_next_bid = 0, bid_count = 0, ends_at_ms = 0,
    reserve_met = false, is_leader = false, reason = 'unknown_lot', message = 'no such lot'}), 0}
end
if use_idem then
  local previous = redis.call('GET', KEYS[6])
  if previous then return {previous, 0} end
end

local function decide()
  local raw = redis.call('HGET', KEYS[2], user)
  local mine = 0
  if raw then mine = parse_entry(user, raw).m end
  local status = s.status
  if status == 'scheduled' and now >= s.starts_at then status = 'open' end
  if currency ~= s.currency then return reply_of(s, user, 'REJECTED', 'currency', 'wrong currency for this lot') end
  if user == fmt(s.seller) then return reply_of(s, user, 'REJECTED', 'own_lot', 'you cannot bid on your own lot') end
  if status == 'closed' or now >= s.ends_at then
    return reply_of(s, user, 'REJECTED', 'closed', 'bidding has ended')
  end
  if status == 'scheduled' and kind == 'live' then
    return reply_of(s, user, 'REJECTED', 'not_started', 'bidding has not started; place a maximum bid')
  end
  if mine > 0 and amount < mine then
    if status ~= 'scheduled' then
      return reply_of(s, user, 'REJECTED', 'lower_max', 'a maximum can only be raised once bidding is open')
    end
    if amount < s.price then
      return reply_of(s, user, 'REJECTED', 'lower_max', 'a maximum cannot go below the current price')
    end
  elseif amount == mine then
    return reply_of(s, user, 'REJECTED', 'too_low', 'this is already your maximum')
  elseif amount < s.min_next then
    return reply_of(s, user, 'REJECTED', 'too_low', 'below the minimum next bid')
  end

  local previous_leader = s.leader
  local buy_now = s.buy_now ~= nil and status == 'open' and s.leader == '' and amount >= s.buy_now
  s.status = status
  s.seq = s.seq + 1
  s.bid_count = s.bid_count + 1
  if redis.call('HEXISTS', KEYS[3], user) == 0 then
    s.bidder_seq = s.bidder_seq + 1
    redis.call('HSET', KEYS[3], user, fmt(s.bidder_seq))
  end
  redis.call('HSET', KEYS[2], user, fmt(amount) .. '|' .. fmt(s.seq) .. '|' .. kind)
  if kind == 'live' and amount > s.floor then s.floor = amount end
  settle(s, KEYS[2], KEYS[3])
  if buy_now then
    s.price = s.buy_now
    s.min_next = s.price + increment(s, s.price)
  end
  local extended = false
  if not buy_now and status == 'open' and now >= s.ends_at - s.sc_ms then
    local new_end = math.min(now + s.sc_ms, s.sched_end + s.cap_ms)
    if new_end > s.ends_at then
      s.ends_at = new_end
      extended = true
    end
  end
  local outbid = ''
  if previous_leader ~= '' and previous_leader ~= s.leader then outbid = previous_leader end
  local bid_id = fmt(s.lot_id) .. '-' .. fmt(s.seq)
  redis.call('XADD', KEYS[5], '*', 'type', 'bid', 'bid_id', bid_id, 'user_id', user, 'amount', fmt(amount),
    'kind', kind, 'max', fmt(amount), 'accepted_at_ms', fmt(now), 'price', fmt(s.price), 'leader', s.leader,
    'outbid_user_id', outbid, 'seq', fmt(s.seq), 'bid_count', fmt(s.bid_count), 'ends_at_ms', fmt(s.ends_at),
    'status', s.status)
  local event_id = emit(KEYS[4], s, 'price', now, nil)
  if extended then emit(KEYS[4], s, 'extended', now, nil) end
  if buy_now then close_lot(s, KEYS[4], KEYS[5], now) end
  save_state(KEYS[1], s)
  local reply = reply_of(s, user, 'ACCEPTED', nil, '')
  reply.bid_id, reply.event_id, reply.ended_by_buy_now = bid_id, event_id, buy_now
  if outbid ~= '' then reply.outbid_user_id = tonumber(outbid) end
  return reply
end

local encoded = cjson.encode(decide())
if use_idem then redis.call('SET', KEYS[6], encoded, 'PX', '__TTL__') end
return {encoded, 1}
""".replace("__TTL__", str(IDEMPOTENCY_TTL_MS))
)

RETRACT = (
    _PRELUDE
    + r"""
-- KEYS: state, maxes, bidders, events, bids; ARGV: user, now
local user, now = ARGV[1], tonumber(ARGV[2])
local s = load_state(KEYS[1])
if s == nil then
  return cjson.encode({status = 'REJECTED', current_price = 0, min_next_bid = 0, bid_count = 0, ends_at_ms = 0,
    reserve_met = false, is_leader = false, reason = 'unknown_lot', message = 'no such lot'})
end
if s.status == 'closed' or now >= s.ends_at then
  return cjson.encode(reply_of(s, user, 'REJECTED', 'closed', 'bidding has ended'))
end
if s.status ~= 'scheduled' or now >= s.starts_at then
  return cjson.encode(reply_of(s, user, 'REJECTED', 'lower_max', 'a maximum can only be retracted before the start'))
end
if redis.call('HDEL', KEYS[2], user) == 0 then
  return cjson.encode(reply_of(s, user, 'REJECTED', 'lower_max', 'you have no maximum on this lot'))
end
s.seq = s.seq + 1
settle(s, KEYS[2], KEYS[3])
local bid_id = fmt(s.lot_id) .. '-' .. fmt(s.seq)
redis.call('XADD', KEYS[5], '*', 'type', 'retract', 'bid_id', bid_id, 'user_id', user, 'amount', '0',
  'kind', 'retract', 'max', '0', 'accepted_at_ms', fmt(now), 'price', fmt(s.price), 'leader', s.leader,
  'outbid_user_id', '', 'seq', fmt(s.seq), 'bid_count', fmt(s.bid_count), 'ends_at_ms', fmt(s.ends_at),
  'status', s.status)
local event_id = emit(KEYS[4], s, 'price', now, nil)
save_state(KEYS[1], s)
local reply = reply_of(s, user, 'ACCEPTED', nil, '')
reply.bid_id, reply.event_id = bid_id, event_id
return cjson.encode(reply)
"""
)

ANNOUNCE = (
    _PRELUDE
    + r"""
-- KEYS: state, bids; ARGV: now. A record of the lot's state for search (upcoming or live, its end, price) when
-- no bid says it: armed ahead of its start, opened, moved, withdrawn. Decides nothing; a closed lot's close record
-- speaks for it.
local s = load_state(KEYS[1])
if s == nil then return 0 end
local status = s.status
if status == 'closed' then
  if s.outcome ~= 'withdrawn' then return 0 end
  status = 'withdrawn'
end
redis.call('XADD', KEYS[2], '*', 'type', 'state', 'status', status, 'user_id', '', 'price', fmt(s.price),
  'leader', s.leader, 'seq', fmt(s.seq), 'bid_count', fmt(s.bid_count), 'ends_at_ms', fmt(s.ends_at),
  'starts_at_ms', fmt(s.starts_at), 'accepted_at_ms', ARGV[1])
return 1
"""
)

OPEN_DUE = r"""
-- KEYS: state; ARGV: now
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'scheduled' then return 0 end
if tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[1], 'starts_at')) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'open')
return 1
"""

CLOSE_IF_DUE = (
    _PRELUDE
    + r"""
-- KEYS: state, maxes, bidders, events, bids; ARGV: now
local now = tonumber(ARGV[1])
local s = load_state(KEYS[1])
if s == nil or s.status == 'closed' or now < s.ends_at then return false end
local event_id = close_lot(s, KEYS[4], KEYS[5], now)
save_state(KEYS[1], s)
return cjson.encode({outcome = s.outcome, price = s.price, winner = s.leader, bid_count = s.bid_count,
  closed_at_ms = now, event_id = event_id})
"""
)

RESCHEDULE = (
    _PRELUDE
    + r"""
-- KEYS: state, maxes, bidders, events, bids; ARGV: starts_at, ends_at, now
-- The auction's dealer moved a scheduled auction: new start and end for a lot that has not opened yet.
local starts_at, ends_at, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = load_state(KEYS[1])
if s == nil or s.status ~= 'scheduled' or now >= s.starts_at then return false end
if s.starts_at == starts_at and s.sched_end == ends_at then return false end
s.starts_at, s.ends_at, s.sched_end = starts_at, ends_at, ends_at
redis.call('HSET', KEYS[1], 'starts_at', fmt(starts_at), 'sched_end', fmt(ends_at))
save_state(KEYS[1], s)
return emit(KEYS[4], s, 'rescheduled', now, nil)
"""
)

WITHDRAW = (
    _PRELUDE
    + r"""
-- KEYS: state, maxes, bidders, events, bids; ARGV: now
-- The auction was cancelled: the lot takes no more bids; viewers get a closed event with outcome withdrawn.
local now = tonumber(ARGV[1])
local s = load_state(KEYS[1])
if s == nil or s.status == 'closed' then return false end
s.status, s.outcome, s.closed_at = 'closed', 'withdrawn', now
save_state(KEYS[1], s)
return emit(KEYS[4], s, 'closed', now, 'withdrawn')
"""
)
