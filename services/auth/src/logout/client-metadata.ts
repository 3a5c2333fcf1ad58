import { isIP } from 'node:net'

/**
 * Client metadata of OIDC Back-Channel Logout 1.0 §2.2: `backchannel_logout_uri` is an absolute
 * URL without a fragment (a query is allowed). It must be https; plain http only to a loopback
 * host, for development, since the logout token would otherwise cross the network in clear.
 * Returns the problem, or null when the URI is acceptable.
 */
export function backchannelLogoutUriProblem(uri: string): string | null {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return `is not an absolute URL: ${uri}`
  }
  if (url.username !== '' || url.password !== '') return `must not carry credentials: ${url.protocol}//…@${url.host}`
  if (url.hash !== '' || uri.includes('#')) return `must not have a fragment: ${uri}`
  if (url.protocol === 'https:') return null
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return null
  return `must be https (http only to a loopback host): ${uri}`
}

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '')
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  if (isIP(host) === 6) return host === '::1'
  return false
}
