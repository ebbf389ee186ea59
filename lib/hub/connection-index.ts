import { AUTO_SUBSCRIBED } from '../constants.js'
import type { Connection } from './connection.js'

/**
 * Every live connection of this node, indexed the ways the hub looks them
 * up: by user (one socket per user; a revoked token is found by its user too)
 * and, for global channels, by subscription (fan-out without scanning every socket). An
 * auto-subscribed channel (`settings`) holds nearly every socket: its
 * subscribers are found by scanning them all (its broadcast writes to each
 * anyway) rather than kept in a set that costs every socket ~20 bytes.
 */
export interface ConnectionListener {
  added: (connection: Connection) => void
  /** Called after removal: `forUser()` already tells whether the user has another socket here. */
  removed: (connection: Connection) => void
}

export class ConnectionIndex {
  // One socket per user: the map by user holds each connection once (nothing looks one up by its id).
  readonly #byUser = new Map<string, Connection>()
  /** Global channels other than the auto-subscribed ones. */
  readonly #globalSubscribers = new Map<string, Set<Connection>>()
  readonly #listeners: ConnectionListener[] = []

  get size (): number {
    return this.#byUser.size
  }

  /** The node follows every add and remove (which user topics to listen to; presence and fencing in cluster mode). */
  listen (listener: ConnectionListener): void {
    this.#listeners.push(listener)
  }

  /** Adds `connection`; returns the user's previous connection, which the caller must close. */
  add (connection: Connection): Connection | undefined {
    const previous = this.#byUser.get(connection.userId)
    this.#byUser.set(connection.userId, connection)
    // A new connection holds only the auto-subscribed channels: nothing to add to #globalSubscribers.
    // Removed once the new one is in: listeners see that the user still has a socket here.
    if (previous !== undefined) this.#forget(previous)
    for (const listener of this.#listeners) listener.added(connection)
    return previous
  }

  /** Removes `connection` everywhere; false if it was not here. */
  remove (connection: Connection): boolean {
    if (this.#byUser.get(connection.userId) !== connection) return false
    this.#byUser.delete(connection.userId)
    this.#forget(connection)
    return true
  }

  /** The rest of a removal, once the user's entry no longer names `connection`. */
  #forget (connection: Connection): void {
    for (const channel of connection.subscriptions) removeFrom(this.#globalSubscribers, channel, connection)
    for (const listener of this.#listeners) listener.removed(connection)
  }

  subscribe (connection: Connection, channel: string, isGlobal: boolean): void {
    connection.addSubscription(channel)
    if (isGlobal && !AUTO_SUBSCRIBED.includes(channel)) addTo(this.#globalSubscribers, channel, connection)
  }

  unsubscribe (connection: Connection, channel: string): void {
    connection.removeSubscription(channel)
    removeFrom(this.#globalSubscribers, channel, connection)
  }

  forUser (userId: string): Connection | undefined {
    return this.#byUser.get(userId)
  }

  /** A snapshot of a global channel's subscribers. */
  subscribersOf (channel: string): Connection[] {
    if (!AUTO_SUBSCRIBED.includes(channel)) return [...this.#globalSubscribers.get(channel) ?? []]
    // Every socket, less those that unsubscribed: one pass, no intermediate array (a broadcast to every socket runs this).
    const subscribers: Connection[] = []
    for (const connection of this.#byUser.values()) if (connection.subscriptions.includes(channel)) subscribers.push(connection)
    return subscribers
  }

  userIds (): string[] {
    return [...this.#byUser.keys()]
  }

  [Symbol.iterator] (): IterableIterator<Connection> {
    return this.#byUser.values()
  }
}

function addTo<K, V> (index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key)
  if (set === undefined) index.set(key, new Set([value]))
  else set.add(value)
}

function removeFrom<K, V> (index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key)
  if (set === undefined) return
  set.delete(value)
  if (set.size === 0) index.delete(key)
}
