/**
 * Just enough of an HTTP/1.1 response reader for the paced load generator (paced-worker.ts): where
 * the first response in a connection's bytes ends, its status, and whether the server closes the
 * connection after it. Bodies by Content-Length or chunked encoding (chunk sizes followed).
 */

const HEADER_END = Buffer.from('\r\n\r\n')
const CRLF = Buffer.from('\r\n')

/** Where a chunked body that starts at `from` ends (after its last chunk and trailers), or -1 while incomplete. */
function chunkedEnd(buf: Buffer, from: number): number {
  let at = from
  for (;;) {
    const line = buf.indexOf(CRLF, at)
    if (line < 0) return -1
    const hex = buf.toString('latin1', at, line).split(';')[0]!.trim()
    if (!/^[0-9a-f]+$/i.test(hex)) throw new Error('a malformed chunk size')
    const size = parseInt(hex, 16)
    at = line + 2
    if (size === 0) {
      // Trailers, if any, end with an empty line.
      const end = buf.indexOf(CRLF, at)
      if (end < 0) return -1
      if (end === at) return at + 2
      const trailersEnd = buf.indexOf(HEADER_END, at)
      return trailersEnd < 0 ? -1 : trailersEnd + 4
    }
    if (buf.length < at + size + 2) return -1
    if (buf[at + size] !== 13 || buf[at + size + 1] !== 10) throw new Error('a chunk longer than its size')
    at += size + 2
  }
}

export interface Response {
  length: number
  status: number
  close: boolean
}

/** The first complete response in `buf`, or undefined while incomplete. Throws on what this generator does not read (a body delimited by the connection's end). */
export function completeResponse(buf: Buffer): Response | undefined {
  const end = buf.indexOf(HEADER_END)
  if (end < 0) return undefined
  const head = buf.toString('latin1', 0, end)
  const status = Number(head.slice(9, 12))
  const close = /\r\nconnection:\s*close/i.test(head)
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  if (cl !== null) {
    const length = end + 4 + Number(cl[1])
    return buf.length >= length ? { length, status, close } : undefined
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const last = chunkedEnd(buf, end + 4)
    return last < 0 ? undefined : { length: last, status, close }
  }
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { length: end + 4, status, close }
  throw new Error(`a ${status} response without Content-Length or chunked encoding`)
}
