import { AdminError } from './admin.js'
import { KeyLifecycleError } from '../keys/key-lifecycle.js'
import { KeySetError } from '../keys/signing-keys.js'
import { StoreUnavailable } from '../store/types.js'
import { auditGroup } from './audit.js'
import { clientsGroup } from './clients.js'
import { dbGroup } from './db.js'
import { CliContext } from './context.js'
import { CliError, commandHelp, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, groupHelp, makeInvocation, parseCommand, topHelp, UsageError, type CliIO, type GroupSpec } from './framework.js'
import { keysGroup } from './keys.js'
import { sessionsGroup } from './sessions.js'
import { usersGroup } from './users.js'

function asCliError(err: unknown): CliError {
  if (err instanceof CliError) return err
  if (err instanceof AdminError) return new CliError(err.message, err.code === 'invalid' ? EXIT_USAGE : EXIT_FAILURE, err.code)
  if (err instanceof KeyLifecycleError) return new CliError(err.message, EXIT_FAILURE, err.code)
  if (err instanceof KeySetError) return new CliError(err.message, EXIT_FAILURE, 'key_set')
  if (err instanceof StoreUnavailable) return new CliError(`${err.message.startsWith('postgres:') ? 'PostgreSQL' : 'Redis'} is unavailable: ${err.message}`, EXIT_FAILURE, 'unavailable')
  // Anything else is a bug: one line, no stack trace (the message is enough to report it).
  return new CliError(`unexpected error: ${err instanceof Error ? err.message : String(err)}`, EXIT_FAILURE, 'internal')
}

/**
 * `gatehouse <group> <command> [options]`: runs one command and returns the
 * exit status. Never throws and never calls process.exit, so tests run it
 * in-process with their own streams, environment and clock.
 */
export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const ctx = new CliContext(io)
  const groups: GroupSpec[] = [keysGroup(ctx), usersGroup(ctx), clientsGroup(ctx), sessionsGroup(ctx), auditGroup(ctx), dbGroup(ctx)]
  const json = argv.includes('--json')
  try {
    const [groupName, commandName, ...rest] = argv
    if (groupName === undefined || groupName === '--help' || groupName === '-h' || groupName === 'help') {
      io.stdout.write(topHelp(groups))
      return groupName === undefined ? EXIT_USAGE : EXIT_OK
    }
    const group = groups.find((g) => g.name === groupName)
    if (!group) throw new UsageError(`unknown group ${JSON.stringify(groupName)} (one of ${groups.map((g) => g.name).join(', ')})`)
    if (commandName === undefined || commandName === '--help' || commandName === '-h' || commandName === 'help') {
      io.stdout.write(groupHelp(group))
      return commandName === undefined ? EXIT_USAGE : EXIT_OK
    }
    const command = group.commands.find((c) => c.name === commandName)
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(`${groupName} ${commandName}`)} (one of ${group.commands.map((c) => c.name).join(', ')})`)
    let parsed
    try {
      parsed = parseCommand(command, rest)
    } catch (err) {
      if (err instanceof UsageError) throw new UsageError(`${err.message}\nRun \`gatehouse ${group.name} ${command.name} --help\` for usage.`)
      throw err
    }
    if (parsed.values.help) {
      io.stdout.write(commandHelp(group, command))
      return EXIT_OK
    }
    await command.run(makeInvocation(io, parsed))
    return EXIT_OK
  } catch (raw) {
    const err = asCliError(raw)
    io.stderr.write(`gatehouse: ${err.message}\n`)
    if (json) io.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message }, ...err.detail }, null, 2)}\n`)
    return err.exitCode
  } finally {
    await ctx.close()
  }
}
