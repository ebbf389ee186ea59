// Scenario 4b (2-node arms): scenario 4's targeted publishes at load, 5,000/s
// and 20,000/s, on a redis-server of the step's own (pinned to core 1 with
// the load generator), so its INFO cpu counts only these publishes. Cross-node
// and same-node latency, Redis and server CPU per publish, and the rate the
// publishing node actually kept up.

export async function targetedLoad (lab, config) {
  const redis = await lab.ownRedis()
  const session = await lab.open({ redisUrl: redis?.url })
  const connect = await session.connect(config.clients, config.connectConcurrency)
  if (connect.opened < config.clients) throw new Error(`only ${connect.opened}/${config.clients} clients connected: ${JSON.stringify(connect.failures)}`)
  if (session.arm.client === 'plugin') {
    const { acked } = await session.loadgen.request('subscribe', { channel: 'notification.events' }, 40_000)
    if (acked < session.clients) throw new Error(`only ${acked}/${session.clients} clients subscribed`)
  }
  const cpuOfRedis = async () => redis === undefined ? NaN : await redis.cpuSeconds()
  // Unmeasured: JIT, pools and Redis connections warmed at the lower rate.
  await run(session, config.warmupRate, config.warmupSeconds, config.size, cpuOfRedis)
  const metrics = {}
  // For --cpu-prof: the measured rates' windows (monotonic µs, the profile's clock), as in burstOnly.
  const windows = []
  const notes = redis === undefined ? [`no redis-server could be started: the shared Redis at ${lab.redisUrl} was used, its CPU includes other clients`] : []
  for (const rate of config.rates) {
    const failuresBefore = await failedPublishes(session)
    const { window, ...measured } = await run(session, rate, config.seconds, config.size, cpuOfRedis)
    windows.push(window)
    for (const [name, value] of Object.entries(measured)) metrics[`targetedLoad.${rate}.${name}`] = value
    const failures = subtract(await failedPublishes(session), failuresBefore)
    metrics[`targetedLoad.${rate}.failedPublishes`] = Object.values(failures).reduce((sum, times) => sum + times, 0)
    if (Object.keys(failures).length > 0) notes.push(`${rate}/s: publishes that failed (their promise rejected), by message: ${JSON.stringify(failures)}`)
  }
  return { ...metrics, _notes: notes, _windows: windows }
}

/** Failed publishes so far on node 0, by message. */
async function failedPublishes (session) {
  return await session.publisher.request('publishFailures')
}

function subtract (after, before) {
  const difference = {}
  for (const [message, times] of Object.entries(after)) if (times > (before[message] ?? 0)) difference[message] = times - (before[message] ?? 0)
  return difference
}

async function run (session, rate, seconds, size, cpuOfRedis) {
  const count = Math.round(rate * seconds)
  await session.loadgen.request('record', { count })
  const redisBefore = await cpuOfRedis()
  const cpuBefore = await session.cpu()
  const reply = await session.publisher.request('paced', { rate, count, size, targeted: true, users: session.clients }, seconds * 1000 + 60_000)
  const result = await session.loadgen.request('wait', { timeoutMs: 60_000 }, 70_000)
  const cpu = await session.cpu() - cpuBefore
  const redisCpu = await cpuOfRedis() - redisBefore
  return {
    remoteP50: result.remote.p50,
    remoteP99: result.remote.p99,
    localP99: result.local.p99,
    max: result.latency.max,
    publishedPerSecond: count / (reply.publishMs / 1000),
    eldP99: reply.eldP99,
    serverCpuPerPublish: cpu / count,
    redisCpuPerPublish: redisCpu * 1e6 / count,
    received: result.received,
    expected: count,
    window: [Number(BigInt(reply.startNs) / 1000n), Number(BigInt(result.lastNs) / 1000n)]
  }
}
