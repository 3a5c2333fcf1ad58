import { isOAuthError } from '@gatehouse/service-kit'

/** 'accepted'; the logged reason of an invalid_token refusal; or "<status> <code>" for anything else. */
export async function outcome(v: { verify(token: string): Promise<unknown> }, jwt: string): Promise<string> {
  try {
    await v.verify(jwt)
    return 'accepted'
  } catch (err) {
    if (!isOAuthError(err)) throw err
    if (err.code === 'invalid_token' && err.statusCode === 401) return err.detail ?? 'no detail'
    return `${err.statusCode} ${err.code}`
  }
}
