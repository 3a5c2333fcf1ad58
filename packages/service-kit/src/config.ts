/**
 * Environment parsing that collects every problem and fails once, naming each
 * variable (STYLE: Config). Nothing else in a service reads process.env.
 */
export type Env = Readonly<Record<string, string | undefined>>

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Reads typed values from an environment, remembering every problem. */
export class EnvReader {
  readonly problems: string[] = []
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const v = this.env[name]
    return v === undefined || v === '' ? undefined : v
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback
  }

  optional(name: string): string | undefined {
    return this.raw(name)
  }

  int(name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
    const v = this.raw(name)
    if (v === undefined) return fallback
    if (!/^\d+$/.test(v)) {
      this.problems.push(`${name} must be a whole number, got ${JSON.stringify(v)}`)
      return fallback
    }
    const n = Number(v)
    if (n < min || n > max) {
      this.problems.push(`${name} must be between ${min} and ${max}, got ${n}`)
      return fallback
    }
    return n
  }

  port(name: string, fallback: number): number {
    return this.int(name, fallback, { min: 0, max: 65535 })
  }

  url(name: string, fallback: string | undefined, protocols: readonly string[] = ['http:', 'https:']): string | undefined {
    const v = this.raw(name) ?? fallback
    if (v === undefined) return undefined
    try {
      const u = new URL(v)
      if (!protocols.includes(u.protocol)) {
        if (u.password) u.password = 'REDACTED'
        this.problems.push(`${name} must use ${protocols.join(' or ')}, got ${JSON.stringify(u.href)}`)
      }
    } catch {
      // A URL that does not parse may still carry a password (`postgres://u:p@…`): never echo it.
      this.problems.push(`${name} must be a URL${v.includes('@') ? '' : `, got ${JSON.stringify(v)}`}`)
    }
    return v
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const v = this.raw(name)
    if (v === undefined) return fallback
    if (!(allowed as readonly string[]).includes(v)) {
      this.problems.push(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`)
      return fallback
    }
    return v as T
  }

  /** `host:port,host:port` lists (REDIS_CLUSTER_NODES, REDIS_SENTINELS). */
  hostPorts(name: string): { host: string; port: number }[] | undefined {
    const v = this.raw(name)
    if (v === undefined) return undefined
    const out: { host: string; port: number }[] = []
    for (const part of v.split(',').map((s) => s.trim()).filter(Boolean)) {
      const m = /^(.+):(\d{1,5})$/.exec(part)
      if (!m || Number(m[2]) > 65535) {
        this.problems.push(`${name} must be host:port[,host:port...], got ${JSON.stringify(part)}`)
        continue
      }
      out.push({ host: m[1]!, port: Number(m[2]) })
    }
    if (out.length === 0) this.problems.push(`${name} names no host:port`)
    return out
  }

  problem(message: string): void {
    this.problems.push(message)
  }

  /** Throws one ConfigError listing every problem, if any. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems)
  }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
