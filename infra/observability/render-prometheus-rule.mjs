#!/usr/bin/env node
// Writes the production overlay's PrometheusRule (monitoring.coreos.com/v1, for the Prometheus
// Operator) from infra/observability/alerts.yml, so the plain rule file stays the one source of
// truth: the groups are copied unchanged.
//
//   node infra/observability/render-prometheus-rule.mjs           # write it
//   node infra/observability/render-prometheus-rule.mjs --check   # exit 1 if it is out of date
//   (--rules FILE, --target FILE: other paths than these two)
//
// infra/test/observability-rules.test.ts runs --check and compares the rendered overlay's groups.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse, stringify } from 'yaml'

const option = (name, fallback) => {
  const i = process.argv.indexOf(name)
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback
}
const source = option('--rules', fileURLToPath(new URL('./alerts.yml', import.meta.url)))
const target = option('--target', fileURLToPath(new URL('../k8s/overlays/production/prometheus-rule.yaml', import.meta.url)))

const HEADER = `# GENERATED from infra/observability/alerts.yml by infra/observability/render-prometheus-rule.mjs:
# edit the rule file, then run \`node infra/observability/render-prometheus-rule.mjs\`.
#
# The Prometheus Operator loads the PrometheusRules its Prometheus's ruleSelector matches: label
# this one to match yours (the operator's examples select role: alert-rules; kube-prometheus-stack
# selects release: <its release name> unless told otherwise). Runbooks: docs/operations.md.
`

/** The PrometheusRule document for the rule file's text. */
export function renderPrometheusRule(rulesText) {
  const { groups } = parse(rulesText)
  if (!Array.isArray(groups) || groups.length === 0) throw new Error('alerts.yml has no groups')
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'gatehouse-alerts',
      labels: { 'app.kubernetes.io/name': 'gatehouse', 'app.kubernetes.io/component': 'alerts', role: 'alert-rules' },
    },
    spec: { groups },
  }
  return HEADER + stringify(rule, { lineWidth: 0 })
}

const rendered = renderPrometheusRule(readFileSync(source, 'utf8'))
if (process.argv.includes('--check')) {
  let current = ''
  try {
    current = readFileSync(target, 'utf8')
  } catch {
    // missing: out of date
  }
  if (current !== rendered) {
    console.error(`${target} is out of date: run node infra/observability/render-prometheus-rule.mjs`)
    process.exit(1)
  }
} else {
  writeFileSync(target, rendered)
  console.log(`wrote ${target}`)
}
