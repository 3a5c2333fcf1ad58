import type { GrantType } from '../directory/config-file.js'
import { authorizationCodeGrant } from './authorization-code.js'
import { clientCredentialsGrant } from './client-credentials.js'
import { deviceCodeGrant } from './device-code.js'
import { passwordGrant } from './password.js'
import { refreshTokenGrant } from './refresh-token.js'
import { tokenExchangeGrant } from './token-exchange.js'
import type { GrantHandler } from './types.js'

/** One module per grant type, looked up by `grant_type` (STYLE). */
export const GRANTS: Partial<Record<GrantType, GrantHandler>> = {
  password: passwordGrant,
  refresh_token: refreshTokenGrant,
  authorization_code: authorizationCodeGrant,
  client_credentials: clientCredentialsGrant,
  'urn:ietf:params:oauth:grant-type:device_code': deviceCodeGrant,
  'urn:ietf:params:oauth:grant-type:token-exchange': tokenExchangeGrant,
}

export type { GrantHandler, GrantContext, TokenResponse } from './types.js'
