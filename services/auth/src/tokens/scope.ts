import { InvalidScope } from '@gatehouse/service-kit'

const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/ // RFC 6749 §3.3

export function splitScope(scope: string): string[] {
  return scope.split(' ').filter(Boolean)
}

/**
 * The scope to grant: what was asked for if every part is allowed, else
 * invalid_scope; the allowed default when nothing was asked for (RFC 6749 §3.3).
 */
export function resolveScope(requested: string | undefined, allowed: readonly string[]): string {
  if (requested === undefined) return allowed.join(' ')
  if (requested.length > 2000 || !SCOPE.test(requested)) throw new InvalidScope('the scope is malformed')
  const asked = [...new Set(splitScope(requested))]
  const bad = asked.filter((s) => !allowed.includes(s))
  if (bad.length > 0) throw new InvalidScope(`scope not allowed for this client: ${bad.join(' ')}`)
  return asked.join(' ')
}
