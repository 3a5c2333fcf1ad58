import { pgCall } from '../database/pg-call.js'
import type { Pool } from '../database/pool.js'
import {
  isFactorId, isFactorNumber, storedText,
  type AddFactorResult, type Factor, type FactorKind, type FactorStore, type PasskeyFactor, type PasskeyUse, type RecoveryCodesFactor,
} from './factors.js'

/**
 * Second factors in PostgreSQL (DESIGN §10.5; the table second_factors of
 * migrations/0003_factors.sql): one row per factor, removed with its user by the foreign key's
 * ON DELETE CASCADE. The database decides uniqueness (a credential id across users; one TOTP and
 * one recovery set per user), even between two concurrent adds. Every use is one UPDATE whose
 * WHERE holds the rule, so of two replicas (or ten requests) presenting the same step, counter or
 * code, the row lock lets exactly one through: the others re-check the WHERE against the row the
 * first wrote, and match nothing. Queries are parameterized and go through pgCall (503, never 500).
 */

/** Times travel as ms since the epoch, exactly (integer microseconds; no float on the way). */
const MS = (p: string): string => `(timestamptz 'epoch' + ${p}::bigint * interval '1 millisecond')`
const EPOCH_MS = (c: string): string => `(extract(epoch FROM ${c}) * 1000)::bigint`
const COLUMNS = `id, user_id, kind, credential_id, data, ${EPOCH_MS('created_at')} AS created_ms, ${EPOCH_MS('last_used_at')} AS last_used_ms, seq`

interface FactorRow {
  id: string
  user_id: string
  kind: FactorKind
  credential_id: string | null
  data: Record<string, unknown>
  /** bigint: a string from the driver */
  created_ms: string
  last_used_ms: string | null
  seq: string
}

/** SQLSTATE 23503: the user the factor names is not (or no longer) in the users table. */
const FOREIGN_KEY_VIOLATION = '23503'

/** PostgreSQL text cannot hold NUL: such a key names no row (and must not become a 503). */
function unusable(key: string): boolean {
  return typeof key !== 'string' || key.length === 0 || key.includes('\u0000')
}

/** What is kind-specific, as the `data` column holds it; every string well-formed, without NUL (jsonb refuses both). */
function dataOf(f: Factor): string {
  const data =
    f.kind === 'totp'
      ? { label: f.label, sealedSecret: f.sealedSecret, lastStep: f.lastStep }
      : f.kind === 'passkey'
        ? { label: f.label, publicKey: f.publicKey, counter: f.counter, transports: f.transports }
        : { label: f.label, codeHashes: f.codeHashes, total: f.total }
  return JSON.stringify(data, (_key, v: unknown) => (typeof v === 'string' ? storedText(v) : v))
}

function toFactor(r: FactorRow): Factor {
  const d = r.data
  const base = {
    id: r.id,
    userId: r.user_id,
    label: String(d.label ?? ''),
    createdAt: Number(r.created_ms),
    ...(r.last_used_ms === null ? {} : { lastUsedAt: Number(r.last_used_ms) }),
  }
  switch (r.kind) {
    case 'totp':
      return { ...base, kind: 'totp', sealedSecret: String(d.sealedSecret), lastStep: Number(d.lastStep) }
    case 'passkey':
      return { ...base, kind: 'passkey', credentialId: r.credential_id ?? '', publicKey: String(d.publicKey), counter: Number(d.counter), transports: Array.isArray(d.transports) ? d.transports.map(String) : [] }
    case 'recovery':
      return { ...base, kind: 'recovery', codeHashes: Array.isArray(d.codeHashes) ? d.codeHashes.map(String) : [], total: Number(d.total) }
  }
}

/** Oldest first: by created_at, then the order added (seq), as the SELECT orders them. */
function ordered(rows: FactorRow[]): Factor[] {
  return [...rows].sort((a, b) => Number(a.created_ms) - Number(b.created_ms) || Number(a.seq) - Number(b.seq)).map(toFactor)
}

export class PgFactorStore implements FactorStore {
  readonly #pool: Pool

  constructor(opts: { pool: Pool }) {
    this.#pool = opts.pool
  }

