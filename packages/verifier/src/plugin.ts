import { AccessDenied, InvalidRequest, LogAggregator, extractAccessToken, isOAuthError, type OAuthError, type PresentedAccessToken } from '@gatehouse/service-kit'
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  onRequestHookHandler,
  preValidationHookHandler,
} from 'fastify'
import fp from 'fastify-plugin'
import type { AuthContext } from './auth-context.js'
import { assertB64Token } from './bearer.js'
import { authErrorResponse } from './challenge.js'
import type { DpopRequestTarget } from './dpop-check.js'
import { MissingToken } from './errors.js'
import type { VerifierOptions } from './options.js'
import { compileRequirement, type AuthRequirement, type RequirementCheck } from './requirements.js'
import { Verifier } from './verifier.js'

/** A custom check run after the token is verified (and after any scopes/roles/kind). `false` means 403. */
export type AuthGuard = (auth: AuthContext, request: FastifyRequest) => boolean

export interface RouteAuthOptions extends AuthRequirement {
  guard?: AuthGuard
}

/** A route's `config.auth`: `true` (any valid token), a requirement, or a guard function. */
export type RouteAuth = true | RouteAuthOptions | AuthGuard

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth
  }
  interface FastifyRequest {
    /**
     * The verified token's context. Set on routes with `config.auth` (or a
     * `requireAuth()` hook); reading it anywhere else throws, since a route
     * without an auth requirement has nothing to offer (see `peekAuth`).
     */
    readonly auth: AuthContext
  }
  interface FastifyInstance {
    readonly verifier: Verifier
    /** An onRequest hook enforcing `rule`, for a whole encapsulated context (`app.addHook('onRequest', app.requireAuth(...))`). */
    requireAuth(rule?: RouteAuth): onRequestHookHandler
  }
}

interface PluginExtras {
  /** The `realm` of RFC 6750 challenges (default: the audience). */
  realm?: string
  /**
   * Requests that cannot be checked (503: no verification key) are logged once, then counted:
   * one line per this many ms while it lasts (default 10 s), so an issuer outage does not log
   * one warning per request.
   */
  warningIntervalMs?: number
}

/** Either the verifier's options (the plugin owns and closes it) or a verifier built elsewhere. */
export type GatehouseAuthOptions = ((VerifierOptions & { verifier?: undefined }) | { verifier: Verifier }) & PluginExtras

const kAuth = Symbol('gatehouse.auth')
interface AuthSlot {
  [kAuth]: AuthContext | null
}

/** The request's auth context, or null when the route has no auth requirement. */
export function peekAuth(request: FastifyRequest): AuthContext | null {
  return (request as unknown as AuthSlot)[kAuth]
}

/** Whether a route's rule asks for DPoP (its challenges then offer DPoP alone). */
function routeRequiresDpop(rule: RouteAuth): boolean {
  return typeof rule === 'object' && rule !== null && rule.dpop === 'required'
}

/** The DPoP view of a fastify request: `htm`, and `htu` from `request.protocol`/`request.host` (trustProxy-aware) unless `publicUrl` is set. */
function dpopTarget(request: FastifyRequest): DpopRequestTarget {
  return { method: request.method, path: request.url, origin: () => `${request.protocol}://${request.host}` }
}

function compileRouteAuth(rule: RouteAuth): (auth: AuthContext, request: FastifyRequest) => OAuthError | undefined {
  if (rule === true) return () => undefined
  if (typeof rule === 'function') {
    return (auth, request) => (rule(auth, request) ? undefined : new AccessDenied('access denied', { detail: 'guard refused' }))
  }
  if (typeof rule !== 'object' || rule === null) throw new TypeError('config.auth must be true, a requirement object or a guard function')
  const check: RequirementCheck = compileRequirement(rule)
  const guard = rule.guard
  if (guard === undefined) return (auth) => check(auth)
  return (auth, request) => check(auth) ?? (guard(auth, request) ? undefined : new AccessDenied('access denied', { detail: 'guard refused' }))
}

