import { StoreUnavailable } from '../store/types.js'

/**
 * Runs one PostgreSQL operation: any failure the operation did not handle itself (connection
 * refused or lost, pool exhausted past its wait, a cancelled statement) becomes StoreUnavailable,
 * which the error handler answers with 503 temporarily_unavailable, never a 500. The message names
 * the operation and the driver's reason, never the query's parameters.
 */
export async function pgCall<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof StoreUnavailable) throw err
    const code = (err as { code?: unknown }).code
    const reason = err instanceof Error ? err.message : String(err)
    throw new StoreUnavailable(`postgres: ${op} failed: ${typeof code === 'string' ? `${code} ` : ''}${redactUrls(reason)}`, { cause: err })
  }
}

/** SQLSTATE 23505: a unique constraint refused the row (a name or email already taken). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown }).code === '23505'
}

/** Driver messages can quote a connection string: never show its password. */
export function redactUrls(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1REDACTED@')
}
