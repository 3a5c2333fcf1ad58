import { spawn, type ChildProcess } from 'node:child_process'
import { killAtExit } from './exit-hooks.js'

export interface ServiceProcess {
  url: string
  port: number
  child: ChildProcess
  /** Every line the process printed (stdout and stderr), for log assertions. */
  output: string[]
  /** SIGTERM, then wait for exit (SIGKILL after the bound). Resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>
}

export interface StartServiceOptions {
  /** The built entry point, e.g. services/auth/dist/server.js. */
  script: string
  env: Record<string, string>
  port: number
  /** Path polled until it answers 200 (default /healthz). */
  readyPath?: string
  timeoutMs?: number
}

/** Spawns a service as a real process on 127.0.0.1 and waits until it answers. */
export async function startService(opts: StartServiceOptions): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [opts.script], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(opts.port), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  killAtExit(child)
  const output: string[] = []
  const collect = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) if (line) output.push(line)
  }
  child.stdout!.on('data', collect)
  child.stderr!.on('data', collect)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const url = `http://127.0.0.1:${opts.port}`
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000)
  let exitCode: number | null | undefined
  void exited.then((c) => (exitCode = c))
  for (;;) {
    if (exitCode !== undefined) throw new Error(`${opts.script} exited with ${exitCode} before it was ready:\n${output.join('\n')}`)
    try {
      const res = await fetch(url + (opts.readyPath ?? '/healthz'))
      if (res.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${opts.script} did not become ready:\n${output.join('\n')}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    port: opts.port,
    child,
    output,
    async stop(timeoutMs = 10_000) {
      if (exitCode !== undefined) return exitCode
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      const code = await exited
      clearTimeout(timer)
      return code
    },
  }
}

/** Runs a process to completion, collecting output (for start-up failure tests and CLIs). */
export async function runProcess(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')))
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}
