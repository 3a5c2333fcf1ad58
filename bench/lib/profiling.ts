import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { REPO_ROOT } from './children.js'
import { formatSummary, summarizeDir } from './profile.js'
import type { BenchSettings } from './context.js'
import { Scope, startAuth, type ServerHandle } from './stack.js'

/**
 * `--profile`: after a scenario's measurements, each subject runs once more on a fresh server
 * started with --cpu-prof, under the same load; the server is stopped right after (which writes
 * the profile) and the samples of the load's last `seconds` are summarized. The raw profiles stay
 * in .bench/profiles/ for Chrome DevTools or speedscope.
 */
export async function profileSubject(
  scenario: string,
  subject: string,
  seconds: number,
  start: (scope: Scope, nodeFlags: string[]) => Promise<ServerHandle>,
  load: (server: ServerHandle) => Promise<void>,
): Promise<string> {
  const dir = join(REPO_ROOT, '.bench', 'profiles', `${scenario}-${subject}`)
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const scope = new Scope()
  try {
    const server = await start(scope, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
    await load(server)
    await server.child.stop()
  } finally {
    await scope.close()
  }
  const [main] = await summarizeDir(dir, 15, seconds * 1000)
  if (main === undefined) return `${scenario}/${subject}: no profile was written`
  return formatSummary(main, `${scenario}/${subject} (profile in ${join('.bench', 'profiles', `${scenario}-${subject}`)})`)
}

/** `--profile` of a scenario whose subject is the auth service (on the scenario's Redis); nothing without the flag. */
export async function profileAuth(
  settings: BenchSettings,
  scenario: string,
  subject: string,
  redisUrl: string,
  load: (server: ServerHandle) => Promise<void>,
): Promise<string[]> {
  if (!settings.profile) return []
  settings.log(`${scenario}: profiling ${subject}`)
  const start = (scope: Scope, nodeFlags: string[]): Promise<ServerHandle> => startAuth(scope, { redisUrl, cpu: settings.placement.server, nodeFlags })
  return [await profileSubject(scenario, subject, settings.seconds, start, load)]
}
