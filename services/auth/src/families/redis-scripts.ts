/**
 * Lua scripts of RedisFamilyStore. Each touches one family key (a family's key carries its
 * `{familyId}` hash tag) and runs atomically on the server. They restate the rules of
 * MemoryFamilyStore; the shared contract suite keeps the two in step.
 *
 * The family hash's fields: userId, clientId, scope, sessionId (optional), authTime, resources
 * (optional, space-separated; no script reads it), jkt (optional: the DPoP key of a bound
 * family), amr (optional, space-separated; no script reads it), atAcr (optional, '1': access
 * tokens carry acr), createdAt, expiresAt, lastUsedAt, generation,
 * rotatedAt, revoked ('0' | '1'). Times are ms from the
 * injected clock, passed in as ARGV (tests run the clock ahead), with ONE exception: on the real
 * clock the reuse-grace window is measured on Redis's own clock at execution (TIME), so a command
 * that waited in a stalled Redis (SIGSTOP, a hung host) and ran long after its caller gave up
 * cannot make the client's own retry look like reuse (issue 20, defect 2). Integers are written
 * with string.format('%d') so a large number is never written as "1e+13". TTLs are relative
 * (PEXPIRE): PEXPIREAT would compare against Redis's time.
 *
 * Revocation is recorded in the same script that revokes (issue 20, defect 1; STYLE: "what must
 * never be lost is recorded in that same step"): the family id goes into the recent-revocations
 * set (KEYS[2], service-kit/revocation.ts) and is PUBLISHed on the channel. In Redis Cluster the
 * recent set lives in another slot (CROSSSLOT), so KEYS[2] is absent there: the script still
 * PUBLISHes, and the store writes the recent set through its retrying outbox.
 */

/**
 * Records one revocation; `a` is the ARGV index of: family id (sid), exp (s), now (s), channel,
 * message. ZADD GT never shortens an entry; entries past their exp are trimmed; the set lives as
 * long as its longest entry (never shortened).
 */
function announce(a: number): string {
  return `
local function announce()
  local sid, exp, nowS = ARGV[${a}], tonumber(ARGV[${a + 1}]), tonumber(ARGV[${a + 2}])
  if KEYS[2] then
    redis.call('ZADD', KEYS[2], 'GT', ARGV[${a + 1}], sid)
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[${a + 2}])
    local ttl = math.max(1, exp - nowS)
    if redis.call('TTL', KEYS[2]) < ttl then
      redis.call('EXPIRE', KEYS[2], string.format('%d', ttl))
    end
  end
  redis.call('PUBLISH', ARGV[${a + 3}], ARGV[${a + 4}])
end
`
}

/**
 * Rotation, one atomic step (DESIGN §5).
 * KEYS[1] family key, KEYS[2] recent-revocations set (absent in Cluster)
 * ARGV[1] now (ms), ARGV[2] presented generation, ARGV[3] presenting client id,
 * ARGV[4] idle TTL (ms), ARGV[5] reuse grace (ms), ARGV[6] grace clock ('redis' | 'caller'),
 * ARGV[7..11] the announcement of a revocation (see announce()),
 * ARGV[12] the thumbprint of the DPoP key the request proved ('' when none),
 * ARGV[13] '1' when an unbound family is to be bound to that key as it rotates (a public client's
 * first DPoP proof, RFC 9449 §5), else ''
 * Returns {status} or {status, HGETALL of the family after the step}.
 */
export const ROTATE_SCRIPT = `${announce(7)}
local key = KEYS[1]
local now = tonumber(ARGV[1])
local presented = tonumber(ARGV[2])
local idle = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
-- The instant the grace window is measured with: Redis's clock at execution, or the caller's.
local stamp = now
if ARGV[6] == 'redis' then
  local t = redis.call('TIME')
  stamp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local f = redis.call('HMGET', key, 'clientId', 'generation', 'expiresAt', 'lastUsedAt', 'rotatedAt', 'revoked', 'jkt')
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
-- RFC 9449 section 5: a bound family rotates only with a proof of its key. Checked before the
-- generations: a request without the key spends nothing and revokes nothing.
if f[7] and f[7] ~= ARGV[12] then
  return {'key_mismatch', redis.call('HGETALL', key)}
end
if presented == current then
  -- The idle expiry slides, never past the absolute one.
  local ttl = math.min(expiresAt, now + idle) - now
  redis.call('HSET', key, 'generation', string.format('%d', current + 1), 'lastUsedAt', ARGV[1], 'rotatedAt', string.format('%d', stamp))
  if not f[7] and ARGV[13] == '1' and ARGV[12] ~= '' then
    redis.call('HSET', key, 'jkt', ARGV[12])
  end
  redis.call('PEXPIRE', key, string.format('%d', ttl))
  return {'rotated', redis.call('HGETALL', key)}
end
-- The immediate predecessor within the grace window of the last rotation: a retry gets the same
-- successor (the caller mints it from the current generation). rotatedAt is not touched, so
-- retries never stretch the window, and older generations never qualify.
if presented == current - 1 and stamp - tonumber(f[5]) <= grace then
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
  announce()
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
 * Revocation of a family, announced in the same step. A live family is revoked; one already
 * revoked (and not expired) is announced again, so a later /revoke or an admin revoke repairs an
 * announcement a subscriber missed (idempotent for the resource services).
 * KEYS[1] family key, KEYS[2] recent-revocations set (absent in Cluster)
 * ARGV[1] now (ms), ARGV[2] idle TTL (ms), ARGV[3..7] the announcement (see announce())
 * Returns {'revoked' | 'again', HGETALL of the family}, or nil when it is unknown or expired.
 */
export const REVOKE_SCRIPT = `${announce(3)}
local key = KEYS[1]
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', key, 'expiresAt', 'lastUsedAt', 'revoked')
if not f[1] then
  return false
end
if now >= tonumber(f[1]) or now >= tonumber(f[2]) + tonumber(ARGV[2]) then
  return false
end
local status = 'again'
if f[3] ~= '1' then
  redis.call('HSET', key, 'revoked', '1')
  status = 'revoked'
end
announce()
return {status, redis.call('HGETALL', key)}
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
