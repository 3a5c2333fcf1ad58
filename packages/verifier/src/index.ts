export { Verifier, createVerifier, type VerifierEvents, type VerifierStats, type RevocationFeedStatus } from './verifier.js'
export { gatehouseAuth, peekAuth, type GatehouseAuthOptions, type RouteAuth, type RouteAuthOptions, type AuthGuard } from './plugin.js'
export { MAX_ACTOR_CHAIN, type AuthContext, type AccessTokenClaims, type ActorClaim, type PrincipalKind } from './auth-context.js'
export { AcrRequired, compileRequirement, ScopeRequired, type AuthRequirement, type Delegation, type RequirementCheck } from './requirements.js'
export { authErrorResponse, type AuthErrorResponse, type ChallengeContext } from './challenge.js'
export { DpopChecker, type DpopRequestTarget } from './dpop-check.js'
export { extractBearerToken, extractAccessToken, assertB64Token } from './bearer.js'
export {
  AccessTokenRulebook,
  ANY_AUDIENCE,
  REQUIRED_CLAIMS,
  checkTokenHeader,
  toInvalidToken,
  type AccessTokenKeys,
  type NodeKeyLookup,
  type AccessTokenRules,
  type VerifiedAccessToken,
} from './access-token.js'
export { MissingToken, DpopRequired, INVALID_TOKEN_DESCRIPTION, type InvalidTokenReason } from './errors.js'
export type { KeysChange, JwksFetchResult } from './jwks-cache.js'
export { JwsVerifyKey } from './jws-key.js'
export type { JwksFetchOutcome, JwksFailureReason, DpopRejectionReason } from './metrics.js'
export {
  SUPPORTED_ALGORITHMS,
  VerifierOptionError,
  type Clock,
  type DpopOptions,
  type FetchLike,
  type JwksOptions,
  type VerifierAlgorithm,
  type VerifierLogger,
  type VerifierOptions,
} from './options.js'
export {
  DPOP_ALGORITHMS,
  MAX_PROOF_LENGTH,
  DpopNonces,
  MemoryDpopReplayCache,
  accessTokenHash,
  jwkThumbprint,
  normalizeHtu,
  replayKey,
  replayUntil,
  verifyDpopProof,
  type DpopAlgorithm,
  type DpopProofCheck,
  type DpopReplayCache,
  type VerifiedDpopProof,
} from './dpop-proof.js'
export { checkSenderConstraint, singleDpopHeader } from './dpop-request.js'
