import { InvalidDpopProof, InvalidToken, type PresentedAccessToken } from '@gatehouse/service-kit'
import { verifyDpopProof, type DpopProofCheck, type VerifiedDpopProof } from './dpop-proof.js'

/**
 * The sender constraint of an access token already verified (RFC 9449 §7), wherever one is
 * presented: at resource servers through the verifier plugin, and at the auth service's /userinfo.
 *
 * - A bearer token (no `cnf.jkt`) presented as `Bearer`: nothing to check (null).
 * - A DPoP-bound token presented as `Bearer`: refused (§7.2: a downgrade would make a stolen
 *   token usable without its key).
 * - A token presented as `DPoP`: exactly one `DPoP` header, a valid proof for this request whose
 *   `ath` names this token, made with the key the token is bound to; a token not bound to a key
 *   cannot be presented as `DPoP`.
 *
 * The replay check of the returned proof (`replayKey`) is the caller's next step.
 */
export function checkSenderConstraint(
  presented: PresentedAccessToken,
  boundJkt: string | undefined,
  proofHeader: string | string[] | undefined,
  check: Omit<DpopProofCheck, 'accessToken'>,
): VerifiedDpopProof | null {
  if (presented.scheme === 'Bearer') {
    if (boundJkt !== undefined) throw new InvalidToken('the access token is bound to a DPoP key: present it with the DPoP scheme and a proof', { detail: 'dpop_downgrade' })
    return null
  }
  if (boundJkt === undefined) throw new InvalidToken('the access token is not bound to a DPoP key', { detail: 'dpop_unbound' })
  if (Array.isArray(proofHeader)) throw new InvalidDpopProof('the request carries more than one DPoP header', { detail: 'dpop headers' })
  if (proofHeader === undefined || proofHeader.length === 0) throw new InvalidDpopProof('the request carries no DPoP proof', { detail: 'no proof' })
  const proof = verifyDpopProof(proofHeader, { ...check, accessToken: presented.token })
  // RFC 9449 §7.1 (its example answers exactly this): the proof is sound, but not by the token's key.
  if (proof.jkt !== boundJkt) throw new InvalidToken('Invalid DPoP key binding', { detail: 'dpop_jkt_mismatch' })
  return proof
}

/**
 * The one proof of a request at an endpoint that takes proofs without a token (the auth service's
 * /token and /par): null when none was sent, `invalid_dpop_proof` when more than one was.
 */
export function singleDpopHeader(proofHeader: string | string[] | undefined): string | null {
  if (Array.isArray(proofHeader)) throw new InvalidDpopProof('the request carries more than one DPoP header', { detail: 'dpop headers' })
  return proofHeader === undefined || proofHeader.length === 0 ? null : proofHeader
}
