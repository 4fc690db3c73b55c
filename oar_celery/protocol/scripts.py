"""Every Lua script the project runs on Redis, kept together.

Each one does in a single round trip what would otherwise take several,
and atomically: a node's report batch with its message and cycle task, a
cycle's start and end. Read them side by side: they share keys (``QUEUED``,
``PENDING``, the head's queue) and their interplay is Almighty's protocol.
"""

from __future__ import annotations

#: Push the cycle task (ARGV[1]) unless one is on its way (``QUEUED`` set for ARGV[2] seconds).
#: A ``QUEUED`` that would outlive ARGV[2] was not set by this protocol (a node may set it: its
#: broker role allows this script's ``SET``): it is dropped, so that no one can stall Almighty.
_CYCLE_UNLESS_QUEUED = """
local left = redis.call('ttl', KEYS[2])
if left == -1 or left > tonumber(ARGV[2]) then redis.call('del', KEYS[2]) end
if redis.call('set', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('lpush', KEYS[3], ARGV[1])
  return 1
end
return 0
"""

#: Add the messages (ARGV[3:]), then the cycle task: one round trip for both.
#: KEYS: pending, queued, head queue.
NOTIFY = "redis.call('sadd', KEYS[1], unpack(ARGV, 3))" + _CYCLE_UNLESS_QUEUED

#: Queue a report batch (ARGV[3]) too, in the same round trip; ARGV[4:] are the messages.
#: KEYS: pending, queued, head queue, queued reports.
QUEUE_REPORTS = (
    "redis.call('rpush', KEYS[4], ARGV[3])\nredis.call('sadd', KEYS[1], unpack(ARGV, 4))" + _CYCLE_UNLESS_QUEUED
)

#: Start a cycle: take the lock (or find it ours, just taken over; else nil), renew ``QUEUED``
#: if asked, take the pending messages. KEYS: lock, pending, last scheduler run, queued;
#: ARGV: token, lock TTL (ms), QUEUED's TTL (s, 0: leave it).
BEGIN_CYCLE = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and redis.call('get', KEYS[1]) ~= ARGV[1] then
  return false
end
if tonumber(ARGV[3]) > 0 then redis.call('set', KEYS[4], '1', 'EX', ARGV[3]) end
local messages = redis.call('smembers', KEYS[2])
redis.call('del', KEYS[2])
return {messages, redis.call('get', KEYS[3]) or ''}
"""

#: End a cycle: record it, count its durations in the histograms, release the lock if still ours, count
#: what is pending. KEYS: cycles, lock, pending, durations; ARGV: record, last index kept, token, then
#: triples (histogram name, bucket label, seconds).
END_CYCLE = """
redis.call('lpush', KEYS[1], ARGV[1])
redis.call('ltrim', KEYS[1], 0, ARGV[2])
for i = 4, #ARGV, 3 do
  redis.call('hincrby', KEYS[4], ARGV[i] .. '|' .. ARGV[i + 1], 1)
  redis.call('hincrbyfloat', KEYS[4], ARGV[i] .. '|sum', ARGV[i + 2])
end
if redis.call('get', KEYS[2]) == ARGV[3] then redis.call('del', KEYS[2]) end
return redis.call('scard', KEYS[3])
"""

#: Replace a dead holder's lock token by ours. KEYS: lock; ARGV: dead token, ours, TTL (ms).
TAKE_OVER = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
"""

#: Claim the nonces of a batch of signed reports: 1 for each key set now, 0 for one seen before (a replay).
#: One command for the whole batch, where a pipeline of SET NX costs the head a command to encode per report.
#: KEYS: the ``oar:seen:<signer>:<nonce>`` keys; ARGV: their TTL (s).
CLAIM_NONCES = """
local fresh = {}
for i, key in ipairs(KEYS) do
  if redis.call('set', key, '1', 'NX', 'EX', ARGV[1]) then fresh[i] = 1 else fresh[i] = 0 end
end
return fresh
"""
