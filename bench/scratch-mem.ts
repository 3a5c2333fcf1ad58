import { readFile } from 'node:fs/promises'
import { Loader } from './lib/load.js'
import { Scope, privateRedis, startAuth, logins, basic, APP_CLIENT, FORM } from './lib/stack.js'
import { ccRequest } from './scenarios/client-credentials.js'
const scope = new Scope()
const rss = async (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) / 1024
const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 1024 / 1024
try {
  const redis = await privateRedis(scope)
  const auth = await startAuth(scope, { redisUrl: redis.url, cpu: 0 })
  const l1 = await Loader.start('l1', 1); scope.add(() => l1.stop())
  const l2 = await Loader.start('l2', 1); scope.add(() => l2.stop())
  const fams = await logins(auth.url, 25)
  const S = 150
  const a = l1.run({ kind: 'chain', url: auth.url, connections: 25, seconds: S, path: '/token', headers: { authorization: basic(APP_CLIENT.id, APP_CLIENT.secret), 'content-type': FORM }, refreshTokens: fams })
  const b = l2.run({ ...ccRequest(auth, 25), seconds: S })
  let running = true; void Promise.all([a, b]).finally(() => (running = false))
  while (running) {
    const m = await (await fetch(auth.url + '/metrics')).text()
    console.log(`rss ${(await rss(auth.pid)).toFixed(0)} MB heapUsed ${metric(m, 'nodejs_heap_size_used_bytes').toFixed(0)} heapTotal ${metric(m, 'nodejs_heap_size_total_bytes').toFixed(0)} external ${metric(m, 'nodejs_external_memory_bytes').toFixed(0)}`)
    await new Promise((r) => setTimeout(r, 10_000))
  }
} finally { await scope.close() }
