import t from 'tap'
import { waitFor } from '../helpers/cluster.js'
import { KYC, MODES, PAYMENTS, SETTINGS, deploy, dropSocket, epochOf, eventsOf, join, open, publishAll, subscribe } from '../helpers/history.js'
import { ADMIN_TOKEN, PREFIX, assertOk, bearer, http } from '../helpers/http.js'
import { within } from '../helpers/outage.js'

/** The sample lines of an exposition (no comments), as written. */
const samples = (text: string): string[] => text.split('\n').filter((line) => line !== '' && !line.startsWith('#'))

t.test('recoveries by result and reason, replayed events, acks, ack timeouts and publish-to-ack latency in /metrics and stats()', async (t) => {
  const [node] = await deploy(t, 'embedded', 1, { history: { size: 4 }, diagnostics: { adminTokens: [ADMIN_TOKEN] } })
  const device = await join(t, node, 'metered', [PAYMENTS])
  const seen = await publishAll(node, 'metered', [PAYMENTS, PAYMENTS])
  await eventsOf(device.phone, 2)
  await dropSocket(device.phone, [node], 'metered')
  await publishAll(node, 'metered', [PAYMENTS, PAYMENTS], 10)

  // payments: recovered (2 replayed); settings: an id of no life of its stream.
  const phone = await open(t, node, device.token, { [PAYMENTS]: seen[1].id, [SETTINGS]: 'AAAAAAAA:0' })
  t.strictSame(phone.connected.data.recovery, { [PAYMENTS]: { recovered: true, replayed: 2 }, [SETTINGS]: { recovered: false, reason: 'epoch_changed' } })
  await eventsOf(phone, 2)
  // Offsets 5 to 7 push 1 to 3 out: kyc from 1 is too old.
  await publishAll(node, 'metered', [PAYMENTS, PAYMENTS, PAYMENTS], 20)
  await eventsOf(phone, 5)
  t.strictSame((await subscribe(phone, KYC, `${epochOf(seen[0].id)}:1`)).data.reason, 'too_old')

  const acked = node.app.realtime.publish(PAYMENTS, 'PAID', {}, { userId: 'metered', awaitAck: { timeoutMs: 20_000 } })
  const [, , , , , event] = await eventsOf(phone, 6)
  phone.send({ event: 'ack', channel: PAYMENTS, id: event.id })
  t.equal((await within(acked, 10_000, 'the ack')).acked, true)
  t.equal((await node.app.realtime.publish(PAYMENTS, 'PAID', {}, { userId: 'metered', awaitAck: { timeoutMs: 50 } })).acked, false)

  const stats = node.app.realtime.stats()
  t.strictSame([stats.replayed, stats.acks, stats.ack_timeouts, stats.recoveries], [2, 1, 1, { recovered: 1, epoch_changed: 1, too_old: 1 }])
  const result = await http(`${node.httpBase}${PREFIX}/metrics`, bearer(ADMIN_TOKEN))
  t.equal(result.status, 200)
  const lines = samples(result.text)
  for (const line of [
    'realtime_recoveries_total{result="recovered",reason=""} 1',
    'realtime_recoveries_total{result="not_recovered",reason="epoch_changed"} 1',
    'realtime_recoveries_total{result="not_recovered",reason="too_old"} 1',
    'realtime_replayed_events_total 2',
    'realtime_acks_total 1',
    'realtime_ack_timeouts_total 1',
    'realtime_publish_to_ack_seconds_count 1',
    'realtime_publish_to_ack_seconds_bucket{le="+Inf"} 1'
  ]) t.ok(lines.includes(line), line)
  t.equal(lines.filter((line) => line.startsWith('realtime_recoveries_total')).length, 3, 'no other result or reason')
  t.match(result.text, /^# TYPE realtime_recoveries_total counter$/m)
  t.match(result.text, /^# TYPE realtime_publish_to_ack_seconds histogram$/m)
})

t.test('history off: the history metrics are there, at zero', async (t) => {
  const [node] = await deploy(t, 'embedded', 1, { diagnostics: { adminTokens: [ADMIN_TOKEN] } })
  const lines = samples((await http(`${node.httpBase}${PREFIX}/metrics`, bearer(ADMIN_TOKEN))).text)
  for (const line of ['realtime_replayed_events_total 0', 'realtime_acks_total 0', 'realtime_ack_timeouts_total 0', 'realtime_publish_to_ack_seconds_count 0']) {
    t.ok(lines.includes(line), line)
  }
  t.equal(lines.filter((line) => line.startsWith('realtime_recoveries_total')).length, 0)
})

for (const mode of MODES) {
  t.test(`${mode}: /connections shows each socket's last acked id per channel`, async (t) => {
    const [node] = await deploy(t, mode, 1, { history: {}, heartbeat: { intervalMs: 200 }, diagnostics: { adminTokens: [ADMIN_TOKEN] } })
    const device = await join(t, node, 'shown', [PAYMENTS, KYC])
    const published = await publishAll(node, 'shown', [PAYMENTS, KYC, PAYMENTS])
    await eventsOf(device.phone, 3)
    device.phone.send({ event: 'ack', channel: PAYMENTS, id: published[2].id })
    device.phone.send({ event: 'ack', channel: KYC, id: published[1].id })
    const expected = { [PAYMENTS]: published[2].id, [KYC]: published[1].id }
    await waitFor(() => JSON.stringify(node.app.realtime.connections()[0]?.acked) === JSON.stringify(expected), 'the acks', 5000)
    // Cluster mode lists connections from Redis, rewritten every heartbeat interval.
    const listed = async (): Promise<any> => (await http(`${node.httpBase}${PREFIX}/connections`, bearer(ADMIN_TOKEN))).body.data?.connections[0]
    await within(waitFor(async () => JSON.stringify((await listed())?.acked) === JSON.stringify(expected), '/connections to show the acks', 3000), 5000, '/connections')
      .catch(() => {})
    const entry = assertOk(t, await http(`${node.httpBase}${PREFIX}/connections`, bearer(ADMIN_TOKEN))).connections[0]
    t.strictSame(entry.acked, expected)

    const plain = await deploy(t, mode, 1, { diagnostics: { adminTokens: [ADMIN_TOKEN] } })
    await join(t, plain[0], 'unshown', [PAYMENTS])
    // Cluster mode lists a new socket within a tenth of a second (presence writes wait to share one).
    const unshown = async (): Promise<any> => (await http(`${plain[0].httpBase}${PREFIX}/connections`, bearer(ADMIN_TOKEN))).body.data?.connections[0]
    await waitFor(async () => (await unshown()) !== undefined, 'the socket listed', 5000)
    t.notOk('acked' in await unshown(), 'history off: no acked field')
  })
}
