import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { SubscriptionSet } from '../../lib/broker/subscriptions.js'

/** A fake subscriber connection that records every command and can be told to fail. */
function fakeConnection ({ spacingMs = 0 } = {}) {
  const calls: string[] = []
  const errors: string[] = []
  let failNext = 0
  const command = (name: string) => async (channels: string[]): Promise<void> => {
    calls.push(`${name} ${channels.join(' ')}`)
    if (failNext > 0) {
      failNext--
      throw new Error(`${name} refused`)
    }
  }
  const set = new SubscriptionSet(command('SUBSCRIBE'), command('UNSUBSCRIBE'), (error) => errors.push(error.message), { spacingMs })
  return { set, calls, errors, failNextCommands: (count: number) => { failNext = count } }
}

t.test('changes within one turn of the event loop go out as one SUBSCRIBE', async (t) => {
  const { set, calls } = fakeConnection()
  await Promise.all([set.want('a'), set.want('b'), set.want('c'), set.want('a')])
  t.same(calls, ['SUBSCRIBE a b c'])
  await set.want('a')
  t.same(calls, ['SUBSCRIBE a b c'], 'an active channel costs nothing')
})

t.test('every want of a channel not subscribed yet answers the same promise: a connect\'s announcement and its fencing wait for one SUBSCRIBE', async (t) => {
  const { set, calls } = fakeConnection()
  const first = set.want('u:1')
  const second = set.want('u:1')
  t.equal(second, first)
  await first
  t.same(calls, ['SUBSCRIBE u:1'])
})

t.test('with spacing, changes that come soon after a batch wait for the rest of the spacing and go out as one SUBSCRIBE', async (t) => {
  const { set, calls } = fakeConnection({ spacingMs: 300 })
  await set.want('a')
  t.same(calls, ['SUBSCRIBE a'], 'an idle set sends at once')
  const b = set.want('b')
  await new Promise((resolve) => setImmediate(resolve))
  const c = set.want('c')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(calls, ['SUBSCRIBE a'], 'the next ones wait')
  await Promise.all([b, c])
  t.same(calls, ['SUBSCRIBE a', 'SUBSCRIBE b c'])
})

t.test('a paced batch still waiting when the set closes never goes out', async (t) => {
  const { set, calls } = fakeConnection({ spacingMs: 50 })
  await set.want('a')
  // The first batch is done; the next one is now paced, waiting for the rest of the 50 ms.
  await new Promise((resolve) => setImmediate(resolve))
  // Never answered: whoever waits for a channel of a closed set waits with it.
  set.want('b').catch(() => {})
  set.close()
  await sleep(80)
  t.same(calls, ['SUBSCRIBE a'], 'no SUBSCRIBE after close')
})

t.test('a channel wanted and dropped before its batch goes out costs nothing, and whoever waited for it is let go', async (t) => {
  const { set, calls } = fakeConnection()
  const waited = set.want('brief')
  set.drop('brief')
  await waited
  await sleep(5)
  t.same(calls, [], 'no SUBSCRIBE, no UNSUBSCRIBE')
})

t.test('a channel dropped and wanted again within one batch costs nothing; dropped ones go out as one UNSUBSCRIBE', async (t) => {
  const { set, calls } = fakeConnection()
  await Promise.all([set.want('a'), set.want('b'), set.want('c')])
  set.drop('a')
  const again = set.want('a')
  set.drop('b')
  set.drop('c')
  set.drop('never-wanted')
  await again
  await sleep(5)
  t.same(calls, ['SUBSCRIBE a b c', 'UNSUBSCRIBE b c'])
})

t.test('a channel dropped while its SUBSCRIBE is in flight is unsubscribed right after', async (t) => {
  const { set, calls } = fakeConnection()
  const wanted = set.want('a')
  await new Promise((resolve) => setImmediate(resolve))
  set.drop('a')
  await wanted
  await sleep(5)
  t.same(calls, ['SUBSCRIBE a', 'UNSUBSCRIBE a'])
})

t.test('a failed SUBSCRIBE is reported and retried until it lands; waiters resolve then', async (t) => {
  // The retry timer is unref'd (it must not hold a server open): keep this process up meanwhile.
  const keepAlive = setInterval(() => {}, 100)
  t.teardown(() => clearInterval(keepAlive))
  const { set, calls, errors, failNextCommands } = fakeConnection()
  failNextCommands(1)
  await set.want('a')
  t.same(calls, ['SUBSCRIBE a', 'SUBSCRIBE a'])
  t.same(errors, ['SUBSCRIBE refused'])
})

