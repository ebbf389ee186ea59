// Scenario 6, sustained variant: on loopback the kernel absorbs ~4 MiB per
// paused socket, so a 200-message burst never reaches the server's own
// buffers. Here 1% of the clients stop reading while large messages keep
// coming, well past that, so what the server does with the excess shows.
import { rssGrowth, slowConsumerCuts } from './broadcast.js'

export async function slowSustained (session, config) {
  const connect = await session.connect(config.clients, config.connectConcurrency)
  if (connect.opened === 0) throw new Error(`no client connected: ${JSON.stringify(connect.failures)}`)
  const { paused } = await session.loadgen.request('pause', { count: Math.max(1, Math.round(session.clients * config.slowFraction)) })
  const count = Math.round(config.rate * config.seconds)
  const expected = (session.clients - paused) * count
  await session.loadgen.request('record', { count: expected })
  const before = await session.each('watch', { buffered: true })
  await session.publisher.request('paced', { rate: config.rate, count, size: config.size }, config.seconds * 1000 + 60_000)
  const result = await session.loadgen.request('wait', { timeoutMs: 60_000 }, 70_000)
  const peaks = await session.each('peaks')
  const stats = await session.each('stats')
  return {
    'sustained.rssGrowth': rssGrowth(before, peaks),
    'sustained.bufferedPeak': peaks.reduce((total, peak) => total + peak.bufferedPeak, 0) / 1048576,
    'sustained.p99': result.latency.p99,
    'sustained.cuts': slowConsumerCuts(stats),
    'sustained.healthyCloses': result.unexpectedCloses,
    'sustained.received': result.received,
    'sustained.expected': expected
  }
}
