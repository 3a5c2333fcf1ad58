import type { RefreshTokenCodec } from './refresh-token-codec.js'
import type { Family, FamilyInput, FamilyPolicy } from './types.js'

/**
 * Policy checks and the expiry rule shared by both stores, so they cannot drift apart
 * (the Redis Lua scripts restate the same rule; the contract suite keeps them honest).
 */
export function assertPolicy(policy: FamilyPolicy): FamilyPolicy {
  const problems: string[] = []
  const check = (name: keyof FamilyPolicy, min: number): void => {
    const v = policy?.[name]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      problems.push(`policy.${name} must be an integer >= ${min} (ms), got ${String(v)}`)
    }
  }
  check('absoluteTtlMs', 1)
  check('idleTtlMs', 1)
  check('reuseGraceMs', 0)
  if (problems.length > 0) throw new TypeError(problems.join('; '))
  return Object.freeze({ ...policy })
}

/**
 * The instant a family dies: its absolute expiry, or its idle expiry if sooner. The idle expiry
 * slides with each rotation but never beyond the absolute one (DESIGN §5).
 */
export function familyDeadline(family: Pick<Family, 'expiresAt' | 'lastUsedAt'>, policy: FamilyPolicy): number {
  return Math.min(family.expiresAt, family.lastUsedAt + policy.idleTtlMs)
}

export function isExpired(family: Pick<Family, 'expiresAt' | 'lastUsedAt'>, policy: FamilyPolicy, now: number): boolean {
  return now >= familyDeadline(family, policy)
}

export function assertClock(clock: unknown): void {
  if (typeof clock !== 'function') throw new TypeError('clock must be a function returning ms since the epoch')
}

/** A new family at generation 0, as both stores create it: the absolute expiry is fixed here. */
export function newFamily(id: string, input: FamilyInput, policy: FamilyPolicy, now: number): Family {
  return {
    id,
    userId: input.userId,
    clientId: input.clientId,
    scope: input.scope,
    ...(input.sessionId === undefined ? {} : { sessionId: input.sessionId }),
    authTime: input.authTime,
    ...(input.resources === undefined ? {} : { resources: Object.freeze([...input.resources]) }),
    ...(input.jkt === undefined ? {} : { jkt: input.jkt }),
    ...(input.amr === undefined ? {} : { amr: Object.freeze([...input.amr]) }),
    ...(input.acrInAccessTokens === true ? { acrInAccessTokens: true } : {}),
    createdAt: now,
    expiresAt: now + policy.absoluteTtlMs,
    lastUsedAt: now,
    generation: 0,
    revoked: false,
  }
}

/**
 * `lookup` as both stores answer it: the live family a genuine refresh token names, and whether
 * the token is its current one (a generation beyond the family's was never issued).
 */
export async function lookupByToken(
  codec: RefreshTokenCodec,
  get: (familyId: string) => Promise<Family | null>,
  refreshToken: string,
): Promise<{ family: Family; current: boolean } | null> {
  const parsed = codec.parse(refreshToken)
  if (parsed === null) return null
  const family = await get(parsed.familyId)
  if (family === null || parsed.generation > family.generation) return null
  return { family, current: parsed.generation === family.generation }
}
