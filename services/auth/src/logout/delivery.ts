import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'

/** Timers the delivery uses for its per-attempt timeout (injectable, so tests fire them by hand). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const REAL_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

export type DeliveryResult =
  | { ok: true; status: number }
  | { ok: false; reason: 'status'; status: number }
  | { ok: false; reason: 'timeout' | 'network' | 'aborted' }

export interface DeliveryOptions {
  /** The whole exchange (connect, send, status, reading the body) is bounded by this. */
  timeoutMs: number
  timers?: Timers
  /** Aborts the attempt (the worker stopping). */
  signal?: AbortSignal
}

/** What is read of a receiver's answer: enough to drain a small body, never more. */
export const MAX_RESPONSE_BYTES = 4096

/**
 * POSTs a logout token (Back-Channel Logout §2.5: `application/x-www-form-urlencoded`, one
 * parameter `logout_token`). Success is a 2xx (§2.8 says 200; 204 is common). A redirect is a
 * failure and is never followed (node's client follows none), the body is read up to
 * MAX_RESPONSE_BYTES and then dropped, and the token never leaves this function in a result or
 * an error.
 */
export async function postLogoutToken(uri: string, logoutToken: string, options: DeliveryOptions): Promise<DeliveryResult> {
  const timers = options.timers ?? REAL_TIMERS
  const body = `logout_token=${encodeURIComponent(logoutToken)}`
  const url = new URL(uri)
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest
  return await new Promise<DeliveryResult>((resolve) => {
    let settled = false
    const finish = (result: DeliveryResult): void => {
      if (settled) return
      settled = true
      timers.clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      req.destroy()
      resolve(result)
    }
    const onAbort = (): void => finish({ ok: false, reason: 'aborted' })
    const req = request(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        accept: '*/*',
        'user-agent': 'gatehouse-backchannel-logout',
      },
      agent: false,
    })
    const timer = timers.setTimeout(() => finish({ ok: false, reason: 'timeout' }), options.timeoutMs)
    if (options.signal?.aborted) return onAbort()
    options.signal?.addEventListener('abort', onAbort, { once: true })
    req.on('error', () => finish({ ok: false, reason: 'network' }))
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0
      const result: DeliveryResult = status >= 200 && status < 300 ? { ok: true, status } : { ok: false, reason: 'status', status }
      let read = 0
      res.on('data', (chunk: Buffer) => {
        read += chunk.length
        if (read > MAX_RESPONSE_BYTES) finish(result)
      })
      res.on('end', () => finish(result))
      res.on('error', () => finish(result))
    })
    req.end(body)
  })
}
