import { spawn } from 'node:child_process'

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs a command to completion, bounded in time (SIGKILL at the bound), never throwing for a
 * non-zero exit. A command that cannot be started (not installed) resolves with code null and
 * the reason in stderr.
 */
export async function run(command: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return await new Promise((resolve) => {
    const child = spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString('utf8')))
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString('utf8')))
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${opts.timeoutMs ?? 60_000} ms]`
      child.kill('SIGKILL')
    }, opts.timeoutMs ?? 60_000)
    child.once('error', (err) => {
      clearTimeout(timer)
      resolve({ code: null, stdout, stderr: `${stderr}${command}: ${err.message}` })
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}
