// A little over 300 lines on purpose: the spec, its parser, the generated --help and the exit-code
// rules describe one contract of every command; split apart, each would have to restate it.
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'

/**
 * The few pieces every `gatehouse` command shares: a declarative spec from
 * which both parsing (node:util parseArgs, strict) and `--help` are made,
 * the process surface (injected, so tests run commands in-process), and the
 * exit-code rules: 0 done, 1 failed or refused, 2 bad usage.
 */
export interface CliIO {
  stdout: { write(s: string): unknown }
  stderr: { write(s: string): unknown }
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  env: Readonly<Record<string, string | undefined>>
  /** ms since the epoch (tests inject one). */
  clock?: () => number
}

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** An error the CLI reports as one line, with its exit code and a stable code for --json. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
    readonly code: string = 'failed',
    /** With --json, printed beside `error` (what a partly failed command did, e.g. an import's counts). */
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message)
    this.name = 'CliError'
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT_USAGE, 'usage')
    this.name = 'UsageError'
  }
}

export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  multiple?: boolean
  /** Shown in help: `--out <file>`. */
  value?: string
  description: string
}

export interface ArgSpec {
  name: string
  description: string
  optional?: boolean
}

export type Values = Record<string, string | boolean | string[] | undefined>

export interface Invocation {
  values: Values
  args: string[]
  /** Prints the result: `human` as text, or `json` as JSON with --json. */
  print(human: string, json: unknown): void
  /** Asks before a destructive step: --yes, else a y/N prompt on a terminal, else refuses. */
  confirm(question: string): Promise<void>
}

export interface CommandSpec {
  name: string
  summary: string
  /** Longer explanation, shown by --help. */
  details?: string
  args?: ArgSpec[]
  options?: Record<string, OptionSpec>
  /** Adds --yes and asks for confirmation through `confirm`. */
  destructive?: boolean
  examples?: string[]
  run(inv: Invocation): Promise<void>
}

export interface GroupSpec {
  name: string
  summary: string
  commands: CommandSpec[]
}

const COMMON: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'print the result as JSON' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
}
const YES: Record<string, OptionSpec> = { yes: { type: 'boolean', short: 'y', description: 'do not ask for confirmation' } }

export function optionsOf(cmd: CommandSpec): Record<string, OptionSpec> {
  return { ...(cmd.options ?? {}), ...(cmd.destructive ? YES : {}), ...COMMON }
}

function optionLabel(name: string, o: OptionSpec): string {
  const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` <${o.value ?? 'value'}>` : ''}`
  return o.multiple ? `${flag} ...` : flag
}

function table(rows: [string, string][], indent = '  '): string {
  const width = Math.max(...rows.map(([a]) => a.length))
  return rows.map(([a, b]) => `${indent}${a.padEnd(width)}  ${b}`).join('\n')
}

export function commandHelp(group: GroupSpec, cmd: CommandSpec): string {
  const args = (cmd.args ?? []).map((a) => (a.optional ? `[${a.name}]` : `<${a.name}>`)).join(' ')
  const lines = [`Usage: gatehouse ${group.name} ${cmd.name}${args ? ` ${args}` : ''} [options]`, '', cmd.summary]
  if (cmd.details) lines.push('', cmd.details)
  if (cmd.args?.length) lines.push('', 'Arguments:', table(cmd.args.map((a) => [a.name, a.description])))
  lines.push('', 'Options:', table(Object.entries(optionsOf(cmd)).map(([n, o]) => [optionLabel(n, o), o.description])))
  if (cmd.examples?.length) lines.push('', 'Examples:', ...cmd.examples.map((e) => `  ${e}`))
  return `${lines.join('\n')}\n`
}

export function groupHelp(group: GroupSpec): string {
  return [
    `Usage: gatehouse ${group.name} <command> [options]`,
    '',
    group.summary,
    '',
    'Commands:',
    table(group.commands.map((c) => [c.name, c.summary])),
    '',
    `Run \`gatehouse ${group.name} <command> --help\` for a command's options.`,
    '',
  ].join('\n')
}

export function topHelp(groups: readonly GroupSpec[]): string {
  return [
    'Usage: gatehouse <group> <command> [options]',
    '',
    'Administers a Gatehouse deployment: signing keys, users, clients, sessions and the audit trail. It reads the',
    "auth service's environment (REDIS_URL / REDIS_CLUSTER_NODES / REDIS_SENTINELS, SIGNING_KEYS_*,",
    'AUTH_CONFIG_FILE, ...) and changes the live system in Redis; running services pick changes up',
    'without a restart. Every change is logged as an audit event (JSON on standard error) and, with',
    'DATABASE_URL, recorded in the audit trail (`gatehouse audit search`).',
    '',
    'Groups:',
    table(groups.map((g) => [g.name, g.summary])),
    '',
    'Common options: --json (machine-readable output), -h/--help, -y/--yes (destructive commands).',
    'Everything after `--` is an argument, even if it starts with - (a kid may: `keys retire -- -Q_jF...`).',
    'Exit status: 0 done, 1 failed or refused, 2 bad usage.',
    '',
  ].join('\n')
}

/** `--name`, `--name=...`, `-x`: what an option looks like, as opposed to an argument such as a kid. */
const OPTION_LIKE = /^(--[a-z][a-z0-9-]*(=|$)|-[a-zA-Z]$)/

/**
 * Rewrites argv so that parseArgs sees every argument as one: after `--`, and any word that starts
 * with `-` but is no option of the command and does not look like one. A kid is a base64url
 * thumbprint (RFC 7638), so one in 64 starts with `-` (`keys activate -Q_jF...`); parseArgs alone
 * would call it an unknown option. A string option's value that starts with `-` is joined to it
 * (`--file=-x`). Commands without arguments keep parseArgs's own answer for unknown options.
 */
