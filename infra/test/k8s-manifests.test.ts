/**
 * The Kubernetes manifests (issue 6): every overlay renders with `kubectl kustomize` (offline),
 * every rendered object passes schema validation (kubernetes-models: types and required fields;
 * the @kubernetes/client-node model field lists: unknown fields, i.e. typos that `kubectl apply`
 * would drop or reject), and the objects have what a production deployment needs (probes,
 * resources, a locked-down security context, PodDisruptionBudgets, an autoscaler, network
 * policies) and an environment that the services' own configuration checks accept. PostgreSQL
 * (issue 13): DATABASE_URL from the Secret gatehouse-database, the migrations applied by the auth
 * pods' init container with the service's own configuration, an in-cluster StatefulSet in dev
 * reachable only from the auth pods, nothing of it rendered for production's managed database.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import * as k8sModels from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js'
import { loadConfig as loadAuthConfig } from '../../services/auth/src/config.js'
import { loadConfig as loadResourceConfig } from '../../services/resource/src/config.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const k8sDir = join(root, 'infra/k8s')
const require = createRequire(import.meta.url)

type Obj = Record<string, unknown>
interface K8sObject extends Obj {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string> }
}

async function kustomize(dir: string): Promise<K8sObject[]> {
  const yaml = await new Promise<string>((resolve, reject) => {
    execFile('kubectl', ['kustomize', dir], { timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl kustomize ${dir} failed: ${err.message}\n${stderr}`))
      else resolve(stdout)
    })
  })
  return parseAllDocuments(yaml).map((d) => {
    if (d.errors.length > 0) throw new Error(`unparseable YAML from kustomize: ${d.errors[0]?.message}`)
    return d.toJS() as K8sObject
  })
}

// ---------------------------------------------------------------------------------------------
// Schema checks

interface Attribute {
  baseName: string
  type: string
}
const models = k8sModels as unknown as Record<string, { attributeTypeMap?: Attribute[] } | undefined>

/** The client-node model name for an object, e.g. apps/v1 Deployment → V1Deployment. */
function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? ''
  return version.charAt(0).toUpperCase() + version.slice(1) + kind
}

