import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { serveRuns } from './children.js'
import { WINDOW_MS, latencySummary, type LoadResult } from './load.js'
import type { PacedSpec } from './paced-load.js'

/**
 * An open-loop load generator (issue 18, overload): requests are *scheduled* at an even pace,
 * `rate` per second, one every 1/rate s, whatever the server does, and each one's latency counts
 * from its scheduled time, so a server that falls behind is charged for the wait (no coordinated
 * omission) and an offered "3 ×" is three times the rate in every millisecond, not a burst at the
 * start of each second (autocannon's `overallRate` allows each connection its share per second,
 * which it sends at once). A scheduled request goes out on an idle keep-alive connection; when
 * none is idle it waits for one, its clock running.
 *
 * HTTP/1.1 on raw sockets with the request pre-serialized and just enough parsing of the answer
 * (status, Content-Length or chunked) to keep a loopback server at tens of thousands of requests
 * per second busy from one core. A child process of its own (paced-load.ts), pinned like the other
 * load generators.
 */

interface Conn {
  socket: Socket
  buf: Buffer
  /** The scheduled time (ms) of the request in flight; undefined when idle. */
  scheduled: number | undefined
}

const HEADER_END = Buffer.from('\r\n\r\n')
const CHUNKED_END = Buffer.from('0\r\n\r\n')

/** The length of the first complete response in `buf` and its status, or undefined while incomplete. */
function completeResponse(buf: Buffer): { length: number; status: number } | undefined {
  const end = buf.indexOf(HEADER_END)
  if (end < 0) return undefined
  const head = buf.toString('latin1', 0, end)
  const status = Number(head.slice(9, 12))
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  if (cl !== null) {
    const length = end + 4 + Number(cl[1])
    return buf.length >= length ? { length, status } : undefined
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const last = buf.indexOf(CHUNKED_END, end + 4)
    return last < 0 ? undefined : { length: last + CHUNKED_END.length, status }
  }
  return { length: end + 4, status }
}

async function paced(spec: PacedSpec): Promise<LoadResult> {
  const url = new URL(spec.url)
  const body = spec.body ?? ''
  const head = [`${spec.method} ${spec.path} HTTP/1.1`, `host: ${url.host}`, ...Object.entries(spec.headers).map(([k, v]) => `${k}: ${v}`)]
  if (spec.method !== 'GET') head.push(`content-length: ${Buffer.byteLength(body)}`)
  const request = Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`)
  const timeoutMs = spec.timeoutMs ?? 5000

  const statusCodes: Record<string, number> = {}
  const ok: number[] = []
  const shed: number[] = []
  const windows: { ok: number; shed: number }[] = []
  let errors = 0
  const idle: Conn[] = []
  const waiting: number[] = [] // scheduled times of requests waiting for a connection
  const conns = new Set<Conn>()
  const start = performance.now()

  const send = (c: Conn, scheduled: number): void => {
    c.scheduled = scheduled
    c.socket.write(request)
  }
  const release = (c: Conn): void => {
    const next = waiting.shift()
    if (next !== undefined) send(c, next)
    else idle.push(c)
  }
  const record = (status: number, scheduled: number): void => {
    const now = performance.now()
    statusCodes[status] = (statusCodes[status] ?? 0) + 1
    const w = Math.floor((now - start) / WINDOW_MS)
    while (windows.length <= w) windows.push({ ok: 0, shed: 0 })
    if (status >= 200 && status < 300) {
      ok.push(now - scheduled)
      windows[w]!.ok++
    } else if (status === 503) {
      shed.push(now - scheduled)
      windows[w]!.shed++
    }
  }

  const open = (): Promise<Conn> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: url.hostname, port: Number(url.port), noDelay: true })
      const c: Conn = { socket, buf: Buffer.alloc(0), scheduled: undefined }
      socket.once('connect', () => resolve(c))
      socket.once('error', (err) => {
        errors++
        reject(err)
      })
      socket.on('data', (d: Buffer) => {
        c.buf = c.buf.length === 0 ? d : Buffer.concat([c.buf, d])
        for (;;) {
          const r = completeResponse(c.buf)
          if (r === undefined || c.scheduled === undefined) break
          c.buf = c.buf.subarray(r.length)
          const scheduled = c.scheduled
          c.scheduled = undefined
          record(r.status, scheduled)
          release(c)
        }
      })
      socket.on('close', () => {
        conns.delete(c)
        const i = idle.indexOf(c)
        if (i >= 0) idle.splice(i, 1)
        // A request in flight on a closed connection is lost: a connection error, sent again on another.
        if (c.scheduled !== undefined) {
          errors++
          waiting.unshift(c.scheduled)
        }
        if (!stopped) void open().then(add, () => undefined)
      })
      conns.add(c)
    })
  let stopped = false
  const add = (c: Conn): void => release(c)
  for (const c of await Promise.all(Array.from({ length: spec.connections }, open))) add(c)

  const t0 = performance.now()
  const interval = 1000 / spec.rate
  const total = Math.floor(spec.rate * spec.seconds)
  let scheduledCount = 0
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = performance.now()
      while (scheduledCount < total && t0 + scheduledCount * interval <= now) {
        const at = t0 + scheduledCount * interval
        scheduledCount++
        const c = idle.pop()
        if (c === undefined) waiting.push(at)
        else send(c, at)
      }
      if (scheduledCount >= total) {
        clearInterval(tick)
        resolve()
      }
    }, 1)
  })
  // Let what is in flight finish, bounded: past it, a request counts as a timeout.
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline && (waiting.length > 0 || [...conns].some((c) => c.scheduled !== undefined))) {
    await new Promise((r) => setTimeout(r, 5))
  }
  stopped = true
  const timeouts = waiting.length + [...conns].filter((c) => c.scheduled !== undefined).length
  for (const c of conns) c.socket.destroy()
  const seconds = (performance.now() - t0) / 1000
  const completed = Object.values(statusCodes).reduce((a, b) => a + b, 0)
  const all = latencySummary([...ok, ...shed])
  return {
    completed,
    ok: ok.length,
    non2xx: completed - ok.length,
    errors,
    timeouts,
    seconds,
    rps: completed / seconds,
    latencyP50: all.p50,
    latencyP99: all.p99,
    statusCodes,
    byStatus: { ok: latencySummary(ok), shed: latencySummary(shed) },
    windows,
  }
}

serveRuns(paced)