  async list(userId: string): Promise<Factor[]> {
    if (unusable(userId)) return []
    return ordered(await this.#rows('factors.list', `SELECT ${COLUMNS} FROM second_factors WHERE user_id = $1 ORDER BY created_at, seq`, [userId]))
  }

  /**
   * One INSERT … ON CONFLICT DO NOTHING: a taken id or credential id, or a second TOTP or recovery
   * set, is `exists`, decided by the unique indexes. A user no longer in the directory has nothing
   * to attach a factor to: refused the same way.
   */
  async add(factor: Factor): Promise<AddFactorResult> {
    if (!isFactorId(factor.id)) throw new TypeError('invalid factor id')
    if (unusable(factor.userId) || (factor.kind === 'passkey' && unusable(factor.credentialId))) return 'exists'
    const sql = `INSERT INTO second_factors (id, user_id, kind, credential_id, data, created_at, last_used_at)
      VALUES ($1, $2, $3, $4, $5::jsonb, ${MS('$6')}, ${MS('$7')}) ON CONFLICT DO NOTHING RETURNING id`
    const values = [factor.id, factor.userId, factor.kind, factor.kind === 'passkey' ? factor.credentialId : null, dataOf(factor), Math.trunc(factor.createdAt), factor.lastUsedAt === undefined ? null : Math.trunc(factor.lastUsedAt)]
    return (await this.#rows('factors.add', sql, values, true)).length === 1 ? 'added' : 'exists'
  }

  /** One upsert on the one-per-user index: the new set takes the old one's place (and goes last in the list). */
  async replaceRecoveryCodes(factor: RecoveryCodesFactor): Promise<void> {
    if (!isFactorId(factor.id)) throw new TypeError('invalid factor id')
    if (unusable(factor.userId)) return
    const sql = `INSERT INTO second_factors (id, user_id, kind, data, created_at, last_used_at)
      VALUES ($1, $2, 'recovery', $3::jsonb, ${MS('$4')}, ${MS('$5')})
      ON CONFLICT (user_id, kind) WHERE kind IN ('totp', 'recovery')
      DO UPDATE SET id = EXCLUDED.id, data = EXCLUDED.data, created_at = EXCLUDED.created_at, last_used_at = EXCLUDED.last_used_at, seq = DEFAULT
      RETURNING id`
    await this.#rows('factors.replace_recovery', sql, [factor.id, factor.userId, dataOf(factor), Math.trunc(factor.createdAt), factor.lastUsedAt === undefined ? null : Math.trunc(factor.lastUsedAt)], true)
  }

  async remove(userId: string, factorId: string): Promise<Factor | null> {
    if (unusable(userId) || !isFactorId(factorId)) return null
    const rows = await this.#rows('factors.remove', `DELETE FROM second_factors WHERE id = $1 AND user_id = $2 RETURNING ${COLUMNS}`, [factorId, userId])
    return rows[0] === undefined ? null : toFactor(rows[0])
  }

  async removeAll(userId: string): Promise<Factor[]> {
    if (unusable(userId)) return []
    return ordered(await this.#rows('factors.remove_all', `DELETE FROM second_factors WHERE user_id = $1 RETURNING ${COLUMNS}`, [userId]))
  }

  async findPasskey(credentialId: string): Promise<PasskeyFactor | null> {
    if (unusable(credentialId)) return null
    const rows = await this.#rows('factors.find_passkey', `SELECT ${COLUMNS} FROM second_factors WHERE credential_id = $1`, [credentialId])
    const f = rows[0] === undefined ? null : toFactor(rows[0])
    return f?.kind === 'passkey' ? f : null
  }

  /** RFC 6238 §5.2: the UPDATE matches only while the stored step is earlier. */
  async useTotpStep(userId: string, factorId: string, step: number, at: number): Promise<boolean> {
    if (unusable(userId) || !isFactorId(factorId) || !isFactorNumber(step)) return false
    const sql = `UPDATE second_factors SET data = jsonb_set(data, '{lastStep}', to_jsonb($3::bigint)), last_used_at = ${MS('$4')}
      WHERE id = $1 AND user_id = $2 AND kind = 'totp' AND (data->>'lastStep')::bigint < $3::bigint RETURNING id`
    return (await this.#rows('factors.use_totp', sql, [factorId, userId, step, Math.trunc(at)])).length === 1
  }

  /** WebAuthn §6.1.1: the UPDATE matches only a greater counter, or 0 over 0; no match is `replayed` when the credential exists. */
  async usePasskey(credentialId: string, counter: number, at: number): Promise<PasskeyUse> {
    if (unusable(credentialId)) return { status: 'not_found' }
    if (isFactorNumber(counter)) {
      const sql = `UPDATE second_factors SET data = jsonb_set(data, '{counter}', to_jsonb($2::bigint)), last_used_at = ${MS('$3')}
        WHERE credential_id = $1 AND kind = 'passkey'
          AND ((data->>'counter')::bigint < $2::bigint OR ((data->>'counter')::bigint = 0 AND $2::bigint = 0))
        RETURNING ${COLUMNS}`
      const rows = await this.#rows('factors.use_passkey', sql, [credentialId, counter, Math.trunc(at)])
      const f = rows[0] === undefined ? null : toFactor(rows[0])
      if (f?.kind === 'passkey') return { status: 'ok', factor: f }
    }
    const held = await this.#rows('factors.use_passkey', `SELECT ${COLUMNS} FROM second_factors WHERE credential_id = $1`, [credentialId])
    return held.length === 0 ? { status: 'not_found' } : { status: 'replayed' }
  }

  /** The UPDATE matches only while the digest is in the set, removes it, and returns how many are left. */
  async useRecoveryCode(userId: string, codeHash: string, at: number): Promise<number | null> {
    if (unusable(userId) || typeof codeHash !== 'string' || codeHash.includes('\u0000')) return null
    const sql = `UPDATE second_factors SET data = jsonb_set(data, '{codeHashes}', (data->'codeHashes') - $2::text), last_used_at = ${MS('$3')}
      WHERE user_id = $1 AND kind = 'recovery' AND (data->'codeHashes') ? $2::text
      RETURNING jsonb_array_length(data->'codeHashes') AS left_count`
    const { rows } = await pgCall('factors.use_recovery', () => this.#pool.query<{ left_count: number }>(sql, [userId, codeHash, Math.trunc(at)]))
    return rows[0] === undefined ? null : Number(rows[0].left_count)
  }

  /** Runs one statement; with `userMayBeGone`, a user deleted meanwhile (foreign key) is no rows, not a 503. */
  async #rows(op: string, sql: string, values: unknown[], userMayBeGone = false): Promise<FactorRow[]> {
    return await pgCall(op, async () => {
      try {
        return (await this.#pool.query<FactorRow>(sql, values)).rows
      } catch (err) {
        if (userMayBeGone && (err as { code?: unknown }).code === FOREIGN_KEY_VIOLATION) return []
        throw err
      }
    })
  }
}
