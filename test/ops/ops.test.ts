import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { Registry } from 'prom-client'
import { parse } from 'yaml'
import { startApp } from '../helpers/app.js'
import { ADMIN_TOKEN, PREFIX, bearer, http } from '../helpers/http.js'

// ops/alerts.yml and ops/grafana-dashboard.json name only metrics and labels
// the plugin exposes, and have the shape Prometheus and Grafana import.
const read = async (path: string): Promise<string> => await readFile(new URL(`../../${path}`, import.meta.url), 'utf8')

// Grafana's variable syntax, not a template string.
const DATASOURCE_VARIABLE = '$' + '{datasource}'
const HISTOGRAM_SERIES = /_(bucket|sum|count)$/
/** Every `metric{label="…", …}` selector of a PromQL expression: the metric and the label names it matches on. */
function selectors (expr: string): Array<{ metric: string, labels: string[] }> {
  return [...expr.matchAll(/\b(realtime_[a-z_]+)(\{([^}]*)\})?/g)].map((match) => ({
    metric: match[1],
    labels: [...(match[3] ?? '').matchAll(/([a-z_]+)\s*(=~|!~|!=|=)/g)].map((label) => label[1])
  }))
}

/** Parentheses, brackets and braces balance (a typo there is what a hand-edited rule most often gets wrong). */
function balanced (expr: string): boolean {
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' }
  const open: string[] = []
  for (const character of expr.replace(/"[^"]*"/g, '""')) {
    if ('([{'.includes(character)) open.push(character)
    else if (character in pairs && open.pop() !== pairs[character]) return false
  }
  return open.length === 0
}

async function exposed (t: Test): Promise<{ names: Set<string>, labels: Map<string, string[]> }> {
  const registry = new Registry()
  const node = await startApp({ history: { size: 8 }, diagnostics: { adminTokens: [ADMIN_TOKEN], metricsRegistry: registry } })
  t.teardown(() => node.app.close())
  const text = (await http(`${node.httpBase}${PREFIX}/metrics`, bearer(ADMIN_TOKEN))).text
  const names = new Set<string>()
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name)
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix)
  }
  const labels = new Map<string, string[]>()
  for (const metric of registry.getMetricsAsArray()) labels.set(metric.name, [...((metric as unknown as { labelNames?: string[] }).labelNames ?? []), 'job', 'instance'])
  return { names, labels }
}

function checkExpression (t: Test, expr: string, where: string, live: Awaited<ReturnType<typeof exposed>>): void {
  t.ok(balanced(expr), `${where}: balanced`)
  const found = selectors(expr)
  t.ok(found.length > 0, `${where}: names a metric`)
  for (const { metric, labels } of found) {
    t.ok(live.names.has(metric), `${where}: ${metric} is in /metrics`)
    const allowed = live.labels.get(metric.replace(HISTOGRAM_SERIES, '')) ?? []
    for (const label of labels) {
      if (label === 'le' && HISTOGRAM_SERIES.test(metric)) continue
      t.ok(allowed.includes(label), `${where}: ${metric} has the label ${label}`)
    }
  }
}

t.test('alerts.yml: Prometheus rule groups for what should wake someone, on metrics /metrics has', async (t) => {
  const live = await exposed(t)
  const rules = parse(await read('ops/alerts.yml'))
  t.strictSame(Object.keys(rules), ['groups'])
  t.equal(rules.groups.length, 1)
  t.equal(rules.groups[0].name, 'fastify-realtime')
  const names = rules.groups[0].rules.map((rule: any) => rule.alert)
  t.strictSame(names, [
    'RealtimeSlowConsumerCuts', 'RealtimeAbnormalClosesHigh', 'RealtimeRedisReconnects', 'RealtimeSubscriberReplaced',
    'RealtimeRecoveryMissesRising', 'RealtimeAckTimeoutsRising', 'RealtimeHandshake503s'
  ])
  for (const rule of rules.groups[0].rules) {
    t.strictSame(Object.keys(rule).filter((key) => !['alert', 'expr', 'for', 'labels', 'annotations'].includes(key)), [], `${rule.alert}: only rule keys`)
    t.type(rule.expr, 'string')
    if (rule.for !== undefined) t.match(rule.for, /^\d+[smh]$/, `${rule.alert}: a duration`)
    t.ok(['page', 'warning'].includes(rule.labels.severity), `${rule.alert}: a severity`)
    t.type(rule.annotations.summary, 'string')
    t.type(rule.annotations.description, 'string')
    checkExpression(t, rule.expr, rule.alert, live)
  }
  const expressions = rules.groups[0].rules.map((rule: any) => rule.expr).join('\n')
  for (const wanted of ['realtime_slow_consumer_cuts_total', 'code="1006"', 'realtime_redis_reconnects_total', 'realtime_subscriber_replacements_total',
    'result="not_recovered"', 'realtime_ack_timeouts_total', 'status="503"']) {
    t.ok(expressions.includes(wanted), `an alert on ${wanted}`)
  }
})

t.test('grafana-dashboard.json: importable as is (a datasource variable, no fixed uid), every panel on metrics /metrics has', async (t) => {
  const live = await exposed(t)
  const dashboard = JSON.parse(await read('ops/grafana-dashboard.json'))
  t.equal(dashboard.uid, 'fastify-realtime')
  t.equal(dashboard.title, 'fastify-realtime')
  t.type(dashboard.schemaVersion, 'number')
  t.equal(dashboard.id, undefined, 'no database id: Grafana assigns one at import')
  const variables = dashboard.templating.list.map((variable: any) => [variable.name, variable.type])
  t.strictSame(variables, [['datasource', 'datasource'], ['job', 'query'], ['instance', 'query']])
  const ids = new Set<number>()
  const cells = new Map<string, string>()
  const overlaps: string[] = []
  let targets = 0
  for (const panel of dashboard.panels) {
    t.notOk(ids.has(panel.id), `panel ${String(panel.id)}: a unique id`)
    ids.add(panel.id)
    const { x, y, w, h } = panel.gridPos
    t.ok(x >= 0 && w > 0 && x + w <= 24 && h > 0, `${String(panel.title)}: within the 24-column grid`)
    for (let column = x; column < x + w; column++) {
      for (let line = y; line < y + h; line++) {
        const taken = cells.get(`${column}:${line}`)
        if (taken !== undefined) overlaps.push(`${String(panel.title)} over ${taken}`)
        cells.set(`${column}:${line}`, String(panel.title))
      }
    }
    if (panel.type === 'row') continue
    t.strictSame(panel.datasource, { type: 'prometheus', uid: DATASOURCE_VARIABLE }, `${String(panel.title)}: the datasource variable`)
    for (const target of panel.targets) {
      targets++
      t.strictSame(target.datasource, panel.datasource)
      checkExpression(t, target.expr, `${String(panel.title)} ${String(target.refId)}`, live)
    }
  }
  t.strictSame([...new Set(overlaps)], [], 'no panel overlaps another')
  t.ok(targets >= 25, 'every family of metrics has a panel')
  const used = new Set(dashboard.panels.flatMap((panel: any) => (panel.targets ?? []).flatMap((target: any) => selectors(target.expr).map((found) => found.metric.replace(HISTOGRAM_SERIES, '')))))
  t.strictSame([...live.labels.keys()].filter((name) => name.startsWith('realtime_') && !used.has(name)), [], 'no metric left off the dashboard')
})
