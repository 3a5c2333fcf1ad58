export {
  createTokenClient,
  type AccessToken,
  type AuthorizationHeaders,
  type ClientCredentials,
  type Clock,
  type FetchLike,
  type RetryOptions,
  type TokenClient,
  type TokenClientOptions,
} from './token-client.js'
export { TOKEN_EXCHANGE_GRANT, ACCESS_TOKEN_TYPE, type ExchangeRequest } from './exchange.js'
export { CLIENT_ASSERTION_TYPE, type PrivateKeyJwtCredentials } from './client-assertion.js'
export { TokenClientError, OAUTH_ERROR_CODES, type OAuthErrorCode, type TokenClientErrorCode } from './errors.js'
export { DpopSigner, type DpopKeyPair, type DpopOption } from './dpop.js'
