/**
 * Lua scripts of RedisFamilyStore. Each touches exactly one key (so Redis Cluster never answers
 * CROSSSLOT; a family's key carries its `{familyId}` hash tag) and runs atomically on the server.
 * They restate the rules of MemoryFamilyStore; the shared contract suite keeps the two in step.
 *
 * The family hash's fields: userId, clientId, scope, sessionId (optional), authTime, createdAt,
 * expiresAt, lastUsedAt, generation, rotatedAt, revoked ('0' | '1'). All times are ms from the
 * injected clock, passed in as ARGV (never the Redis clock: tests run the clock ahead). Integers
 * are written with string.format('%d') so a large number is never written as "1e+13".
 * TTLs are relative (PEXPIRE) for the same reason: PEXPIREAT would compare against Redis's time.
 */

/**
 * Rotation, one atomic step (DESIGN §5).
 * KEYS[1] family key
 * ARGV[1] now (ms), ARGV[2] presented generation, ARGV[3] presenting client id,
 * ARGV[4] idle TTL (ms), ARGV[5] reuse grace (ms)
 * Returns {status} or {status, HGETALL of the family after the step}.
 */
export const ROTATE_SCRIPT = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local presented = tonumber(ARGV[2])
local idle = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])

local f = redis.call('HMGET', key, 'clientId', 'generation', 'expiresAt', 'lastUsedAt', 'rotatedAt', 'revoked')
if not f[2] then
  return {'not_found'}
end
if f[6] == '1' then
  return {'revoked', redis.call('HGETALL', key)}
end
local current = tonumber(f[2])
local expiresAt = tonumber(f[3])
local lastUsedAt = tonumber(f[4])
if now >= expiresAt or now >= lastUsedAt + idle then
  return {'expired'}
end
-- RFC 6749 section 6: a refresh token is bound to its client; another client changes nothing.
if f[1] ~= ARGV[3] then
  return {'client_mismatch', redis.call('HGETALL', key)}
end
if presented == current then
  -- The idle expiry slides, never past the absolute one.
  local ttl = math.min(expiresAt, now + idle) - now
  redis.call('HSET', key, 'generation', string.format('%d', current + 1), 'lastUsedAt', ARGV[1], 'rotatedAt', ARGV[1])
  redis.call('PEXPIRE', key, string.format('%d', ttl))
  return {'rotated', redis.call('HGETALL', key)}
end
-- The immediate predecessor within the grace window of the last rotation: a retry gets the same
-- successor (the caller mints it from the current generation). rotatedAt is not touched, so
-- retries never stretch the window, and older generations never qualify.
if presented == current - 1 and now - tonumber(f[5]) <= grace then
  return {'retried', redis.call('HGETALL', key)}
end
-- A request older than the family's last rotation that presents a spent token is a delayed
-- duplicate (a command re-sent after a failover, long after its caller gave up and retried),
-- not a copied token: revoking here would log the user out for our own retry.
if presented < current and now < lastUsedAt then
  return {'stale'}
end
if presented < current then
  -- Reuse: revoke the family. The key stays until its TTL so later presentations say 'revoked'.
  redis.call('HSET', key, 'revoked', '1')
  return {'reused', redis.call('HGETALL', key)}
end
return {'not_found'}
`

/**
 * Creation of a family hash with its TTL; refuses to overwrite (an id collision).
 * KEYS[1] family key; ARGV[1] TTL (ms); ARGV[2..] field, value, field, value...
 * Returns 1 when created, 0 when the key already existed.
 */
export const CREATE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`

/**
 * Revocation of a live family (not revoked, not expired by the injected clock).
 * KEYS[1] family key; ARGV[1] now (ms), ARGV[2] idle TTL (ms)
 * Returns the HGETALL of the family just revoked, or nil when it was not live.
 */
export const REVOKE_SCRIPT = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', key, 'expiresAt', 'lastUsedAt', 'revoked')
if not f[1] or f[3] == '1' then
  return false
end
if now >= tonumber(f[1]) or now >= tonumber(f[2]) + tonumber(ARGV[2]) then
  return false
end
redis.call('HSET', key, 'revoked', '1')
return redis.call('HGETALL', key)
`

/**
 * Adds a family id to an index set and makes the set live at least as long as ARGV[2] ms
 * (never shortens it: an older member may outlive a family created under a shorter policy).
 * KEYS[1] index set; ARGV[1] family id; ARGV[2] TTL (ms)
 */
export const INDEX_ADD_SCRIPT = `
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`
