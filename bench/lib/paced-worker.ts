import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { serveRuns } from './children.js'
import { completeResponse, type Response } from './http-response.js'
import { StatusTimeline, latencySummary, type LoadResult } from './load.js'
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

async function paced(spec: PacedSpec): Promise<LoadResult> {
  const url = new URL(spec.url)
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
  const body = spec.body ?? ''
  const head = [`${spec.method} ${spec.path} HTTP/1.1`, `host: ${url.host}`, ...Object.entries(spec.headers).map(([k, v]) => `${k}: ${v}`)]
  if (spec.method !== 'GET') head.push(`content-length: ${Buffer.byteLength(body)}`)
  const request = Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`)
  const timeoutMs = spec.timeoutMs ?? 5000

  const recorder = new StatusTimeline()
  const pacerLag: number[] = []
  let errors = 0
  let connectFailures = 0
  const idle: Conn[] = []
  const waiting: number[] = [] // scheduled times of requests waiting for a connection
  const conns = new Set<Conn>()
  let stopped = false

  const send = (c: Conn, scheduled: number): void => {
    c.scheduled = scheduled
    c.socket.write(request)
  }
  const release = (c: Conn): void => {
    const next = waiting.shift()
    if (next !== undefined) send(c, next)
    else idle.push(c)
  }
  const drop = (c: Conn): void => {
    if (!conns.delete(c)) return
    c.socket.destroy()
    const i = idle.indexOf(c)
    if (i >= 0) idle.splice(i, 1)
    // A request in flight on a lost connection is a connection error, and is sent again on another (its clock running).
    if (c.scheduled !== undefined) {
      errors++
      waiting.unshift(c.scheduled)
      c.scheduled = undefined
    }
    if (!stopped) reconnect(1)
  }
  // A lost connection is replaced, after a pause that grows while connecting fails (never a tight loop).
  const reconnect = (attempt: number): void => {
    setTimeout(() => {
      if (stopped) return
      open().then(release, () => {
        connectFailures++
        reconnect(Math.min(attempt * 2, 64))
      })
    }, Math.min(1000, 5 * attempt))
  }

  const open = (): Promise<Conn> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: url.hostname, port, noDelay: true })
      const c: Conn = { socket, buf: Buffer.alloc(0), scheduled: undefined }
      let connected = false
      socket.once('connect', () => {
        connected = true
        conns.add(c)
        resolve(c)
      })
      socket.on('error', (err) => {
        if (!connected) reject(err)
      })
      socket.on('close', () => {
        if (connected) drop(c)
      })
      socket.on('data', (d: Buffer) => {
        c.buf = c.buf.length === 0 ? d : Buffer.concat([c.buf, d])
        for (;;) {
          let r: Response | undefined
          try {
            r = completeResponse(c.buf)
          } catch {
            drop(c)
            return
          }
          if (r === undefined) return
          // A response with no request in flight: the connection is out of step; never credit it to the next request.
          if (c.scheduled === undefined) {
            drop(c)
            return
          }
          c.buf = c.buf.subarray(r.length)
          const scheduled = c.scheduled
          c.scheduled = undefined
          recorder.record(r.status, performance.now() - scheduled)
          if (r.close) {
            drop(c)
            return
          }
          release(c)
        }
      })
    })

  try {
    const opened = await Promise.allSettled(Array.from({ length: spec.connections }, open))
    connectFailures += opened.filter((o) => o.status === 'rejected').length
    if (!opened.some((o) => o.status === 'fulfilled')) throw new Error(`no connection to ${spec.url}`)
    for (const o of opened) if (o.status === 'fulfilled') release(o.value)

    const t0 = performance.now()
    recorder.restart()
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
          else {
            // How late the generator itself sends (its timer, its CPU): charged to the server otherwise.
            pacerLag.push(now - at)
            send(c, at)
          }
        }
        if (scheduledCount >= total) {
          clearInterval(tick)
          resolve()
        }
      }, 1)
    })
    const seconds = (performance.now() - t0) / 1000
    // Let what is in flight finish, bounded: past it, a request counts as a timeout.
    const deadline = performance.now() + timeoutMs
    while (performance.now() < deadline && (waiting.length > 0 || [...conns].some((c) => c.scheduled !== undefined))) {
      await new Promise((r) => setTimeout(r, 5))
    }
    const timeouts = waiting.length + [...conns].filter((c) => c.scheduled !== undefined).length
    const summary = recorder.result()
    const completed = Object.values(summary.statusCodes).reduce((a, b) => a + b, 0)
    const ok = summary.byStatus.ok.count
    const all = latencySummary(recorder.latencies())
    return {
      completed,
      ok,
      non2xx: completed - ok,
      errors: errors + connectFailures,
      timeouts,
      seconds,
      rps: completed / seconds,
      latencyP50: all.p50,
      latencyP99: all.p99,
      ...summary,
      pacerLagP99: latencySummary(pacerLag).p99,
    }
  } finally {
    stopped = true
    for (const c of conns) c.socket.destroy()
    conns.clear()
  }
}

serveRuns(paced)
