/**
 * Loaded (--import) into every benchmark child: when the benchmark process goes away, its IPC
 * channel closes and the child exits too, so no server or load generator outlives a run that was
 * killed (Ctrl-C, tap's timeout, a crash).
 */
if (typeof process.send === 'function') {
  process.on('disconnect', () => process.exit(0))
}
