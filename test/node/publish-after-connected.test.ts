import t from 'tap'
import WebSocket from 'ws'
import { startNodes } from '../helpers/cluster.js'
import type { TestApp } from '../helpers/app.js'

const ROUNDS = Number(process.env.ROUNDS ?? 500)
const WAIT_MS = 5000

/**
 * One round: connect to `home`; as soon as `connected` arrives, publish on
 * `publisher` to the user (on a channel delivered without subscription), then
 * subscribe to `notification.events` and publish there as soon as
 * `subscribed` arrives. Resolves with the events that never came.
 */
async function round (home: TestApp, publisher: TestApp, userId: string): Promise<string[]> {
  const token = await publisher.app.realtime.tokens.issue(userId, { ttlSeconds: 60 })
  const socket = new WebSocket(`${home.wsBase}/api/v1/ws?token=${token}`)
  const waiting = new Set(['after-connected', 'after-subscribed'])
  try {
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      socket.on('error', reject)
      socket.on('close', () => { clearTimeout(timer); resolve() })
      socket.on('message', (data) => {
        const message = JSON.parse(data.toString()) as { event: string }
        if (message.event === 'connected') {
          // Generous on a loaded machine: a late event is not a lost one.
          timer = setTimeout(resolve, WAIT_MS)
          publisher.app.realtime.publish('mobile.force.logout', 'after-connected', {}, { userId }).catch(reject)
          socket.send(JSON.stringify({ event: 'subscribe', channel: 'notification.events' }))
        } else if (message.event === 'subscribed') {
          publisher.app.realtime.publish('notification.events', 'after-subscribed', {}, { userId }).catch(reject)
        } else {
          waiting.delete(message.event)
          if (waiting.size === 0) {
            clearTimeout(timer)
            resolve()
          }
        }
      })
    })
  } finally {
    socket.terminate()
  }
  return [...waiting].map((event) => `${userId}: ${event}`)
}

async function rounds (home: TestApp, publisher: TestApp, concurrency: number, label: string): Promise<string[]> {
  const lost: string[] = []
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < ROUNDS) {
      const index = next++
      lost.push(...await round(home, publisher, `${label}-${index}`))
    }
  }))
  return lost
}

t.test('every event published after connected or subscribed arrives, on the node and across nodes', async (t) => {
  const [home, other] = await startNodes(t, 2)
  for (const [publisher, where] of [[home, 'same node'], [other, 'other node']] as const) {
    for (const concurrency of [1, 50]) {
      const label = `${where === 'same node' ? 'same' : 'other'}-${concurrency}`
      t.same(await rounds(home, publisher, concurrency, label), [], `${ROUNDS} rounds, ${concurrency} in flight, published on the ${where}: nothing lost`)
    }
  }
})