t.test('a failed UNSUBSCRIBE is reported; the channel counts as gone', async (t) => {
  const { set, calls, errors, failNextCommands } = fakeConnection()
  await set.want('a')
  failNextCommands(1)
  set.drop('a')
  await sleep(5)
  t.same(calls, ['SUBSCRIBE a', 'UNSUBSCRIBE a'])
  t.same(errors, ['UNSUBSCRIBE refused'])
})

t.test('reset subscribes everything wanted again and resolves once it is back', async (t) => {
  const { set, calls } = fakeConnection()
  await Promise.all([set.want('a'), set.want('b')])
  await set.reset()
  t.same(calls, ['SUBSCRIBE a b', 'SUBSCRIBE a b'])
  await fakeConnection().set.reset()
})

t.test('a channel dropped while its SUBSCRIBE is in flight is unsubscribed once that SUBSCRIBE is answered', async (t) => {
  const calls: string[] = []
  let answer = (): void => {}
  const set = new SubscriptionSet(async (channels) => {
    calls.push(`SUBSCRIBE ${channels.join(' ')}`)
    await new Promise<void>((resolve) => { answer = resolve })
  }, async (channels) => { calls.push(`UNSUBSCRIBE ${channels.join(' ')}`) }, () => {})
  const wanted = set.want('a')
  await sleep(5)
  t.same(calls, ['SUBSCRIBE a'], 'in flight')
  set.drop('a')
  await wanted
  answer()
  await sleep(5)
  t.same(calls, ['SUBSCRIBE a', 'UNSUBSCRIBE a'])
})

t.test('a SUBSCRIBE in flight on the connection a reset replaced does not count: the reset subscribes its channels on the new one', async (t) => {
  const calls: string[] = []
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  let first = true
  const set = new SubscriptionSet(async (channels) => {
    calls.push(`SUBSCRIBE ${channels.join(' ')}`)
    // The first batch goes to the old connection and answers only after the reset.
    if (first) {
      first = false
      await held
    }
  }, async () => {}, () => {})
  const wanted = set.want('a')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(calls, ['SUBSCRIBE a'])
  const reset = set.reset()
  // The old connection's answer lands between the reset and its batch.
  release()
  await wanted
  await reset
  t.same(calls, ['SUBSCRIBE a', 'SUBSCRIBE a'], 'subscribed again on the new connection')
})

t.test('one batch is in flight at a time: what changes while Redis answers goes out together once it has', async (t) => {
  const calls: string[] = []
  const answers: Array<() => void> = []
  const set = new SubscriptionSet(async (channels) => {
    calls.push(`SUBSCRIBE ${channels.join(' ')}`)
    await new Promise<void>((resolve) => answers.push(resolve))
  }, async (channels) => { calls.push(`UNSUBSCRIBE ${channels.join(' ')}`) }, () => {})
  const first = set.want('a')
  await sleep(5)
  // Three later turns of the event loop, each with a change of its own.
  const later = [set.want('b')]
  await sleep(5)
  later.push(set.want('c'))
  await sleep(5)
  later.push(set.want('a'))
  t.same(calls, ['SUBSCRIBE a'], 'nothing more while the first batch is unanswered')
  answers[0]()
  await first
  await sleep(5)
  t.same(calls, ['SUBSCRIBE a', 'SUBSCRIBE b c'], 'the next batch holds what changed meanwhile, less what the first one subscribed')
  answers[1]()
  await Promise.all(later)
  set.drop('b')
  await sleep(5)
  t.same(calls, ['SUBSCRIBE a', 'SUBSCRIBE b c', 'UNSUBSCRIBE b'], 'an idle set sends a change at once')
})

t.test('a SUBSCRIBE that fails on the connection a reset replaced is not retried: the reset subscribes its channels', async (t) => {
  const calls: string[] = []
  let refuse: (error: Error) => void = () => {}
  let first = true
  const set = new SubscriptionSet(async (channels) => {
    calls.push(`SUBSCRIBE ${channels.join(' ')}`)
    if (first) {
      first = false
      await new Promise<void>((_resolve, reject) => { refuse = reject })
    }
  }, async () => {}, () => {})
  const wanted = set.want('a')
  await new Promise((resolve) => setImmediate(resolve))
  const reset = set.reset()
  refuse(new Error('connection lost'))
  await Promise.all([wanted, reset])
  await sleep(1100)
  t.same(calls, ['SUBSCRIBE a', 'SUBSCRIBE a'], 'subscribed again once, by the reset, not retried on top')
})
