#!/usr/bin/env node
// Reads a TAP 14 stream (tap -R tap) on stdin, echoes it, and prints one closing
// line "N passed, N failed[, N skipped]" counting leaf assertions. A subtest
// (a test file, a t.test block) that failed without any failing child (a
// crash, a timeout, a thrown error) counts as one failure of its own.
import { createInterface } from 'node:readline'

const rl = createInterface({ input: process.stdin })
let passed = 0
let failed = 0
let skipped = 0
let prevIndent = -1
// failures seen inside the block that a parent line closes, per indent depth
const childFailures = new Map()

rl.on('line', (line) => {
  process.stdout.write(line + '\n')
  const m = /^(\s*)(not ok|ok)\b(.*)$/.exec(line)
  const trimmed = line.trim()
  if (!m) {
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith('---') || trimmed === '...') return
    // YAML diagnostics and other lines do not move the indent marker
    if (/^\s*1\.\.\d+/.test(line) || /^\s*TAP version/.test(line)) prevIndent = line.length - line.trimStart().length
    return
  }
  const indent = m[1].length
  const ok = m[2] === 'ok'
  const directive = /#\s*(skip|todo)\b/i.test(m[3])
  const isParent = prevIndent >= indent + 4
  if (isParent) {
    const inner = childFailures.get(indent + 4) ?? 0
    childFailures.set(indent + 4, 0)
    if (!ok && inner === 0) {
      failed++
      childFailures.set(indent, (childFailures.get(indent) ?? 0) + 1)
    } else if (inner > 0) {
      childFailures.set(indent, (childFailures.get(indent) ?? 0) + inner)
    }
  } else if (directive) {
    skipped++
  } else if (ok) {
    passed++
  } else {
    failed++
    childFailures.set(indent, (childFailures.get(indent) ?? 0) + 1)
  }
  prevIndent = indent
})

rl.on('close', () => {
  const extra = process.argv[2] ? Number(process.argv[2]) : 0
  failed += extra
  process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`)
  process.exitCode = failed > 0 ? 1 : 0
})