function isFormBody(request: FastifyRequest): boolean {
  const type = request.headers['content-type']
  return type !== undefined && type.toLowerCase().startsWith('application/x-www-form-urlencoded')
}

async function gatehouseAuthPlugin(app: FastifyInstance, options: GatehouseAuthOptions): Promise<void> {
  const owned = options.verifier === undefined
  const verifier: Verifier =
    options.verifier ?? new Verifier({ ...(options as VerifierOptions), logger: (options as VerifierOptions).logger ?? app.log })
  const realm = options.realm ?? verifier.audience
  const clock = (options as VerifierOptions).clock ?? Date.now
  const warnings = new LogAggregator({ logger: app.log, clock, intervalMs: options.warningIntervalMs ?? 10_000 })

  const dpop = verifier.dpop

  /**
   * Writes the RFC 6750 / RFC 9449 response and logs the internal reason; never sends `detail`.
   * `scheme` is how the request presented its token (null: none), which picks the challenge.
   */
  function fail(request: FastifyRequest, reply: FastifyReply, err: OAuthError, scheme: PresentedAccessToken['scheme'] | null, dpopOnly: boolean): void {
    const res = authErrorResponse(err, realm, {
      scheme,
      dpopAlgs: dpop.algorithms,
      dpopOnly: dpopOnly || dpop.required,
      nonce: err.code === 'use_dpop_nonce' ? dpop.nonce() : undefined,
    })
    const fields = { error: err.code, reason: err.detail, ...(scheme === 'DPoP' ? { scheme } : {}) }
    if (res.statusCode === 503) {
      // One per request during an outage: the first in full, then a count per interval.
      warnings.warn(request.log, `verifier.no_key.${err.detail ?? 'unknown'}`, fields, 'access token cannot be checked: no verification key')
    }
    else if (res.statusCode === 403) request.log.info(fields, 'access denied')
    else request.log.info(fields, 'access token rejected')
    void reply.code(res.statusCode).headers(res.headers).send(res.body)
  }

  function makeHook(rule: RouteAuth): onRequestHookHandler {
    const check = compileRouteAuth(rule)
    const dpopOnly = routeRequiresDpop(rule)

    function admit(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, auth: AuthContext, scheme: PresentedAccessToken['scheme']): void {
      let failure: OAuthError | undefined
      try {
        failure = check(auth, request)
      } catch (err) {
        if (!isOAuthError(err)) {
          done(err as Error)
          return
        }
        failure = err
      }
      if (failure !== undefined) {
        fail(request, reply, failure, scheme, dpopOnly)
        return
      }
      ;(request as unknown as AuthSlot)[kAuth] = auth
      done()
    }

    /** RFC 9449 §7: the token is verified; now how it was presented, with its proof, then the proof's single use. */
    function constrain(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, auth: AuthContext, presented: PresentedAccessToken): void {
      // Most requests: a Bearer token bound to no key where DPoP is optional (nothing to check, no request target to build).
      if (!dpopOnly && dpop.bearerOnly(presented, auth)) {
        admit(request, reply, done, auth, presented.scheme)
        return
      }
      let result: ReturnType<typeof dpop.check>
      try {
        result = dpop.check(presented, auth, request.headers.dpop, dpopTarget(request))
      } catch (err) {
        fail(request, reply, err as OAuthError, presented.scheme, dpopOnly) // check() throws OAuthErrors only
        return
      }
      if (presented.scheme === 'DPoP') {
        // §9: the current nonce on every DPoP answer, so a client follows its rotation without a failed request.
        const nonce = dpop.nonce()
        if (nonce !== undefined) void reply.header('dpop-nonce', nonce)
      }
      if (result === null || !(result instanceof Promise)) {
        admit(request, reply, done, auth, presented.scheme)
        return
      }
      result.then(
        () => admit(request, reply, done, auth, presented.scheme),
        (err: unknown) => fail(request, reply, err as OAuthError, presented.scheme, dpopOnly),
      )
    }

    return function gatehouseAuthenticate(request, reply, done) {
      let presented: PresentedAccessToken | null
      try {
        presented = extractAccessToken(request.headers.authorization)
      } catch (err) {
        // "DPoP" with no token: answered in the DPoP scheme it named.
        fail(request, reply, err as OAuthError, (err as OAuthError).detail === 'empty_dpop' ? 'DPoP' : null, dpopOnly)
        return
      }
      const scheme = presented?.scheme ?? null
      // RFC 6750 §3.1: more than one method of sending the token is invalid_request;
      // tokens in URLs (§2.3) end up in logs, so they are not accepted at all.
      if ((request.query as Record<string, unknown> | undefined)?.access_token !== undefined) {
        const err =
          presented === null
            ? new InvalidRequest('access tokens are not accepted in the query string', { detail: 'query_token' })
            : new InvalidRequest('the access token was sent more than once', { detail: 'duplicate_token' })
        fail(request, reply, err, scheme, dpopOnly)
        return
      }
      if (presented === null) {
        fail(request, reply, new MissingToken(), null, dpopOnly)
        return
      }
      const token = presented.token
      // The cache holds verified TOKENS: a hit skips the signature and claims, never the proof.
      const cached = verifier.verifyCached(token)
      if (cached !== undefined) {
        constrain(request, reply, done, cached, presented)
        return
      }
      try {
        assertB64Token(token)
      } catch (err) {
        fail(request, reply, err as OAuthError, presented.scheme, dpopOnly)
        return
      }
      verifier.verify(token).then(
        (auth) => constrain(request, reply, done, auth, presented),
        (err: unknown) => fail(request, reply, err as OAuthError, presented.scheme, dpopOnly), // verify() rejects with OAuthErrors only
      )
    }
  }

  /** RFC 6750 §2.2: a form body may carry the token too; with the header as well, that is two methods. */
  const rejectBodyToken: preValidationHookHandler = function rejectBodyToken(request, reply, done) {
    const body = request.body as Record<string, unknown> | null | undefined
    if (typeof body === 'object' && body !== null && body.access_token !== undefined && isFormBody(request)) {
      fail(request, reply, new InvalidRequest('the access token was sent more than once', { detail: 'duplicate_token' }), request.auth.tokenType, false)
      return
    }
    done()
  }

  app.decorate('verifier', verifier)
  app.decorate('requireAuth', (rule: RouteAuth = true) => makeHook(rule))
  app.decorateRequest(kAuth, null)
  app.decorateRequest('auth', {
    getter(this: FastifyRequest): AuthContext {
      const auth = (this as unknown as AuthSlot)[kAuth]
      if (auth === null) throw new Error('request.auth was read on a route without an auth requirement (config.auth or requireAuth)')
      return auth
    },
  })

  app.addHook('onRoute', (route) => {
    const rule = route.config?.auth
    if (rule === undefined) return
    const hook = makeHook(rule)
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
    route.onRequest = [hook, ...existing] as typeof route.onRequest
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (methods.some((m) => m !== 'GET' && m !== 'HEAD')) {
      const pre = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation]
      route.preValidation = [rejectBodyToken, ...pre] as typeof route.preValidation
    }
  })

  app.addHook('onReady', async () => {
    verifier.start()
  })
  app.addHook('onClose', async () => {
    warnings.close()
  })
  if (owned) {
    app.addHook('onClose', async () => {
      await verifier.close()
    })
  }
}

/**
 * The fastify plugin: `app.register(gatehouseAuth, { issuer, audience })`,
 * then `config: { auth: { scopes: ['documents:read'] } }` on any route.
 * Register it before the routes it protects.
 */
export const gatehouseAuth = fp(gatehouseAuthPlugin, { fastify: '5.x', name: '@gatehouse/verifier' })
