import { parseInfo, type RespClient } from '../../packages/test-harness/src/index.js'

/** `INFO commandstats` as command → calls (Redis 7 also counts the commands a script runs). */
export async function commandCalls(client: RespClient): Promise<Record<string, number>> {
  const info = parseInfo(await client.call('INFO', 'commandstats'))
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(info)) {
    const m = /^cmdstat_(.+)$/.exec(k)
    const calls = /calls=(\d+)/.exec(v)
    if (m && calls) out[m[1]!] = Number(calls[1])
  }
  return out
}

export function delta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[k] ?? 0) - (before[k] ?? 0)
    if (d !== 0) out[k] = d
  }
  return out
}

/** A counter's total over all its label sets, from a Prometheus text exposition. */
export function counterTotal(metricsText: string, name: string): number {
  let total = 0
  for (const line of metricsText.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}

export async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`)
  return await res.text()
}

/** Reads `read` until two reads a short while apart agree (the server has finished what was in flight). */
export async function settled<T>(read: () => Promise<T>, same: (a: T, b: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let prev = await read()
  for (;;) {
    await new Promise((r) => setTimeout(r, 100))
    const next = await read()
    if (same(prev, next) || Date.now() > deadline) return next
    prev = next
  }
}
