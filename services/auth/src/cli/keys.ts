import { open } from 'node:fs/promises'
import { activateKey, addNextKey, describeKeys, dueRotationStep, KeyLifecycleError, retireKey, type KeyChange, type KeyEvent, type KeyPolicy, type KeyStatus } from '../keys/key-lifecycle.js'
import { applyKeyChange, type KeySetStore } from '../keys/key-store.js'
import { keySetFromJwks, KeySetError, newKeySetDocument, type LoadedKeySet } from '../keys/signing-keys.js'
import type { CliContext } from './context.js'
import { audit } from '../audit/trail.js'
import { CliError, str, type CommandSpec, type GroupSpec, type Invocation, type OptionSpec } from './framework.js'

const FILE: Record<string, OptionSpec> = {
  file: { type: 'string', value: 'file', description: 'work on this key set file (default: where the service keeps it: Redis with SIGNING_KEYS_STORE=redis, else SIGNING_KEYS_FILE)' },
}

const iso = (s: number | null): string | null => (s === null ? null : new Date(s * 1000).toISOString())

function statusJson(s: KeyStatus): Record<string, unknown> {
  return {
    kid: s.kid,
    state: s.state,
    published_at: iso(s.publishedAt),
    activate_at: iso(s.activateAt),
    activate_after: iso(s.activateAfter),
    superseded_at: iso(s.supersededAt),
    remove_after: iso(s.removeAfter),
  }
}

function statusLine(s: KeyStatus): string {
  const when =
    s.state === 'next'
      ? s.activateAt !== null
        ? `activates ${iso(s.activateAt)}`
        : `may be activated from ${iso(s.activateAfter) ?? 'now'}`
      : s.state === 'retiring'
        ? `superseded ${iso(s.supersededAt)}, may be retired from ${iso(s.removeAfter)}`
        : s.activateAt !== null && s.activateAt > 0
          ? `signing since ${iso(s.activateAt)}`
          : 'signing'
  return `${s.kid}  ${s.state.padEnd(8)}  ${when}`
}

/** Audit event names of the CLI's key steps (the service logs the automatic ones as keys.*). */
const ADMIN_EVENT: Record<KeyEvent['event'], `admin.${string}`> = {
  'keys.next_added': 'admin.key_added',
  'keys.activated': 'admin.key_activated',
  'keys.retired': 'admin.key_retired',
}

function mapLifecycleError(err: unknown): never {
  if (err instanceof KeyLifecycleError) throw new CliError(err.message, 1, err.code)
  if (err instanceof KeySetError) throw new CliError(err.message, 1, 'key_set')
  throw err
}

async function step(ctx: CliContext, store: KeySetStore, fn: (set: LoadedKeySet) => KeyChange | null | Promise<KeyChange | null>) {
  let applied
  try {
    applied = await applyKeyChange(store, ctx.clock, fn)
  } catch (err) {
    mapLifecycleError(err)
  }
  for (const e of applied?.events ?? []) {
    const { event, ...fields } = e
    audit(ctx.audit, await ctx.trail.open(), { event: ADMIN_EVENT[event], actor: ctx.actor, store: store.location, ...fields }, 'signing key set changed')
  }
  return applied
}

async function show(ctx: CliContext, inv: Invocation, store: KeySetStore, set: LoadedKeySet, policy: KeyPolicy, extra: Record<string, unknown> = {}, headline = ''): Promise<void> {
  const status = describeKeys(set, ctx.clock(), policy)
  inv.print(`${headline ? `${headline}\n` : ''}${status.map(statusLine).join('\n')}`, { ...extra, store: store.location, keys: status.map(statusJson) })
}

