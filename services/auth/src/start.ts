import pino from 'pino'
import { ConfigError, installGracefulShutdown, loggerOptions, stdoutDestination } from '@gatehouse/service-kit'
import { buildApp } from './app.js'
import { createRuntime } from './runtime/bootstrap.js'
import { loadConfig } from './config.js'
import { KeySetError } from './keys/signing-keys.js'

/** The service (loaded by server.ts once tracing is decided): environment → config → runtime → app → listen; graceful shutdown on SIGTERM. */
async function main(): Promise<void> {
  let config
  try {
    config = await loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gatehouse auth: ${err.message}\n`)
      process.exit(1)
    }
    throw err
  }
  const log = pino(loggerOptions(config.logLevel), stdoutDestination())
  let runtime
  try {
    runtime = await createRuntime(config, log)
  } catch (err) {
    if (err instanceof KeySetError) {
      process.stderr.write(`gatehouse auth: invalid configuration:\n  - SIGNING_KEYS_FILE: ${err.message}\n`)
      process.exit(1)
    }
    throw err
  }
  const health = { accepting: true }
  const app = await buildApp(runtime.deps, { health })
  // fastify's close() runs onClose hooks after in-flight requests have finished: Redis goes last.
  app.addHook('onClose', async () => await runtime.close())
  // SIGTERM: readiness false, stop accepting, finish in-flight requests (bounded), close Redis, exit 0.
  installGracefulShutdown(app, {
    onStart: () => {
      health.accepting = false
    },
    timeoutMs: 10_000,
  })
  await app.listen({ host: config.host, port: config.port })
  app.log.info({ event: 'service.started', issuer: config.issuer, store: config.redis ? 'redis' : 'memory', directory: config.database ? 'postgres' : config.redis ? 'redis' : 'memory' }, 'auth service listening')
}

main().catch((err: unknown) => {
  process.stderr.write(`gatehouse auth: failed to start: ${(err as Error).message}\n`)
  process.exit(1)
})
