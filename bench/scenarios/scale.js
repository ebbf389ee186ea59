// Scenario 11: scale on one node. N sockets (15,000) on the embedded plugin,
// each also subscribed to its user's `notification.events`; then, side by
// side for a while, the settings broadcast at 1 msg/s (every socket) and
// targeted publishes at 1,000/s (one user each, round-robin). Latency of
// each kind, event-loop delay, CPU, memory, and that nothing is lost.
//
// Bare ws (cork) and Bun get the broadcast alone (they have no users to
// target): what one core delivers to N loopback sockets at best, the floor
// under the plugin's broadcast latency.
import { sleep } from '../lib/rpc.js'

export async function scale (lab, config) {
  // One fd per socket on each side, and some to spare for everything else.
  const session = await lab.open({ fileLimit: config.clients + 4096 })
  await session.prepareTokens(config.clients)
  const base = await session.mem()
  const connect = await session.connect(config.clients, config.connectConcurrency, { sourceAddresses: config.sourceAddresses })
  if (connect.opened < config.clients) throw new Error(`only ${connect.opened}/${config.clients} clients connected: ${JSON.stringify(connect.failures)}`)
  const plugin = lab.arm.client === 'plugin'
  if (plugin) {
    const { acked } = await session.loadgen.request('subscribe', { channel: 'notification.events', timeoutMs: 90_000 }, 100_000)
    if (acked < config.clients) throw new Error(`only ${acked}/${config.clients} clients subscribed`)
  }
  const targetedRate = plugin ? config.targetedRate : 0
  await sleep(200)
  const loaded = await session.mem()

  const broadcasts = Math.round(config.broadcastRate * config.seconds)
  const targeted = Math.round(targetedRate * config.seconds)
  const expected = broadcasts * session.clients + targeted
  // Without targeted publishes every message is a broadcast: one node, so all count as `local`.
  await session.loadgen.request('record', { count: expected, channels: plugin })
  const cpuBefore = await session.cpu()
  const loadgenBefore = (await session.loadgen.request('cpu')).total
  const reply = await session.publisher.request('mixed', {
    broadcastRate: config.broadcastRate, targetedRate, seconds: config.seconds, size: config.size, users: session.clients
  }, config.seconds * 1000 + 60_000)
  const result = await session.loadgen.request('wait', { timeoutMs: 60_000 }, 70_000)
  const cpu = await session.cpu() - cpuBefore
  const loadgenCpu = (await session.loadgen.request('cpu')).total - loadgenBefore
  const targetedFigures = {
    'scale.targetedP50': result.remote.p50,
    'scale.targetedP99': result.remote.p99,
    'scale.targetedMax': result.remote.max,
    'scale.targeted.received': result.remote.count,
    'scale.targeted.expected': targeted
  }
  return {
    'scale.connectPerSecond': connect.perSecond,
    'scale.rssPerSocket': (loaded.rss - base.rss) / session.clients / 1024,
    'scale.heapPerSocket': (loaded.heapUsed - base.heapUsed) / session.clients / 1024,
    'scale.broadcastP50': result.local.p50,
    'scale.broadcastP99': result.local.p99,
    'scale.broadcastMax': result.local.max,
    ...(plugin ? targetedFigures : {}),
    'scale.eldP99': reply.eldP99,
    'scale.eldMax': reply.eldMax,
    'scale.cpuShare': cpu / (config.seconds * 1e6),
    // Near 1: the load generator (one core for every socket) was the bottleneck, and latency says as much about it.
    'scale.loadgenCpuShare': loadgenCpu / (config.seconds * 1e6),
    'scale.broadcast.received': result.local.count,
    'scale.broadcast.expected': broadcasts * session.clients,
    'scale.received': result.received,
    'scale.expected': expected
  }
}
