#!/usr/bin/env python3
"""Publish an event to fastify-realtime sockets from Python, over the gateway's Redis wire.

The gateway nodes listen on Redis pub/sub; this writes the same bytes that
`app.realtime.publish` writes (README "Publishing from other languages"), so
the event reaches the user's socket on whichever node holds it. It does not
check the event against the channel catalog: publish only channels and data
the gateway declares.

    publish_event.py --redis redis://127.0.0.1:6379 --key-prefix rt: \\
        --channel payment_order.events --user 42 --event PAYMENT_STATUS_CHANGED \\
        --data '{"order_id":"o-1","status":"completed"}' \\
        [--history 256,600,2592000] [--idempotency-key pay-o-1-completed --window 300]

Prints the event's id (history on) or nothing, and "repeated" for a retry
the gateway's idempotency record already holds. Needs redis-py
(Debian: python3-redis).
"""
import argparse
import json
import secrets
import sys
import time

import redis

# The gateway's append script, byte for byte (README "Publishing from other languages"):
# append to the stream, trim, expire, bump the meta hash, publish, and with an
# idempotency record, only once per window. KEYS and ARGV as README lists them.
APPEND = """
if KEYS[3] then
  local first = redis.call('GET', KEYS[3])
  if first then return {first, 0, 1} end
end

local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'top', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end

local offset = redis.call('HINCRBY', KEYS[2], 'top', 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
local id = epoch .. ':' .. offset
local payload = ARGV[8] .. id .. ARGV[9]
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], offset .. '-0', 'c', ARGV[7], 'p', payload, 'a', ARGV[12])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local receivers = redis.call(ARGV[5], ARGV[6], ARGV[10] .. id .. ARGV[11] .. payload)
if ARGV[13] ~= '' then redis.call(ARGV[5], ARGV[6], ARGV[13]) end
if KEYS[3] then redis.call('SET', KEYS[3], id, 'EX', ARGV[14]) end
return {id, receivers, 0}
"""

# History off, with an idempotency key: publish unless the record is there, then record it.
PUBLISH_ONCE = """
local first = redis.call('GET', KEYS[1])
if first then return {first, 0, 1} end
local receivers = redis.call(ARGV[2], ARGV[3], ARGV[4])
redis.call('SET', KEYS[1], '', 'EX', ARGV[1])
return {'', receivers, 0}
"""


def event_json(event, channel, data):
    """The envelope the apps read: {"event","channel","data"}, compact, in this order."""
    return '{"event":%s,"channel":%s,"data":%s}' % (
        json.dumps(event, ensure_ascii=False),
        json.dumps(channel, ensure_ascii=False),
        json.dumps(data, ensure_ascii=False, separators=(',', ':')))


def publish(client, key_prefix, channel, event, data, user=None, history=None, idempotency_key=None, window=300):
    """Publishes one event; returns (id or None, repeated)."""
    scope = 'u:{%s}' % user if user is not None else 'c:{%s}' % channel
    topic = key_prefix + scope
    once = None
    if idempotency_key is not None:
        # Per user and channel, or per global channel: '|' is never in a channel name.
        once = key_prefix + ('idem:u:{%s}:%s|%s' % (user, channel, idempotency_key) if user is not None
                             else 'idem:c:{%s}|%s' % (channel, idempotency_key))
    published_at = int(time.time() * 1000)
    payload = event_json(event, channel, data)
    if history is None:
        message = ('E%d %s\n' % (published_at, channel)) + payload
        if once is None:
            client.publish(topic, message.encode())
            return None, False
        _, _, repeated = client.eval(PUBLISH_ONCE, 1, once, window, 'publish', topic, message.encode())
        return None, repeated == 1
    size, ttl, meta_ttl = history
    stream = key_prefix + 'stream:' + scope
    keys = [stream, stream + ':meta'] + ([once] if once is not None else [])
    args = [
        secrets.token_urlsafe(6),          # a new epoch (8 chars), used only if the meta hash is gone
        meta_ttl, size, ttl,
        'publish', topic, channel,
        payload[:-1] + ',"id":"', '"}',     # the event with "id" last
        'E%d %s ' % (published_at, channel), '\n',
        '',                                 # no node awaits an ack
        '',                                 # nothing published after it
    ] + ([window] if once is not None else [])
    first, _, repeated = client.eval(APPEND, len(keys), *keys, *args)
    event_id = first.decode() if isinstance(first, bytes) else first
    return (event_id or None), repeated == 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--redis', default='redis://127.0.0.1:6379')
    parser.add_argument('--key-prefix', default='rt:')
    parser.add_argument('--channel', required=True)
    parser.add_argument('--user', help='the user of a user channel (omit for a global channel)')
    parser.add_argument('--event', required=True)
    parser.add_argument('--data', required=True, help='a JSON object')
    parser.add_argument('--history', help='size,ttlSeconds,metaTtlSeconds as the gateway sets them')
    parser.add_argument('--idempotency-key')
    parser.add_argument('--window', type=int, default=300, help='idempotency window (s), as the gateway sets it')
    args = parser.parse_args()
    history = tuple(int(part) for part in args.history.split(',')) if args.history else None
    client = redis.Redis.from_url(args.redis)
    event_id, repeated = publish(client, args.key_prefix, args.channel, args.event, json.loads(args.data),
                                 user=args.user, history=history, idempotency_key=args.idempotency_key, window=args.window)
    if repeated:
        print('repeated', event_id or '')
    elif event_id is not None:
        print(event_id)
    return 0


if __name__ == '__main__':
    sys.exit(main())
