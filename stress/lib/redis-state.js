// What a deployment leaves in Redis, read by the orchestrator: subscribers per
// topic, presence and fencing keys. Exact, since the run has its own Redis.
import { Redis } from 'ioredis'

export class RedisState {
  constructor (url, keyPrefix) {
    this.keyPrefix = keyPrefix
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true })
  }

  async connect () {
    await this.redis.connect()
    return this
  }

  /** Total subscribers of the users' topics (`{p}u:{user}`), summed. */
  async userSubscribers (users) {
    let total = 0
    for (let start = 0; start < users.length; start += 500) {
      const topics = users.slice(start, start + 500).map((user) => `${this.keyPrefix}u:{${user}}`)
      const answer = await this.redis.pubsub('NUMSUB', ...topics)
      for (let index = 1; index < answer.length; index += 2) total += Number(answer[index])
    }
    return total
  }

  /** Every topic of the deployment with at least one subscriber (without the key prefix), sorted. */
  async topics () {
    return (await this.redis.pubsub('CHANNELS', `${this.keyPrefix}*`)).map((topic) => topic.slice(this.keyPrefix.length)).sort()
  }

  /** Presence: the live nodes, and per node its connection and user entries. */
  async presence (nodeIds) {
    const nodes = await this.redis.zcard(`${this.keyPrefix}nodes`)
    const entries = {}
    for (const id of nodeIds) {
      entries[id] = { conns: await this.redis.hlen(`${this.keyPrefix}node:{${id}}:conns`), users: await this.redis.hlen(`${this.keyPrefix}node:{${id}}:users`) }
    }
    return { nodes, entries }
  }

  /** The nodes presence counts as alive now (their entry in `{p}nodes` has not expired). */
  async liveNodes () {
    return (await this.redis.zrangebyscore(`${this.keyPrefix}nodes`, Date.now(), '+inf')).sort()
  }

  /** How many keys match `{p}<pattern>`. */
  async count (pattern) {
    let cursor = '0'
    let count = 0
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.keyPrefix}${pattern}`, 'COUNT', 1000)
      cursor = next
      count += keys.length
    } while (cursor !== '0')
    return count
  }

  close () {
    this.redis.disconnect()
  }
}