/** Paths of fields that the API's schema does not define, found by walking the model field lists. */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  if (value === null || value === undefined) return []
  const array = /^Array<(.+)>$/.exec(type)
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : []
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type)
  if (map) return typeof value === 'object' ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`)) : []
  const attributes = models[type]?.attributeTypeMap
  // Primitives, IntOrString, Quantity, free-form objects: their types are kubernetes-models' job.
  if (attributes === undefined || typeof value !== 'object' || Array.isArray(value)) return []
  return Object.entries(value as Obj).flatMap(([k, v]) => {
    const attribute = attributes.find((a) => a.baseName === k)
    return attribute ? unknownFields(v, attribute.type, `${path}.${k}`) : [`${path}.${k}`]
  })
}

const DURATION = /^(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$/
const isStringMap = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string')

/**
 * The Prometheus Operator's PrometheusRule (monitoring.coreos.com/v1), a custom resource that
 * neither model library knows: its CRD's schema (spec.groups[].rules[]) checked by hand, the
 * metadata through the ObjectMeta field list. Same kinds of problems: types, required fields,
 * unknown fields.
 */
export function prometheusRuleProblems(obj: K8sObject): string[] {
  const where = `${obj.kind}/${obj.metadata?.name}`
  const problems: string[] = []
  const unknown = (value: object, allowed: string[], path: string) => {
    for (const k of Object.keys(value)) if (!allowed.includes(k)) problems.push(`${where}: unknown field ${path}.${k}`)
  }
  unknown(obj, ['apiVersion', 'kind', 'metadata', 'spec'], '')
  problems.push(...unknownFields(obj.metadata, 'V1ObjectMeta', '.metadata').map((p) => `${where}: unknown field ${p}`))
  if (typeof obj.metadata?.name !== 'string' || obj.metadata.name === '') problems.push(`${where}: metadata.name is required`)
  const spec = obj.spec as { groups?: unknown } | undefined
  if (typeof spec !== 'object' || spec === null) return [...problems, `${where}: spec is required`]
  unknown(spec, ['groups'], '.spec')
  if (!Array.isArray(spec.groups)) return [...problems, `${where}: spec.groups must be an array`]
  for (const [i, g] of (spec.groups as Array<Record<string, unknown>>).entries()) {
    const gp = `.spec.groups[${i}]`
    unknown(g, ['name', 'interval', 'limit', 'partial_response_strategy', 'query_offset', 'labels', 'rules'], gp)
    if (typeof g.name !== 'string' || g.name === '') problems.push(`${where}: ${gp}.name is required`)
    if (g.interval !== undefined && !(typeof g.interval === 'string' && DURATION.test(g.interval))) problems.push(`${where}: ${gp}.interval is not a duration`)
    if (!Array.isArray(g.rules)) {
      problems.push(`${where}: ${gp}.rules must be an array`)
      continue
    }
    for (const [j, r] of (g.rules as Array<Record<string, unknown>>).entries()) {
      const rp = `${gp}.rules[${j}]`
      unknown(r, ['alert', 'record', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'], rp)
      if (typeof r.expr !== 'string' && typeof r.expr !== 'number') problems.push(`${where}: ${rp}.expr is required (a string)`)
      if ((typeof r.alert === 'string') === (typeof r.record === 'string')) problems.push(`${where}: ${rp} needs exactly one of alert and record`)
      for (const d of ['for', 'keep_firing_for']) if (r[d] !== undefined && !(typeof r[d] === 'string' && DURATION.test(r[d]))) problems.push(`${where}: ${rp}.${d} is not a duration`)
      for (const m of ['labels', 'annotations']) if (r[m] !== undefined && !isStringMap(r[m])) problems.push(`${where}: ${rp}.${m} must map strings to strings`)
    }
  }
  return problems
}

/** Custom resources the overlays render, each with its own check (neither model library has them). */
const CUSTOM_RESOURCES: Record<string, (obj: K8sObject) => string[]> = {
  'monitoring.coreos.com/v1 PrometheusRule': prometheusRuleProblems,
}

/** Every schema problem of one object: wrong types, missing required fields, unknown fields. */
export function schemaProblems(obj: K8sObject): string[] {
  const where = `${obj.kind}/${obj.metadata?.name}`
  const custom = CUSTOM_RESOURCES[`${obj.apiVersion} ${obj.kind}`]
  if (custom) return custom(obj)
  const problems: string[] = []
  const type = modelName(obj.apiVersion, obj.kind)
  if (!models[type]?.attributeTypeMap) return [`${where}: no API model for ${obj.apiVersion} ${obj.kind}`]
  problems.push(...unknownFields(obj, type).map((p) => `${where}: unknown field ${p}`))
  let mod: Record<string, new (data: unknown) => { validate(): void }>
  try {
    mod = require(`kubernetes-models/${obj.apiVersion}/${obj.kind}`) as typeof mod
  } catch {
    return [...problems, `${where}: kubernetes-models has no ${obj.apiVersion} ${obj.kind}`]
  }
  const Model = mod[obj.kind]
  if (!Model) return [...problems, `${where}: kubernetes-models has no ${obj.kind} class`]
  // kustomize wraps long base64 Secret values over lines; the API server's decoder skips the line
  // breaks, the "byte" format check does not.
  const data = obj.kind === 'Secret' && obj.data ? Object.fromEntries(Object.entries(obj.data as Record<string, string>).map(([k, v]) => [k, v.replace(/\s+/g, '')])) : undefined
  try {
    new Model(data ? { ...obj, data } : obj).validate()
  } catch (err) {
    problems.push(`${where}: ${(err as Error).message}`)
  }
  return problems
}

t.test('the schema checks catch what they are for', async (t) => {
  const good: K8sObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'x' },
    spec: {
      selector: { matchLabels: { a: 'b' } },
      template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i', readinessProbe: { httpGet: { path: '/readyz', port: 'http' } } }] } },
    },
  }
  t.same(schemaProblems(good), [], 'a valid Deployment passes')
  const typo = structuredClone(good)
  ;((typo.spec as { template: { spec: { containers: Obj[] } } }).template.spec.containers[0]!).livenesProbe = { httpGet: { path: '/healthz', port: 4000 } }
  t.match(schemaProblems(typo), [/unknown field \.spec\.template\.spec\.containers\[0\]\.livenesProbe/], 'a misspelt field is caught')
  const wrongType = { ...good, spec: { ...(good.spec as Obj), replicas: 'two' } }
  t.match(schemaProblems(wrongType), [/replicas/], 'a wrong type is caught')
  const missing = { ...good, spec: { template: (good.spec as Obj).template } }
  t.match(schemaProblems(missing), [/selector/], 'a missing required field is caught')
  t.match(schemaProblems({ apiVersion: 'apps/v1', kind: 'Deplyoment', metadata: { name: 'x' } }), [/no API model/], 'an unknown kind is caught')

  const rule: K8sObject = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'r', labels: { role: 'alert-rules' } },
    spec: { groups: [{ name: 'g', rules: [{ alert: 'A', expr: 'up == 0', for: '5m', labels: { severity: 'warning' }, annotations: { summary: 's' } }] }] },
  }
  t.same(schemaProblems(rule), [], 'a valid PrometheusRule passes')
  const withRule = (r: Record<string, unknown>, meta: Obj = {}): K8sObject => ({ ...rule, metadata: { ...rule.metadata, ...meta }, spec: { groups: [{ name: 'g', rules: [r] }] } })
  t.match(schemaProblems(withRule({ alert: 'A', expr: 'up == 0', fro: '5m' })), [/unknown field \.spec\.groups\[0\]\.rules\[0\]\.fro/], 'PrometheusRule: a misspelt rule field is caught')
  t.match(schemaProblems(withRule({ alert: 'A', expr: 'up == 0', for: 'five minutes' })), [/for is not a duration/], 'PrometheusRule: a bad duration is caught')
  t.match(schemaProblems(withRule({ alert: 'A' })), [/expr is required/], 'PrometheusRule: a missing expr is caught')
  t.match(schemaProblems(withRule({ alert: 'A', expr: 'x', labels: { severity: 2 } })), [/labels must map strings/], 'PrometheusRule: a non-string label is caught')
  t.match(schemaProblems(withRule({ alert: 'A', expr: 'x' }, { lables: {} })), [/unknown field \.metadata\.lables/], 'PrometheusRule: a misspelt metadata field is caught')
})

// ---------------------------------------------------------------------------------------------
// The overlays

type Container = Obj & {
  name: string
  image: string
  command?: string[]
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } } }>
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>
  startupProbe?: Obj
  livenessProbe?: Obj
  readinessProbe?: Obj
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> }
  securityContext?: Obj & { capabilities?: { drop?: string[] } }
}
type PodSpec = Obj & { securityContext?: Obj; containers: Container[]; initContainers?: Container[]; volumes?: Array<Obj & { name: string; configMap?: { name: string }; secret?: { secretName: string } }> }
type Workload = K8sObject & { spec: Obj & { replicas?: number; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } }

function byKind<T extends K8sObject = K8sObject>(objects: K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as T[]
}

function find<T extends K8sObject = K8sObject>(objects: K8sObject[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && (o.metadata.name === name || o.metadata.name.startsWith(`${name}-`)))
  if (!found) throw new Error(`no ${kind} ${name}`)
  return found as T
}

function configMapData(objects: K8sObject[], name: string): Record<string, string> {
  return ((find(objects, 'ConfigMap', name) as Obj).data ?? {}) as Record<string, string>
}

/** A value of a Secret the overlay renders (dev's generated ones), or undefined. */
function renderedSecret(objects: K8sObject[], name: string, key: string): string | undefined {
  const secret = objects.find((o) => o.kind === 'Secret' && (o.metadata.name === name || o.metadata.name.startsWith(`${name}-`))) as (K8sObject & { data?: Record<string, string> }) | undefined
  const value = secret?.data?.[key]
  return value === undefined ? undefined : Buffer.from(value.replace(/\s+/g, ''), 'base64').toString('utf8')
}

/** The environment a container would see: rendered Secrets' values, else placeholders for those created out of band. */
function containerEnv(objects: K8sObject[], container: Container): Record<string, string> {
  const env: Record<string, string> = {}
  const placeholders: Record<string, string> = {
    REDIS_URL: 'redis://user:secret@redis.example.internal:6379',
    DATABASE_URL: 'postgres://gatehouse:secret@db.example.internal:5432/gatehouse?sslmode=verify-full',
  }
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, configMapData(objects, from.configMapRef.name))
  }
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef
    if (e.value !== undefined) env[e.name] = e.value
    else if (ref) env[e.name] = renderedSecret(objects, ref.name, ref.key) ?? placeholders[e.name] ?? 'x'.repeat(48)
    else if (e.valueFrom?.configMapKeyRef) env[e.name] = configMapData(objects, e.valueFrom.configMapKeyRef.name)[e.valueFrom.configMapKeyRef.key] ?? ''
  }
  return env
}

for (const overlay of ['dev', 'production']) {
  t.test(`overlay ${overlay}`, async (t) => {
    const objects = await kustomize(join(k8sDir, 'overlays', overlay))
    const namespace = overlay === 'dev' ? 'gatehouse-dev' : 'gatehouse'

    t.test('every object is valid against the Kubernetes API schema', async (t) => {
      t.ok(objects.length >= 10, `${objects.length} objects`)
      for (const obj of objects) t.same(schemaProblems(obj), [], `${obj.kind}/${obj.metadata.name}`)
      for (const obj of objects.filter((o) => o.kind !== 'Namespace')) t.equal(obj.metadata.namespace, namespace, `${obj.kind}/${obj.metadata.name} in ${namespace}`)
    })

    const deployments = byKind<Workload>(objects, 'Deployment')
    const statefulSets = byKind<Workload>(objects, 'StatefulSet')
    t.test('workloads: probes, resources, a locked-down security context', async (t) => {
      t.same(deployments.map((d) => d.metadata.name).sort(), ['gatehouse-auth', 'gatehouse-resource'])
      for (const w of [...deployments, ...statefulSets]) {
        const pod = w.spec.template.spec
        t.equal(pod.securityContext?.runAsNonRoot, true, `${w.metadata.name}: runAsNonRoot`)
        t.ok(Number(pod.securityContext?.runAsUser) > 0, `${w.metadata.name}: a numeric non-root uid`)
        t.equal(pod.automountServiceAccountToken, false, `${w.metadata.name}: no API token mounted`)
        for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
          const where = `${w.metadata.name}/${c.name}`
          const init = pod.initContainers?.includes(c) === true
          if (!init) t.ok(c.readinessProbe && c.livenessProbe, `${where}: liveness and readiness probes`)
          if (w.kind === 'Deployment' && !init) t.ok(c.startupProbe, `${where}: startup probe`)
          t.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${where}: requests`)
          t.ok(c.resources?.limits?.cpu && c.resources.limits.memory, `${where}: limits`)
          t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where}: read-only root filesystem`)
          t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${where}: no privilege escalation`)
          t.same(c.securityContext?.capabilities?.drop, ['ALL'], `${where}: every capability dropped`)
        }
      }
      for (const d of deployments) {
        t.equal((d.spec.strategy as { rollingUpdate?: { maxUnavailable?: number } }).rollingUpdate?.maxUnavailable, 0, `${d.metadata.name}: rollouts never reduce capacity`)
        const probe = d.spec.template.spec.containers[0]!.readinessProbe as { httpGet?: { path?: string } }
        t.equal(probe.httpGet?.path, '/readyz', `${d.metadata.name}: readiness is /readyz`)
      }
      const auth = find<Workload>(objects, 'Deployment', 'gatehouse-auth')
      t.ok((auth.spec.replicas ?? 1) >= (overlay === 'production' ? 3 : 1), `auth replicas: ${auth.spec.replicas}`)
    })

    t.test('services, disruption budgets, autoscaler, network policies', async (t) => {
      for (const name of ['gatehouse-auth', 'gatehouse-resource']) {
        const svc = find(objects, 'Service', name) as K8sObject & { spec: { selector: Record<string, string> } }
        const dep = find<Workload>(objects, 'Deployment', name)
        t.match(dep.spec.template.metadata.labels, svc.spec.selector, `Service ${name} selects its pods`)
        const pdb = find(objects, 'PodDisruptionBudget', name) as K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } }
        t.match(dep.spec.template.metadata.labels, pdb.spec.selector.matchLabels, `PodDisruptionBudget ${name} covers its pods`)
      }
      const hpa = find(objects, 'HorizontalPodAutoscaler', 'gatehouse-resource') as K8sObject & { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number } }
      t.match(hpa.spec.scaleTargetRef, { kind: 'Deployment', name: 'gatehouse-resource' })
      t.ok(hpa.spec.maxReplicas > hpa.spec.minReplicas)
      t.equal(find<Workload>(objects, 'Deployment', 'gatehouse-resource').spec.replicas, undefined, 'the autoscaler owns the resource replica count')

      const policies = byKind(objects, 'NetworkPolicy') as Array<K8sObject & { spec: { podSelector: { matchLabels?: Record<string, string> }; ingress?: Array<{ from?: Array<{ podSelector?: { matchLabels?: Record<string, string> } }> }> } }>
      t.ok(policies.some((p) => Object.keys(p.spec.podSelector).length === 0 && !p.spec.ingress), 'ingress is denied by default')
      if (overlay === 'dev') {
        const redis = find<Workload>(objects, 'StatefulSet', 'gatehouse-redis')
        t.equal(redis.spec.replicas, 1, 'a single Redis')
        const redisPolicy = policies.find((p) => p.spec.podSelector.matchLabels?.['app.kubernetes.io/name'] === 'gatehouse-redis')
        const allowed = redisPolicy?.spec.ingress?.flatMap((i) => i.from ?? []).map((f) => f.podSelector?.matchLabels) ?? []
        t.same(allowed, [{ 'gatehouse.io/redis-client': 'true' }], 'Redis accepts only labelled clients')
        const clients = [...deployments, ...statefulSets].filter((w) => w.spec.template.metadata.labels['gatehouse.io/redis-client'] === 'true').map((w) => w.metadata.name)
        t.same(clients.sort(), ['gatehouse-auth', 'gatehouse-resource'], 'the labelled clients: auth, and resource for the revocation feed (DESIGN §6)')
      }
    })

    t.test('config and secrets: the services accept the rendered environment', async (t) => {
      const tmp = await mkdtemp(join(tmpdir(), 'gatehouse-k8s-'))
      t.teardown(() => rm(tmp, { recursive: true, force: true }))
      const auth = find<Workload>(objects, 'Deployment', 'gatehouse-auth')
      const container = auth.spec.template.spec.containers[0]!
      const env = containerEnv(objects, container)
      t.equal(env.NODE_ENV, 'production', 'production mode, so no development fallback is used')
      const secretRefs = (container.env ?? []).filter((e) => e.valueFrom?.secretKeyRef).map((e) => e.name)
      t.ok(secretRefs.includes('COOKIE_SECRET'), 'COOKIE_SECRET comes from a Secret')
      t.ok(secretRefs.includes('REFRESH_TOKEN_SECRET'), 'REFRESH_TOKEN_SECRET comes from a Secret')
      const keysVolume = auth.spec.template.spec.volumes?.find((v) => v.secret)
      t.match(keysVolume, { secret: { secretName: 'gatehouse-signing-keys' } }, 'the signing keys are a Secret volume')
      t.match(env.SIGNING_KEYS_FILE, /^\/etc\/gatehouse\/keys\//)

      // The config file: the ConfigMap's auth.json (production) or the demo file in the image (dev).
      if (env.AUTH_CONFIG_FILE === '/etc/gatehouse/config/auth.json') {
        const file = configMapData(objects, 'gatehouse-auth-config')['auth.json']
        t.ok(file, 'the config file is a ConfigMap')
        t.notMatch(file, /"(client_secret|password)"\s*:/, 'the ConfigMap holds no plain secret or password')
        await writeFile(join(tmp, 'auth.json'), file ?? '')
        env.AUTH_CONFIG_FILE = join(tmp, 'auth.json')
      } else {
        t.equal(env.AUTH_CONFIG_FILE, '/app/config/dev.json', 'dev uses the demo config shipped in the image')
        env.AUTH_CONFIG_FILE = join(root, 'services/auth/config/dev.json')
      }
      const config = await loadAuthConfig(env)
      t.ok(config.redis, 'the auth service is configured with Redis')
      if (overlay === 'production') t.ok(config.redis?.sentinels, 'production follows Redis Sentinel')
      t.equal(config.port, 4000)

      const resource = find<Workload>(objects, 'Deployment', 'gatehouse-resource').spec.template.spec.containers[0]!
      const renv = containerEnv(objects, resource)
      const rconfig = loadResourceConfig(renv)
      t.equal(rconfig.jwksUri, 'http://gatehouse-auth:4000/jwks.json', 'the resource fetches keys in-cluster')
      t.equal(rconfig.issuer, config.issuer, 'both agree on the issuer')
      t.ok(rconfig.redisUrl, 'the resource subscribes to revocations')

      t.ok(config.database, 'the auth service is configured with PostgreSQL')
      t.notOk(config.database?.migrate, 'without DATABASE_MIGRATE: the init container migrates')
      t.ok((config.database?.poolSize ?? 0) > 0 && (config.database?.statementTimeoutMs ?? 0) > 0 && (config.database?.connectTimeoutMs ?? 0) > 0, 'a bounded pool and statement timeouts')
      const migrate = auth.spec.template.spec.initContainers?.find((c) => c.name === 'migrate')
      if (migrate) {
        const menv = containerEnv(objects, migrate)
        if (menv.AUTH_CONFIG_FILE) menv.AUTH_CONFIG_FILE = env.AUTH_CONFIG_FILE
        const mconfig = await loadAuthConfig(menv)
        t.equal(mconfig.database?.url, config.database?.url, 'the migration reads the same DATABASE_URL, through the same configuration code')
      }

      if (overlay === 'production') {
        t.same(byKind(objects, 'Secret'), [], 'production renders no Secret: they are created out of band')
        t.notOk(container.image.includes(':local'), 'a registry image')
      }
    })

    t.test('PostgreSQL: DATABASE_URL from a Secret, migrations before the service, reachable only from the auth pods', async (t) => {
      const auth = find<Workload>(objects, 'Deployment', 'gatehouse-auth')
      const pod = auth.spec.template.spec
      const service = pod.containers.find((c) => c.name === 'auth')!
      const dsn = (c: Container | undefined) => c?.env?.find((e) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef
      t.match(dsn(service), { name: /^gatehouse-database(-[a-z0-9]+)?$/, key: 'url' }, 'the service reads DATABASE_URL from the Secret gatehouse-database, key url')
      t.notOk(service.env?.some((e) => e.name === 'DATABASE_URL' && e.value !== undefined), 'never as a plain value')

      const migrate = pod.initContainers?.find((c) => c.name === 'migrate')
      t.ok(migrate, 'an init container applies the migrations before the service starts')
      t.same(migrate?.command, ['gatehouse', 'db', 'migrate'], 'with `gatehouse db migrate`')
      t.equal(migrate?.image, service.image, 'from the image the service runs (the migrations ship in it)')
      t.same(dsn(migrate), dsn(service), 'on the same database')
      // The same configuration as the service, so that `gatehouse` accepts it: every variable the
      // init container sets, the service sets alike; what the configuration needs is there.
      for (const e of migrate?.env ?? []) t.same(service.env?.find((s) => s.name === e.name), e, `migrate ${e.name} as the service's`)
      t.same(migrate?.envFrom, service.envFrom, 'migrate: the same ConfigMap')
      const serviceMounts = service.volumeMounts ?? []
      for (const m of migrate?.volumeMounts ?? []) t.ok(serviceMounts.some((s) => s.name === m.name && s.mountPath === m.mountPath), `migrate mounts ${m.name} where the service does`)
      t.notOk(service.env?.some((e) => e.name === 'DATABASE_MIGRATE'), 'the service itself does not migrate at start')
      t.equal(pod.initContainers?.length, 1, 'nothing else runs before the service')

      const policies = byKind(objects, 'NetworkPolicy') as Array<K8sObject & { spec: { podSelector: { matchLabels?: Record<string, string> }; ingress?: Array<{ from?: Array<{ podSelector?: { matchLabels?: Record<string, string> } }>; ports?: Array<{ port: number }> }> } }>
      const pgPolicy = policies.find((p) => p.spec.podSelector.matchLabels?.['app.kubernetes.io/name'] === 'gatehouse-postgres')
      t.ok(pgPolicy, 'a NetworkPolicy guards PostgreSQL pods')
      t.same(pgPolicy?.spec.ingress?.flatMap((i) => i.from ?? []).map((f) => f.podSelector?.matchLabels), [{ 'gatehouse.io/postgres-client': 'true' }], 'only labelled clients')
      t.same(pgPolicy?.spec.ingress?.flatMap((i) => i.ports ?? []).map((p) => p.port), [5432], 'on 5432')
      const clients = [...deployments, ...statefulSets].filter((w) => w.spec.template.metadata.labels['gatehouse.io/postgres-client'] === 'true').map((w) => w.metadata.name)
      t.same(clients, ['gatehouse-auth'], 'the labelled clients: the auth pods (the service and its migrate init container), not the resource service')

      if (overlay === 'dev') {
        const pg = find<Workload>(objects, 'StatefulSet', 'gatehouse-postgres')
        t.equal(pg.spec.replicas, 1, 'a single PostgreSQL')
        t.match(pg.spec.volumeClaimTemplates, [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'] } }], 'its data on a volume claim per pod')
        const container = pg.spec.template.spec.containers[0]!
        t.match(container.image, /^postgres:15/, 'the official image')
        t.match(container.volumeMounts, [{ name: 'data', mountPath: '/var/lib/postgresql/data' }], 'the claim mounted where the image keeps its data')
        const pgEnv = containerEnv(objects, container)
        t.ok(pgEnv.PGDATA?.startsWith('/var/lib/postgresql/data/'), 'PGDATA a directory inside the volume (not its root, which may hold lost+found)')
        const password = container.env?.find((e) => e.name === 'POSTGRES_PASSWORD')?.valueFrom?.secretKeyRef
        t.match(password, { name: /^gatehouse-database-/, key: 'password' }, 'its password from the generated Secret gatehouse-database')
        t.match((container.readinessProbe as { exec?: { command?: string[] } }).exec?.command, ['pg_isready', '--host=127.0.0.1'], 'ready when it accepts connections over TCP')
        const svc = find(objects, 'Service', 'gatehouse-postgres') as K8sObject & { spec: { selector: Record<string, string>; ports: Array<{ port: number }> } }
        t.match(pg.spec.template.metadata.labels, svc.spec.selector, 'Service gatehouse-postgres selects it')
        t.same(svc.spec.ports.map((p) => p.port), [5432])
        const url = new URL(renderedSecret(objects, 'gatehouse-database', 'url') ?? '')
        t.match({ host: url.hostname, port: url.port, user: url.username, db: url.pathname }, { host: 'gatehouse-postgres', port: '5432', user: pgEnv.POSTGRES_USER, db: `/${pgEnv.POSTGRES_DB}` }, 'DATABASE_URL names that Service, its user and its database')
        t.equal(decodeURIComponent(url.password), pgEnv.POSTGRES_PASSWORD, 'with the password the database is created with')
      } else {
        t.same(statefulSets.filter((s) => s.metadata.name === 'gatehouse-postgres'), [], 'production runs no PostgreSQL in the cluster: a managed database')
      }
    })
  })
}
