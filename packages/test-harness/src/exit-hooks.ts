import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'

/**
 * What a test process leaves behind is cleaned up when it exits, even when a test forgot to (or
 * failed before it could): every child tracked here is killed, every directory removed.
 */

const children = new Set<ChildProcess>()
const directories = new Set<string>()
let installed = false

function install(): void {
  if (installed) return
  installed = true
  process.once('exit', () => {
    for (const c of children) c.kill('SIGKILL')
    for (const d of directories) rmSync(d, { recursive: true, force: true })
  })
}

/** Kills `child` at exit unless it has exited by then. */
export function killAtExit(child: ChildProcess): void {
  install()
  children.add(child)
  child.once('exit', () => children.delete(child))
}

/** Removes `dir` at exit unless forgetDirectory() was called first. */
export function removeAtExit(dir: string): void {
  install()
  directories.add(dir)
}

export function forgetDirectory(dir: string): void {
  directories.delete(dir)
}
