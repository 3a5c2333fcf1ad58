import { InvalidRequest } from '@gatehouse/service-kit'

/** A parsed application/x-www-form-urlencoded body with single-valued parameters. */
export type Params = Readonly<Record<string, string>>

/**
 * RFC 6749 §3.1/§3.2: parameters MUST NOT be included more than once, and
 * parameters sent without a value are treated as omitted. The names in `repeatable` are left
 * out, for `listParam` to read (RFC 8707 §2: `resource` may repeat).
 */
export function singleParams(body: unknown, what = 'request', repeatable: readonly string[] = []): Params {
  if (body === undefined || body === null) return {}
  if (typeof body !== 'object') throw new InvalidRequest(`the ${what} body must be application/x-www-form-urlencoded`)
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (repeatable.includes(k)) continue
    if (Array.isArray(v)) throw new InvalidRequest(`parameter ${k} is repeated`)
    if (typeof v !== 'string') throw new InvalidRequest(`parameter ${k} is malformed`)
    if (v !== '') out[k] = v
  }
  return out
}

export function required(params: Params, name: string): string {
  const v = params[name]
  if (v === undefined) throw new InvalidRequest(`missing parameter ${name}`)
  return v
}

/** Every value of a parameter that may repeat (RFC 8707 §2 `resource`), empty ones omitted. */
export function listParam(body: unknown, name: string): string[] {
  if (typeof body !== 'object' || body === null) return []
  const v: unknown = (body as Record<string, unknown>)[name]
  const values: unknown[] = v === undefined ? [] : Array.isArray(v) ? v : [v]
  if (values.some((x) => typeof x !== 'string')) throw new InvalidRequest(`parameter ${name} is malformed`)
  return (values as string[]).filter((x) => x !== '')
}
