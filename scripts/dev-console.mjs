// The development console of `npm start` (scripts/dev-stack.mjs): each service's JSON log lines,
// as a person reading a terminal wants them. pino-pretty formats a line (fastify's documentation
// recommends it for development); this module only chooses what a line shows: a request as
// "POST /token 200 3.1 ms", an audit event by its name, every line prefixed with the service it
// came from in a colour of its own. The services still write JSON (production output never
// changes); only the development stack reads and reformats it. `npm start -- --json` keeps it raw.
import { createInterface } from 'node:readline'
import { prettyFactory, isColorSupported } from 'pino-pretty'

const ANSI = { cyan: 36, magenta: 35, yellow: 33, green: 32, blue: 34 }
const paint = (colour, text, on) => (on ? `\u001b[${ANSI[colour]}m${text}\u001b[39m` : text)

// What a request line or an event line already says in its message, or what no one reads here.
const IGNORED = ['pid', 'hostname', 'reqId', 'req', 'res', 'responseTime', 'event', 'trace_id', 'span_id', 'trace_flags']

/** The message of one line: requests and audit events in a few words, anything else as logged. */
export function messageOf(log, messageKey = 'msg') {
  if (log.req !== null && typeof log.req === 'object') {
    // fastify's debug-level "incoming request" line has the request and no reply yet.
    if (log.res === null || typeof log.res !== 'object') return `${log.req.method} ${log.req.url} ← ${log[messageKey] ?? ''}`
    const ms = typeof log.responseTime === 'number' ? ` ${log.responseTime.toFixed(1)} ms` : ''
    return `${log.req.method} ${log.req.url} ${log.res.statusCode}${ms}`
  }
  const msg = log[messageKey] ?? ''
  return typeof log.event === 'string' ? `${log.event}: ${msg}` : String(msg)
}

/**
 * A formatter for one service's output: a JSON log line in, a readable line out (a line that is
 * not a JSON object, such as a stack trace printed by Node itself, passes as it is).
 */
export function devLineFormatter(name, colour, { colorize = isColorSupported, width = 9 } = {}) {
  const pretty = prettyFactory({
    colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: IGNORED.join(','),
    messageFormat: (log, messageKey) => messageOf(log, messageKey),
  })
  const prefix = paint(colour, name.padEnd(width), colorize)
  return (line) => {
    if (!line.startsWith('{')) return `${prefix}${line}\n`
    let log
    try {
      log = JSON.parse(line)
    } catch {
      return `${prefix}${line}\n`
    }
    if (log === null || typeof log !== 'object' || Array.isArray(log)) return `${prefix}${line}\n`
    // An error's stack spans several lines: each carries the service's name.
    return pretty(log).replace(/^(?=.)/gm, prefix)
  }
}

/** Copies a child's stream to `out` line by line, each line through `format`. */
export function pipeLines(stream, out, format) {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(format(line)))
}
