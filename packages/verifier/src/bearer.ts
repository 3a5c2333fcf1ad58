// Bearer parsing lives once, in service-kit (RFC 6750 §2.1); re-exported here for the plugin's users.
export { assertB64Token, extractAccessToken, extractBearerToken } from '@gatehouse/service-kit'
