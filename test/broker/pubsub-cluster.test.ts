// The sharded subscriber of a Redis Cluster is a client of its own, made
// from the publisher's: at start, and again whenever the broker replaces a
// subscriber that stopped receiving. By then the publisher's startup node
// may be dead (the master a failover replaced), and a client that could
// only start from it would never connect: the node would stay deaf to every
// user's channel while its publishes still went out.
import t from 'tap'
import { Cluster } from 'ioredis'
import { createPubSub } from '../../lib/broker/pubsub.js'
import { within } from '../helpers/outage.js'
import { OwnRedisCluster } from '../helpers/redis-cluster.js'
import { CLUSTER_CLIENT_OPTIONS } from '../helpers/recommended-clients.js'

const WAIT_MS = 10_000

t.test('a sharded subscriber made after the publisher\'s startup node died starts from the nodes the publisher knows, and receives', async (t) => {
  const cluster = await OwnRedisCluster.start({ replicas: 1 })
  t.teardown(async () => await cluster.stop())
  // A replica: killing it leaves every slot served, so the cluster stays up without a failover.
  const [startupNode] = await cluster.replicas() as [number]
  const publisher = new Cluster([{ host: '127.0.0.1', port: startupNode }], { ...CLUSTER_CLIENT_OPTIONS })
  t.teardown(() => { publisher.disconnect() })
  await publisher.set('{u1}probe', '1')

  await cluster.signal(startupNode, 'SIGKILL')
  const pubsub = createPubSub(publisher)
  t.teardown(() => { pubsub.close() })
  // The broker logs a subscriber's errors; here they would be unhandled error events.
  pubsub.subscriber.on('error', () => {})
  const received = new Promise<string>((resolve) => { pubsub.onMessage((channel, message) => resolve(`${channel} ${message.toString()}`)) })

  await within(pubsub.subscribe(['rt:u:{u1}']), WAIT_MS, 'SSUBSCRIBE answered')
  await pubsub.publish('rt:u:{u1}', Buffer.from('hello'))
  t.equal(await within(received, WAIT_MS, 'the message'), 'rt:u:{u1} hello')
})
