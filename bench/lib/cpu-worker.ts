import { createPrivateKey, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose'
import { hashPassword, verifyPassword } from '../../services/auth/src/index.js'
import { serveRuns } from './children.js'

/**
 * The references that are pure computation, each in a process of its own pinned to the servers'
 * CPU: RS256 signing with jose (what the auth service signs with) and with node:crypto directly,
 * and the password KDF alone (the very function the password grant calls, so its parameters are
 * the service's by construction).
 */

export type CpuJob = { kind: 'sign-jose' | 'sign-node'; seconds: number } | { kind: 'kdf'; seconds: number; concurrency: number }

export interface CpuResult {
  ops: number
  seconds: number
  rate: number
}

let keys: { privateKey: CryptoKey; nodeKey: KeyObject; kid: string } | undefined
let phc: string | undefined

async function signingKeys(): Promise<NonNullable<typeof keys>> {
  if (keys === undefined) {
    const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true })
    const jwk = await exportJWK(privateKey)
    keys = { privateKey, nodeKey: createPrivateKey({ key: jwk as never, format: 'jwk' }), kid: 'bench' }
  }
  return keys
}

/** The claims of a client_credentials access token as the auth service writes them (tokens/access-tokens.ts). */
function claims(): Record<string, unknown> {
  return { client_id: 'bench-service', scope: 'documents:read', jti: randomBytes(16).toString('base64url') }
}

async function signJose(seconds: number): Promise<CpuResult> {
  const { privateKey, kid } = await signingKeys()
  const start = performance.now()
  const end = start + seconds * 1000
  let ops = 0
  // One signature in flight at a time: the rate of one core (jose signs through WebCrypto, on
  // libuv's pool, and this process is pinned to one CPU).
  while (performance.now() < end) {
    const iat = Math.floor(Date.now() / 1000)
    await new SignJWT(claims())
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
      .setIssuer('http://127.0.0.1:4000')
      .setSubject('bench-service')
      .setAudience('api://resource')
      .setIssuedAt(iat)
      .setExpirationTime(iat + 900)
      .sign(privateKey)
    ops++
  }
  const elapsed = (performance.now() - start) / 1000
  return { ops, seconds: elapsed, rate: ops / elapsed }
}

function signNode(seconds: number): CpuResult {
  const { nodeKey } = keys!
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'bench' })).toString('base64url')
  const start = performance.now()
  const end = start + seconds * 1000
  let ops = 0
  while (performance.now() < end) {
    const payload = Buffer.from(JSON.stringify({ iss: 'http://127.0.0.1:4000', sub: 'bench-service', aud: 'api://resource', ...claims() })).toString('base64url')
    nodeSign('sha256', Buffer.from(`${header}.${payload}`), nodeKey)
    ops++
  }
  const elapsed = (performance.now() - start) / 1000
  return { ops, seconds: elapsed, rate: ops / elapsed }
}

async function kdf(seconds: number, concurrency: number): Promise<CpuResult> {
  phc ??= await hashPassword('bench-password-0')
  const start = performance.now()
  const end = start + seconds * 1000
  let ops = 0
  const lane = async (): Promise<void> => {
    while (performance.now() < end) {
      if (!(await verifyPassword(phc!, 'bench-password-0'))) throw new Error('the KDF rejected the right password')
      ops++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const elapsed = (performance.now() - start) / 1000
  return { ops, seconds: elapsed, rate: ops / elapsed }
}

async function runJob(job: CpuJob): Promise<CpuResult> {
  switch (job.kind) {
    case 'sign-jose':
      return await signJose(job.seconds)
    case 'sign-node':
      await signingKeys()
      return signNode(job.seconds)
    case 'kdf':
      return await kdf(job.seconds, job.concurrency)
  }
}

serveRuns(runJob)
