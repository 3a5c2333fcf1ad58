/**
 * Issue 20, defect 2: a Redis freeze longer than the reuse-grace window must not revoke families
 * whose clients only retried. Real processes: a private redis-server frozen with SIGSTOP and
 * thawed with SIGCONT, the built auth service on the real clock, clients over real HTTP.
 *
 * During the freeze each client's rotation times out (503) but its command stays queued in
 * Redis and runs on resume: it rotates the family, and its reply is thrown away. The client then
 * retries its token. Before the fix the window was measured with the replica's clock when the
 * command was built, so the retry, stamped more than REFRESH_REUSE_GRACE after the queued
 * rotation, counted as reuse and revoked every family. Now the window is measured on Redis's own
 * clock at execution (TIME in the script): the retry gets the successor the queued rotation made.
 *
 * The freeze lasts FREEZE_MS, well past the grace window, and the retries follow the thaw at
 * once (well within it): both margins are seconds, so the outcome does not depend on scheduling.
 */
import t from 'tap'
import { postToken, startStack } from '@gatehouse/test-harness'

const RECENT_REVOCATIONS_KEY = 'gatehouse:revocations:recent'
const GRACE_S = 5
const FREEZE_MS = 10_000
const CLIENTS = 5

t.test(`Redis frozen ${FREEZE_MS} ms (grace ${GRACE_S} s) under rotations: no family revoked, no 500`, async (t) => {
  const { redis, issuer, auth } = await startStack(t, {
    auth: { REFRESH_REUSE_GRACE: String(GRACE_S) },
    resource: false,
    timeoutMs: 30_000, // start-up on a loaded machine; the fault timings below do not depend on it
  })
  const admin = await redis.client()
  t.teardown(() => admin.close())

  const logins = await Promise.all(Array.from({ length: CLIENTS }, () => postToken(issuer, { grant_type: 'password', username: 'alice', password: 'alice-password' })))
  t.ok(logins.every((l) => l.status === 200), `${CLIENTS} clients logged in`)
  const held = logins.map((l) => l.body.refresh_token!)
  const statuses: number[] = []

  redis.pause()
  const frozenAt = Date.now()
  let thawed = false
  t.teardown(() => {
    if (!thawed) redis.resume()
  })
  // Each client tries to rotate, times out (503), and tries again: both commands wait in Redis.
  for (let attempt = 0; attempt < 2; attempt++) {
    const answers = await Promise.all(held.map((rt) => postToken(issuer, { grant_type: 'refresh_token', refresh_token: rt })))
    for (const a of answers) statuses.push(a.status)
    t.ok(answers.every((a) => a.status === 503 && a.body.error === 'temporarily_unavailable'), `attempt ${attempt + 1} during the freeze: 503 temporarily_unavailable`)
  }
  // The fault's length is the point of this test: the freeze must outlast the grace window.
  await new Promise((r) => setTimeout(r, Math.max(0, frozenAt + FREEZE_MS - Date.now())))
  redis.resume()
  thawed = true

  // The clients retry the token they hold until the service answers something other than 503.
  const after = await Promise.all(
    held.map(async (rt) => {
      const deadline = Date.now() + 5_000
      for (;;) {
        const a = await postToken(issuer, { grant_type: 'refresh_token', refresh_token: rt })
        statuses.push(a.status)
        if (a.status !== 503 || Date.now() > deadline) return a
        await new Promise((r) => setTimeout(r, 20))
      }
    }),
  )
  t.same(after.map((a) => a.status), after.map(() => 200), 'every retry after the thaw gets tokens (a retry, not reuse)')
  const next = await Promise.all(after.map((a) => postToken(issuer, { grant_type: 'refresh_token', refresh_token: a.body.refresh_token ?? 'x' })))
  t.same(next.map((a) => a.status), next.map(() => 200), 'and every family rotates on')

  const sidOf = (at: string | undefined): string => (JSON.parse(Buffer.from(at?.split('.')[1] ?? '', 'base64url').toString()) as { sid: string }).sid
  const revoked: string[] = []
  for (const l of logins) {
    const sid = sidOf(l.body.access_token)
    if ((await admin.call('HGET', `gatehouse:fam:{${sid}}`, 'revoked')) !== '0') revoked.push(sid)
  }
  t.same(revoked, [], '0 false revocations')
  t.equal(await admin.call('ZCARD', RECENT_REVOCATIONS_KEY), 0, 'nothing announced')
  t.notOk(auth.output.some((l) => l.includes('reuse_detected')), 'no reuse detected')
  t.same(statuses.filter((s) => s === 500), [], '0 × 500')
})
