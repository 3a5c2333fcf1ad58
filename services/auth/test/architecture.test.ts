/**
 * The floor plan of docs/architecture.md, checked against the source so that it stays true:
 * no loose files at the root of src, store/ is infrastructure that imports nothing of the
 * service, and the domain rooms never import the layers that assemble or serve them.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const SRC = fileURLToPath(new URL('../src/', import.meta.url))
const ROOT_FILES = ['app.ts', 'config.ts', 'index.ts', 'server.ts', 'start.ts']
const DOMAINS = ['account', 'audit', 'authorize', 'database', 'device', 'directory', 'dpop', 'exchange', 'families', 'keys', 'mfa', 'par', 'signin', 'store', 'tokens']
const UPPER = ['cli', 'grants', 'routes', 'runtime']
/** Types domain code may take as parameters from runtime/. */
const TYPES_FROM_RUNTIME = ['runtime/deps.ts', 'runtime/metrics.ts']

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

interface Import { from: string; to: string; typeOnly: boolean }

function imports(): Import[] {
  const out: Import[] = []
  for (const file of files(SRC)) {
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/^import (type )?[^'"]*?from '(\.[^']+)'/gms)) {
      const target = resolve(dirname(file), m[2]!).replace(/\.js$/, '.ts')
      out.push({ from: relative(SRC, file), to: relative(SRC, target), typeOnly: m[1] !== undefined })
    }
  }
  return out
}

const room = (path: string): string => (path.includes('/') ? path.slice(0, path.indexOf('/')) : '.')

t.test('only the entry points sit at the root of src', async (t) => {
  const loose = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort()
  t.same(loose, [...ROOT_FILES].sort())
})

t.test('store/ imports nothing of the service', async (t) => {
  const out = imports().filter((i) => room(i.from) === 'store' && room(i.to) !== 'store')
  t.same(out, [])
})

t.test('database/ imports nothing of the service but StoreUnavailable and the configuration type', async (t) => {
  const out = imports().filter((i) => room(i.from) === 'database' && room(i.to) !== 'database')
  t.same(out.filter((i) => !(i.to === 'store/types.ts' || (i.to === 'config.ts' && i.typeOnly))), [])
})

t.test('domain rooms never import the layers that assemble or serve them', async (t) => {
  const up = imports().filter((i) => DOMAINS.includes(room(i.from)) && UPPER.includes(room(i.to)))
  const allowed = up.filter((i) => i.typeOnly && TYPES_FROM_RUNTIME.includes(i.to))
  t.same(up.filter((i) => !allowed.includes(i)), [])
})
