import pino from 'pino'
import { ConfigError, loggerOptions } from '@gatehouse/service-kit'
import { buildApp } from './app.js'
import { createRuntime } from './bootstrap.js'
import { loadConfig } from './config.js'
import { KeySetError } from './keys.js'

/** Entry point: environment → config → runtime → app → listen; graceful shutdown on SIGTERM. */
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
  const log = pino(loggerOptions(config.logLevel))
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
  await app.listen({ host: config.host, port: config.port })
  app.log.info({ event: 'service.started', issuer: config.issuer, store: config.redis ? 'redis' : 'memory' }, 'auth service listening')

  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    health.accepting = false
    app.log.info({ event: 'service.stopping', signal }, 'shutting down')
    const timer = setTimeout(() => {
      app.log.error('shutdown timed out')
      process.exit(1)
    }, 10_000)
    timer.unref()
    await app.close()
    await runtime.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

main().catch((err: unknown) => {
  process.stderr.write(`gatehouse auth: failed to start: ${(err as Error).message}\n`)
  process.exit(1)
})