export function keysGroup(ctx: CliContext): GroupSpec {
  const generate: CommandSpec = {
    name: 'generate',
    summary: 'write a new key set (one RSA-2048 key, active now) for SIGNING_KEYS_FILE',
    details: 'The file holds private keys: it is created with mode 0600 and never overwritten without --force.',
    options: {
      out: { type: 'string', value: 'file', description: 'where to write the key set (required)' },
      force: { type: 'boolean', description: 'replace an existing file' },
    },
    examples: ['gatehouse keys generate --out keys.jwks.json'],
    async run(inv) {
      const out = str(inv.values, 'out')
      if (out === undefined) throw new CliError('--out <file> is required', 2, 'usage')
      const doc = await newKeySetDocument(ctx.clock())
      let handle
      try {
        handle = await open(out, inv.values.force ? 'w' : 'wx', 0o600)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        throw new CliError(code === 'EEXIST' ? `${out} exists (pass --force to replace it)` : `cannot write ${out}: ${code ?? 'error'}`)
      }
      try {
        await handle.chmod(0o600)
        await handle.writeFile(`${JSON.stringify(doc, null, 2)}\n`)
      } finally {
        await handle.close()
      }
      const kid = doc.keys[0]!.kid!
      audit(ctx.audit, await ctx.trail.open(), { event: 'admin.keys_generated', actor: ctx.actor, file: out, kid }, 'key set generated')
      inv.print(`wrote ${out} with key ${kid}`, { file: out, kids: [kid] })
    },
  }

  const listCmd: CommandSpec = {
    name: 'list',
    summary: 'show every key of the set with its state and timings',
    options: FILE,
    examples: ['gatehouse keys list', 'gatehouse keys list --file keys.jwks.json --json'],
    async run(inv) {
      const { store, policy } = await ctx.keyStore(str(inv.values, 'file'))
      let set
      try {
        const got = await store.read()
        if (got === null) throw new KeySetError(`there is no key set at ${store.location}`)
        set = await keySetFromJwks(got.doc, ctx.clock())
      } catch (err) {
        mapLifecycleError(err)
      }
      await show(ctx, inv, store, set, policy)
    },
  }

  const addNext: CommandSpec = {
    name: 'add-next',
    summary: 'publish a new key that will sign after `keys activate` (or at once with --schedule)',
    details:
      'The key is published at /jwks.json at once but may sign only after JWKS_MAX_AGE + KEYS_RELOAD_INTERVAL +\n' +
      'KEY_ROTATION_MARGIN seconds, when every verifier has seen it. --schedule sets its activation for that\n' +
      'moment, so the rotation completes without a second command.',
    options: { ...FILE, schedule: { type: 'boolean', description: 'activate it automatically once it may sign' } },
    examples: ['gatehouse keys add-next', 'gatehouse keys add-next --schedule --json'],
    async run(inv) {
      const { store, policy } = await ctx.keyStore(str(inv.values, 'file'))
      const applied = await step(ctx, store, (set) => addNextKey(set, ctx.clock(), policy, { schedule: inv.values.schedule === true }))
      const e = applied!.events[0]!
      await show(ctx, inv, store, applied!.set, policy, { kid: e.kid, activate_after: iso(e.activate_after as number) }, `published key ${e.kid}; it may sign from ${iso(e.activate_after as number)}`)
    },
  }

  const activate: CommandSpec = {
    name: 'activate',
    summary: 'make a published key the signing key (every replica switches at the same instant)',
    details:
      'Refused until the key has been published for JWKS_MAX_AGE + KEYS_RELOAD_INTERVAL + KEY_ROTATION_MARGIN\n' +
      'seconds. The switch is scheduled KEYS_RELOAD_INTERVAL ahead so every replica has read it. --force (an\n' +
      'emergency) switches at once; verifiers that have not seen the key yet fetch it on its unknown kid.',
    args: [{ name: 'kid', description: 'the key to activate (see `keys list`)' }],
    options: { ...FILE, force: { type: 'boolean', description: 'skip the publication wait (asks for confirmation)' } },
    destructive: true,
    examples: ['gatehouse keys activate 3vJ0...Q', 'gatehouse keys activate 3vJ0...Q --force --yes'],
    async run(inv) {
      const kid = inv.args[0]!
      const force = inv.values.force === true
      if (force) await inv.confirm(`Activate ${kid} now, before every verifier may have it?`)
      const { store, policy } = await ctx.keyStore(str(inv.values, 'file'))
      const applied = await step(ctx, store, (set) => activateKey(set, kid, ctx.clock(), policy, { force }))
      const at = applied!.events[0]!.activate_at as number
      await show(ctx, inv, store, applied!.set, policy, { kid, activate_at: iso(at) }, `key ${kid} signs from ${iso(at)}`)
    },
  }

  const retire: CommandSpec = {
    name: 'retire',
    summary: 'unpublish a key that no longer signs, once every token it signed has expired',
    details:
      'Refused while tokens signed by the key may still be valid (ACCESS_TOKEN_TTL + KEYS_RELOAD_INTERVAL +\n' +
      'KEY_ROTATION_MARGIN after its successor took over). --force removes it at once: for a compromised key,\n' +
      'whose tokens then fail everywhere. A key that never signed may be removed at any time.',
    args: [{ name: 'kid', description: 'the key to remove (see `keys list`)' }],
    options: { ...FILE, force: { type: 'boolean', description: 'remove it even though its tokens may still be valid' } },
    destructive: true,
    examples: ['gatehouse keys retire 9fQx...A --yes'],
    async run(inv) {
      const kid = inv.args[0]!
      const force = inv.values.force === true
      await inv.confirm(force ? `Remove ${kid} now, failing every token it signed?` : `Remove key ${kid} from the set?`)
      const { store, policy } = await ctx.keyStore(str(inv.values, 'file'))
      const applied = await step(ctx, store, (set) => retireKey(set, kid, ctx.clock(), policy, { force }))
      await show(ctx, inv, store, applied!.set, policy, { kid }, `retired key ${kid}`)
    },
  }

  const rotate: CommandSpec = {
    name: 'rotate',
    summary: 'take the rotation steps that are due now (what automatic rotation does each round)',
    details:
      'Removes retiring keys whose tokens have all expired and, when the active key has signed for\n' +
      'KEY_ROTATION_INTERVAL (or with --now), publishes a new key scheduled to sign after the publication\n' +
      'wait. Safe to run as often as you like (e.g. a cron job or Kubernetes CronJob for a key file).',
    options: { ...FILE, now: { type: 'boolean', description: 'start a rotation now whatever the active key’s age' } },
    examples: ['gatehouse keys rotate', 'gatehouse keys rotate --now --file keys.jwks.json'],
    async run(inv) {
      const { store, policy } = await ctx.keyStore(str(inv.values, 'file'))
      const events: KeyEvent[] = []
      let set: LoadedKeySet | undefined
      let forceNow = inv.values.now === true
      for (let i = 0; i < 10; i++) {
        const now = forceNow
        const applied = await step(ctx, store, (s) => dueRotationStep(s, ctx.clock(), policy, { now }))
        if (applied === null) break
        // --now asks for one rotation; later rounds only clean up.
        if (applied.events.some((e) => e.event === 'keys.next_added')) forceNow = false
        events.push(...applied.events)
        set = applied.set
      }
      if (set === undefined) {
        const got = await store.read()
        if (got === null) throw new CliError(`there is no key set at ${store.location}`)
        set = await keySetFromJwks(got.doc, ctx.clock())
      }
      const summary = events.length === 0 ? 'nothing to do' : events.map((e) => `${e.event.replace('keys.', '')} ${e.kid}`).join('\n')
      await show(ctx, inv, store, set, policy, { steps: events.map((e) => ({ ...e, event: ADMIN_EVENT[e.event] })) }, summary)
    },
  }

  return {
    name: 'keys',
    summary: 'signing keys: generate a set, rotate (add-next, activate, retire), list',
    commands: [generate, listCmd, addNext, activate, retire, rotate],
  }
}
