/**
 * The Redis backend's Lua scripts. Each runs atomically on the server, so a
 * slot is found free and taken, a value compared and extended, in one step.
 * The key layout is keys.ts's; the slot key of `k` is built here from the
 * name, as keys.ts builds it (single instance only: not Redis Cluster).
 *
 * Two rules keep tokens and locks from going back when the server loses its
 * data (a restart without persistence, a crash between snapshots, an
 * eviction):
 *
 * - a missing fencing counter starts from the server's clock in
 *   microseconds (`TIME`), above every token handed out before it was lost;
 * - a server process grants no lock until it has been up for the request's
 *   lease time, unless `coolock:epoch` holds its own `run_id`: a holder of
 *   the lost data then has passed its own lost-lock deadline before anyone
 *   else gets in. The first grant after that writes the marker, so the wait
 *   is paid once per server process. The marker holds the run_id (which
 *   changes at every start), not just "present", because a server restored
 *   from an older snapshot keeps the marker but may have lost newer lock
 *   keys.
 *
 * Scripts return numbers and strings only: Lua numbers are doubles, so the
 * token travels as the counter's string, never through `tostring`.
 *
 * @module
 */

/** Shared Lua: script effects replication for Redis < 5, and helpers. */
const PRELUDE = `
if redis.replicate_commands then redis.replicate_commands() end
local function slotKey(name, k)
  if k == 0 then return 'coolock:lock:' .. name end
  return 'coolock:slot:' .. k .. ':' .. name
end
local function nowMs()
  local t = redis.call('TIME')
  return t[1] .. string.sub('00' .. math.floor(tonumber(t[2]) / 1000), -3)
end
local function keepAlive(key, value, ms)
  local left = redis.call('PTTL', key)
  if left == -2 then redis.call('SET', key, value, 'PX', ms)
  elseif left >= 0 and left < tonumber(ms) then redis.call('PEXPIRE', key, ms) end
end
`;

/** What the acquire script's first reply element says. */
export const Acquired = {
  /** `[0, storedLimit]`: the lock is used with another limit. */
  mismatch: 0,
  /** `[1]`: every slot is held. */
  held: 1,
  /** `[2, msLeft]`: the server started less than a lease time ago. */
  unsettled: 2,
  /** `[3, slot, token, value]`: taken. */
  taken: 3,
  /** `[4, why]`: the server refuses what the rule needs (INFO). */
  refused: 4,
} as const;

/**
 * Takes the first free slot: KEYS fence, limit, epoch; ARGV name, limit,
 * lease ms, value prefix, the run_id this connection saw.
 */
export const ACQUIRE = `${PRELUDE}
local name, limit, ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local stored = redis.call('GET', KEYS[2])
if stored and stored ~= ARGV[2] then return {0, stored} end
local slot = -1
for k = 0, limit - 1 do
  if redis.call('EXISTS', slotKey(name, k)) == 0 then slot = k; break end
end
if slot < 0 then return {1} end
if ARGV[5] == '' or redis.call('GET', KEYS[3]) ~= ARGV[5] then
  local info = redis.pcall('INFO', 'server')
  if type(info) == 'table' then return {4, tostring(info.err)} end
  local uptime = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
  local runId = string.match(info, 'run_id:(%x+)')
  if not uptime or not runId then return {4, 'INFO has no uptime or run_id'} end
  -- Whole seconds of a wall clock: up to one less than it says.
  local settled = (uptime - 1) * 1000
  if settled < ms then return {2, ms - settled} end
  redis.call('SET', KEYS[3], runId)
end
local t = redis.call('TIME')
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], t[1] .. string.sub('00000' .. t[2], -6))
end
redis.call('INCR', KEYS[1])
local token = redis.call('GET', KEYS[1])
local since = t[1] .. string.sub('00' .. math.floor(tonumber(t[2]) / 1000), -3)
local value = ARGV[4] .. ',"since":' .. since .. ',"token":"' .. token .. '"}'
redis.call('SET', slotKey(name, slot), value, 'PX', ARGV[3])
keepAlive(KEYS[2], ARGV[2], ARGV[3])
return {3, slot, token, value}`;

/**
 * Extends a slot while it holds this exact value, and the stored limit with
 * it: KEYS slot, limit; ARGV value, ms, limit.
 */
export const RENEW = `${PRELUDE}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
keepAlive(KEYS[2], ARGV[3], ARGV[2])
return 1`;

/**
 * Gives a slot back while it holds this exact value: KEYS slot, limit; ARGV
 * value, hold ms, channel, name, limit. Guard time rewrites the value with
 * `released` and keeps it for what is left; otherwise the key goes, waiters
 * hear of it, and the stored limit goes with the last slot.
 */
export const RELEASE = `${PRELUDE}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local hold = tonumber(ARGV[2])
if hold > 0 then
  local value = string.sub(ARGV[1], 1, -2) .. ',"released":' .. nowMs() .. '}'
  redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
  local left = redis.call('PTTL', KEYS[2])
  if left >= 0 and left < hold then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
  return 1
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], '')
for k = 0, tonumber(ARGV[5]) - 1 do
  if redis.call('EXISTS', slotKey(ARGV[4], k)) == 1 then return 1 end
end
redis.call('DEL', KEYS[2])
return 1`;

/**
 * One lock's state at one instant: KEYS limit, fence; ARGV name. Replies
 * `[limit|nil, lastToken|nil, nowMs, (slot, value, pttl)…]`.
 */
export const STATUS = `${PRELUDE}
local limit = redis.call('GET', KEYS[1])
local out = {limit, redis.call('GET', KEYS[2]), nowMs()}
for k = 0, (tonumber(limit) or 1) - 1 do
  local key = slotKey(ARGV[1], k)
  local value = redis.call('GET', key)
  if value then
    out[#out + 1] = k
    out[#out + 1] = value
    out[#out + 1] = redis.call('PTTL', key)
  end
end
return out`;

/**
 * Deletes every slot of a lock and its stored limit, but not its counter,
 * so later tokens stay higher: KEYS limit; ARGV name, channel. Replies
 * `[(slot, value, pttl)…]` of what it deleted.
 */
export const FORCE_RELEASE = `${PRELUDE}
local out = {}
for k = 0, (tonumber(redis.call('GET', KEYS[1])) or 1) - 1 do
  local key = slotKey(ARGV[1], k)
  local value = redis.call('GET', key)
  if value then
    out[#out + 1] = k
    out[#out + 1] = value
    out[#out + 1] = redis.call('PTTL', key)
    redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[1])
if #out > 0 then redis.call('PUBLISH', ARGV[2], '') end
return out`;