function separatePositionals(cmd: CommandSpec, argv: readonly string[]): string[] {
  const specs = optionsOf(cmd)
  const byShort = new Map(Object.entries(specs).flatMap(([n, o]) => (o.short ? [[o.short, n] as const] : [])))
  const optionOf = (a: string): string | undefined => {
    if (a.startsWith('--')) {
      const name = a.slice(2).split('=')[0]!
      return name in specs ? name : undefined
    }
    return a.length === 2 ? byShort.get(a[1]!) : undefined
  }
  const takesArgs = (cmd.args ?? []).length > 0
  const opts: string[] = []
  const args: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') {
      args.push(...argv.slice(i + 1))
      break
    }
    const name = optionOf(a)
    if (name !== undefined) {
      const next = argv[i + 1]
      if (specs[name]!.type === 'string' && !a.includes('=') && next !== undefined && next.startsWith('-') && next !== '--' && !OPTION_LIKE.test(next)) {
        opts.push(`--${name}=${next}`)
        i++
      } else {
        opts.push(a)
        if (specs[name]!.type === 'string' && !a.includes('=') && next !== undefined && !next.startsWith('-')) opts.push(argv[++i]!)
      }
    } else if (a.startsWith('-') && a !== '-' && (!takesArgs || OPTION_LIKE.test(a))) {
      opts.push(a)
    } else {
      args.push(a)
    }
  }
  return [...opts, '--', ...args]
}

/** Parses one command's argv (after `<group> <command>`); UsageError on anything unknown or missing. */
export function parseCommand(cmd: CommandSpec, argv: string[]): { values: Values; args: string[] } {
  const options = Object.fromEntries(
    Object.entries(optionsOf(cmd)).map(([n, o]) => [n, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]),
  )
  let parsed
  try {
    parsed = parseArgs({ args: separatePositionals(cmd, argv), options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!.replace(/^Unknown option '(.*?)'.*$/, 'unknown option $1'))
  }
  const values = parsed.values as Values
  if (values.help) return { values, args: parsed.positionals }
  const specs = cmd.args ?? []
  const required = specs.filter((a) => !a.optional).length
  if (parsed.positionals.length < required) throw new UsageError(`missing <${specs[parsed.positionals.length]!.name}>`)
  if (parsed.positionals.length > specs.length) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[specs.length])}`)
  return { values, args: parsed.positionals }
}

export function str(values: Values, name: string): string | undefined {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

export function list(values: Values, name: string): string[] {
  const v = values[name]
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : []
}

export function positiveInt(values: Values, name: string, max: number): number | undefined {
  const v = str(values, name)
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new UsageError(`--${name} must be a whole number from 1 to ${max}`)
  return Number(v)
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = ''
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8')
  return text
}

/** A line typed at the terminal, not echoed (passwords). */
async function promptHidden(io: CliIO, question: string): Promise<string> {
  const muted = new Writable({ write: (_chunk, _enc, cb) => cb() })
  const rl = createInterface({ input: io.stdin, output: muted, terminal: true })
  io.stderr.write(question)
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve))
  } finally {
    rl.close()
    io.stderr.write('\n')
  }
}

async function promptLine(io: CliIO, question: string): Promise<string> {
  const rl = createInterface({ input: io.stdin, terminal: false })
  io.stderr.write(question)
  try {
    return await new Promise<string>((resolve) => {
      rl.once('line', resolve)
      rl.once('close', () => resolve(''))
    })
  } finally {
    rl.close()
  }
}

export const PASSWORD_OPTIONS: Record<string, OptionSpec> = {
  'password-stdin': { type: 'boolean', description: 'read the password from standard input (one trailing newline is dropped)' },
  'password-file': { type: 'string', value: 'file', description: 'read the password from a file (one trailing newline is dropped)' },
}

/**
 * A password from stdin, a file, or a hidden prompt on a terminal; never from
 * the command line, where it would sit in the shell history and `ps`.
 */
export async function readPassword(io: CliIO, values: Values): Promise<string> {
  const file = str(values, 'password-file')
  if (values['password-stdin'] && file !== undefined) throw new UsageError('use one of --password-stdin, --password-file')
  const trim = (s: string): string => s.replace(/\r?\n$/, '')
  if (values['password-stdin']) return trim(await readAll(io.stdin))
  if (file !== undefined) {
    try {
      return trim(await readFile(file, 'utf8'))
    } catch (err) {
      throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
    }
  }
  if (!io.stdin.isTTY) throw new UsageError('give the password with --password-stdin or --password-file (never on the command line)')
  const first = await promptHidden(io, 'Password: ')
  const again = await promptHidden(io, 'Repeat the password: ')
  if (first !== again) throw new CliError('the passwords do not match')
  return first
}

export function makeInvocation(io: CliIO, parsed: { values: Values; args: string[] }): Invocation {
  const json = parsed.values.json === true
  return {
    ...parsed,
    print(human, value) {
      io.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : human.endsWith('\n') || human === '' ? human : `${human}\n`)
    },
    async confirm(question) {
      if (parsed.values.yes === true) return
      if (!io.stdin.isTTY) throw new CliError(`refusing without confirmation (${question.replace(/\?$/, '')}): pass --yes`, EXIT_FAILURE, 'refused')
      const answer = (await promptLine(io, `${question} [y/N] `)).trim().toLowerCase()
      if (answer !== 'y' && answer !== 'yes') throw new CliError('aborted', EXIT_FAILURE, 'aborted')
    },
  }
}
