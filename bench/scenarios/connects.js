// Scenario 5b: connect rate with many handshakes in flight (500), on fresh
// processes: scenario 5 measures 50 in flight on the sockets the broadcast
// scenarios then use. Counted until each socket can receive, as in 5.
export async function connectsInFlight (session, config) {
  const connect = await session.connect(config.clients, config.concurrency)
  if (connect.opened === 0) throw new Error(`no client connected: ${JSON.stringify(connect.failures)}`)
  return { 'connect500.perSecond': connect.perSecond, 'connect500.failed': connect.failed }
}
