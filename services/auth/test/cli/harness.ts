import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { startPostgres, startRedis } from '@gatehouse/test-harness'
import { buildApp } from '../../src/app.js'
import { createRuntime } from '../../src/runtime/bootstrap.js'
import { run } from '../../src/cli/run.js'
import { loadConfig } from '../../src/config.js'
import { migrateDatabase } from '../../src/database/migrate.js'
import { LogCapture } from '../helpers.js'

/**
 * The auth service on the test's Redis (users and clients seeded from the dev config), driven
 * through inject. It runs on the real clock, as the CLI run beside it does.
 */
export async function liveService(t: Test, env: Record<string, string>) {
  const runtime = await createRuntime(await loadConfig(env), { info() {}, warn() {} }, Date.now)
  const logs = new LogCapture()
  const app = await buildApp(runtime.deps, { logStream: logs })
  t.teardown(async () => {
    await app.close()
    await runtime.close()
  })
  return { app, logs, deps: runtime.deps }
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
  /** stdout parsed (run with --json). */
  json(): Record<string, unknown>
  /** Audit lines on stderr with this `event`. */
  events(name: string): Record<string, unknown>[]
}

export interface CliOptions {
  stdin?: string
  /** Pretend standard input is a terminal (for prompts). */
  tty?: boolean
  env?: Record<string, string>
}

/** Runs `gatehouse ...` in-process with its own streams, environment and clock. */
export function cliRunner(baseEnv: Record<string, string>, clock?: () => number) {
  return async (argv: string[], opts: CliOptions = {}): Promise<CliResult> => {
    let stdout = ''
    let stderr = ''
    const stdin = Readable.from(opts.stdin === undefined ? [] : [opts.stdin]) as Readable & { isTTY?: boolean }
    if (opts.tty) stdin.isTTY = true
    const code = await run(argv, {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      stdin,
      env: { LOG_LEVEL: 'info', GATEHOUSE_ACTOR: 'test-operator', ...baseEnv, ...opts.env },
      ...(clock ? { clock } : {}),
    })
    return {
      code,
      stdout,
      stderr,
      json: () => JSON.parse(stdout) as Record<string, unknown>,
      events: (name) =>
        stderr
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .filter((e) => e.event === name),
    }
  }
}

/**
 * A private Redis and a private PostgreSQL with one migrated database, stopped when the test file
 * ends, and the CLI's environment for them (as production wires it, no login delay).
 */
export async function redisAndPostgres() {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const url = await pg.createDatabase()
  await migrateDatabase(url)
  return { redis, pg, url, env: { REDIS_URL: redis.url, DATABASE_URL: url, LOGIN_DELAY_MS: '0' } }
}
