import t from 'tap'
import { completeResponse } from '../lib/http-response.js'

/** The paced load generator's response reader (bench/lib/http-response.ts): a response is credited only once it is whole. */
const b = (s: string): Buffer => Buffer.from(s, 'latin1')

t.test('Content-Length: whole, partial, two in a row', async (t) => {
  const one = 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello'
  t.same(completeResponse(b(one)), { length: one.length, status: 200, close: false })
  t.equal(completeResponse(b(one.slice(0, -1))), undefined, 'one byte short')
  t.equal(completeResponse(b('HTTP/1.1 200 OK\r\ncontent-len')), undefined, 'headers not yet whole')
  const two = one + 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}'
  const first = completeResponse(b(two))!
  t.equal(first.length, one.length)
  t.same(completeResponse(b(two).subarray(first.length)), { length: two.length - one.length, status: 503, close: true })
})

t.test('chunked: the chunk sizes are followed, not searched for', async (t) => {
  // A 17-byte chunk whose data begins with what looks like the last chunk.
  const body = '11\r\n0\r\n\r\nabcdefghijkl\r\n0\r\n\r\n'
  const res = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${body}`
  t.same(completeResponse(b(res)), { length: res.length, status: 200, close: false })
  t.equal(completeResponse(b(res.slice(0, -2))), undefined, 'the last empty line missing')
  const trailers = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n`
  t.equal(completeResponse(b(trailers))!.length, trailers.length, 'with trailers')
  t.throws(() => completeResponse(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')), /chunk size/)
  t.throws(() => completeResponse(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n')), /longer than its size/)
})

t.test('no body by definition, and a body this reader cannot delimit', async (t) => {
  t.same(completeResponse(b('HTTP/1.1 204 No Content\r\n\r\n')), { length: 27, status: 204, close: false })
  t.throws(() => completeResponse(b('HTTP/1.1 200 OK\r\n\r\nuntil close')), /without Content-Length/)
})
