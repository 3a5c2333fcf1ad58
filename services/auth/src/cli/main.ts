#!/usr/bin/env node
import { run } from './run.js'

/** The `gatehouse` binary (pnpm gatehouse ..., or `gatehouse` in the container image). */
const code = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env })
// Let pending writes to a pipe drain before the status is returned.
process.exitCode = code
