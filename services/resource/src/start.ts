import { ConfigError, installGracefulShutdown } from '@gatehouse/service-kit'
import { buildApp } from './app.js'
import { loadConfig, type ResourceConfig } from './config.js'

/** The service (loaded by server.ts once tracing is decided): environment → config → app → listen; graceful shutdown on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: ResourceConfig
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gatehouse resource: ${err.message}\n`)
      process.exit(1)
    }
    throw err
  }
  const health = { accepting: true }
  const app = buildApp(config, { health })
  installGracefulShutdown(app, {
    onStart: () => {
      health.accepting = false
    },
    timeoutMs: 10_000,
  })
  await app.listen({ host: config.host, port: config.port })
  app.log.info(
    { event: 'service.started', issuer: config.issuer, audience: config.audience, revocations: config.redisUrl === undefined ? 'disabled' : 'redis' },
    'resource service listening',
  )
}

main().catch((err: unknown) => {
  process.stderr.write(`gatehouse resource: failed to start: ${(err as Error).message}\n`)
  process.exit(1)
})
