import t from 'tap'
import WebSocket from 'ws'
import type { ChannelEvent, ClientState, RealtimeClient } from '../../lib/client/index.js'
import { createClient } from '../../lib/client/index.js'
import { startApp } from '../helpers/app.js'

interface Wallet { wallet_id: string, status: 'pending' | 'settled' }

// An app's channel, declared once for the server's publish and the client's handlers alike.
declare module '../../lib/index.js' {
  interface RealtimeChannels {
    'wallet.events': { scope: 'user', data: Wallet }
  }
}

/** Compiled by `tsc --noEmit` (npm test): the handlers' types come from the server's channel declarations. */
function typed (client: RealtimeClient, seen: unknown[]): void {
  client.on('wallet.events', (event) => {
    const status: 'pending' | 'settled' = event.data.status
    const channel: 'wallet.events' = event.channel
    // @ts-expect-error no such field in Wallet
    seen.push(status, channel, event.data.amount)
  })
  client.on('kyc.events', (event: ChannelEvent<'kyc.events'>) => { seen.push(event.data.anything) })
  client.on('custom.events', (event) => { const data: Record<string, unknown> = event.data; seen.push(data) })
  client.on('resync', ({ channel, reason }) => { seen.push(channel.length, reason.length) })
  client.onState((state: ClientState) => {
    if (state.state === 'disconnected') seen.push(state.code + state.delayMs)
    // @ts-expect-error only a disconnected or closed state has a code
    if (state.state === 'connected') seen.push(state.code)
  })
}

t.test('a typed handler gets what the server published on an app channel; the global WebSocket is the default', async (t) => {
  const { app, wsBase } = await startApp({ channels: { 'wallet.events': { scope: 'user' } } })
  t.teardown(() => app.close())
  const global = globalThis as { WebSocket?: unknown }
  const before = global.WebSocket
  global.WebSocket = WebSocket
  t.teardown(() => { global.WebSocket = before })
  const client = createClient({ url: `${wsBase}/api/v1/ws`, token: await app.realtime.tokens.issue('u1', { ttlSeconds: 60 }), channels: ['wallet.events'] })
  t.teardown(() => client.close())
  const seen: unknown[] = []
  typed(client, seen)
  const received = new Promise<Wallet>((resolve) => client.on('wallet.events', (event) => resolve(event.data)))
  await client.subscribe('wallet.events')
  await app.realtime.channels['wallet.events'].publish('u1', 'WALLET_UPDATED', { wallet_id: 't1', status: 'settled' })
  t.strictSame(await received, { wallet_id: 't1', status: 'settled' })
  t.strictSame(seen, [undefined, 'settled', 'wallet.events', undefined], 'the connected state (no code), then the typed handler')
})
