"""The async store in Redis (`server.async_store: redis://HOST:PORT/DB`): every replica
and worker process that shares the Redis answers for every prediction, and work
accepted by a replica that dies is run by another.

Keys, under `conduit:<name>:`:

    p:<id>        hash: status, meta (JSON), started_at, completed_at, answer, starts
    w:<id>        hash: the request's body (JSON bytes, or form fields and files) until it ran
    queue         list of ids waiting (bounded by server.async_max_queue)
    processing    list of ids some process holds
    lease:<id>    the holder's token (one per process), expiring LEASE_MS after its last renewal
    suspect:<id>  when a reaper first saw the id held with no lease
    ended         sorted set of ended ids by end time (the count bound evicts the oldest)

Taking work moves its id from `queue` to `processing` and sets its lease in one
script, so there is no moment when a held id has no lease. The holder renews it each
HEARTBEAT_S from the take on (while it waits for a slot too). Every process, as often,
puts back at the head of the queue every id in `processing` whose lease has been gone for
REAP_GRACE_MS (its holder died); the grace lets a holder that lives but could not renew
in time (Redis stalled, `CLIENT PAUSE`) take its lease back first.

Leases are fenced by their token: a process renews, starts, finishes or releases an id
only while it holds it — its token is in the lease, or the lease lapsed but the id is
still in `processing` (nobody reaped it, so nobody else can hold it). A holder that lost
its id to another process never starts it, and its late outcome changes nothing. START
counts the model's starts in the record: past server.async_max_attempts it answers
`exhausted`, and the holder ends the prediction `failed`. A status change is a script
too: an ended prediction never changes again, whoever asks.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from ..files import UploadedFile
from ..http.body import Body
from .store import (
    CANCELED,
    EXHAUSTED,
    HEARTBEAT_S,
    PROCESSING,
    REFUSED,
    STARTED,
    STARTING,
    Limits,
    Record,
    Store,
)

LEASE_MS = 5000  # a process silent this long is taken for dead and its work runs elsewhere
REAP_GRACE_MS = int(2 * HEARTBEAT_S * 1000)  # a lease gone this long (two renewals missed) is reaped
POLL_S = 0.1  # how often an idle process looks for work

# Whether process OWNER holds ID (see the module's doc), renewing its lease if so.
HOLDS = """
local function holds(prefix, id, owner, ms)
  local lease = prefix .. 'lease:' .. id
  local held = redis.call('GET', lease)
  if held == owner then
    redis.call('PEXPIRE', lease, ms)
    return true
  end
  if held == false and redis.call('LPOS', prefix .. 'processing', id) ~= false then
    redis.call('SET', lease, owner, 'PX', ms)
    redis.call('DEL', prefix .. 'suspect:' .. id)
    return true
  end
  return false
end
"""

SUBMIT = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'status', 'starting', 'meta', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[1], ARGV[4])
return 1
"""

TAKE = """
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if id then redis.call('SET', ARGV[1] .. 'lease:' .. id, ARGV[2], 'PX', ARGV[3]) end
return id
"""

# KEYS: p; ARGV: prefix, id, owner, lease ms, started_at, max attempts → 1 started, 0 refused, -1 exhausted
START = HOLDS + """
local s = redis.call('HGET', KEYS[1], 'status')
if s ~= 'starting' and s ~= 'processing' then return 0 end
if not holds(ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'starts') or '0') >= tonumber(ARGV[6]) then return -1 end
redis.call('HINCRBY', KEYS[1], 'starts', 1)
redis.call('HSET', KEYS[1], 'status', 'processing', 'started_at', ARGV[5])
return 1
"""

# ARGV: prefix, owner, lease ms, ids… → per id its status, or 'lost' when this process no longer holds it
RENEW = HOLDS + """
local out = {}
for i = 4, #ARGV do
  local s = redis.call('HGET', ARGV[1] .. 'p:' .. ARGV[i], 'status') or ''
  if not holds(ARGV[1], ARGV[i], ARGV[2], ARGV[3]) then s = 'lost' end
  out[#out + 1] = s
end
return out
"""

# KEYS: p, processing, lease, w, ended, queue
# ARGV: status, answer, completed_at, ttl, id, now, max, prefix, owner ('' for a cancel: whoever holds it), lease ms
FINISH = HOLDS + """
if ARGV[9] ~= '' and not holds(ARGV[8], ARGV[5], ARGV[9], ARGV[10]) then return 0 end
redis.call('LREM', KEYS[2], 0, ARGV[5])
redis.call('LREM', KEYS[6], 0, ARGV[5])
redis.call('DEL', KEYS[3], KEYS[4])
local s = redis.call('HGET', KEYS[1], 'status')
if s ~= 'starting' and s ~= 'processing' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'answer', ARGV[2], 'completed_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', tonumber(ARGV[6]) - tonumber(ARGV[4]))
local over = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[7])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[5], over)
  for i = 1, #old, 2 do redis.call('DEL', ARGV[8] .. 'p:' .. old[i]) end
end
return 1
"""

# KEYS: queue, processing; ARGV: prefix, grace ms
REAP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. id) == 0 then
    local suspect = ARGV[1] .. 'suspect:' .. id
    local seen = redis.call('GET', suspect)
    if not seen then
      redis.call('SET', suspect, now, 'PX', 4 * tonumber(ARGV[2]))
    elseif now - tonumber(seen) >= tonumber(ARGV[2]) then
      redis.call('DEL', suspect)
      if redis.call('HGET', ARGV[1] .. 'p:' .. id, 'status') == 'processing' then
        redis.call('HSET', ARGV[1] .. 'p:' .. id, 'status', 'starting')  -- to be started again
      end
      redis.call('LREM', KEYS[2], 1, id)
      redis.call('LPUSH', KEYS[1], id)
      n = n + 1
    end
  end
end
return n
"""

# KEYS: p, processing, lease, queue; ARGV: prefix, id, owner, lease ms.
# A graceful hand-over: a start that ends this way is not counted against the attempts
# ('processing' is always this holder's own start: a reaped prediction is 'starting' again).
RELEASE = HOLDS + """
if not holds(ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('LREM', KEYS[2], 0, ARGV[2])
redis.call('DEL', KEYS[3])
if redis.call('HGET', KEYS[1], 'status') == 'processing' then
  redis.call('HSET', KEYS[1], 'status', 'starting')
  redis.call('HINCRBY', KEYS[1], 'starts', -1)
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('LPUSH', KEYS[4], ARGV[2]) end
return 1
"""

STARTS = {1: STARTED, 0: REFUSED, -1: EXHAUSTED}


class RedisStore(Store):
    def __init__(self, url: str, name: str, limits: Limits) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.limits = limits
        self.prefix = f"conduit:{name}:"
        self.owner = uuid.uuid4().hex  # this process, in its leases
        self.queue, self.processing, self.ended = (self.prefix + k for k in ("queue", "processing", "ended"))
        self.scripts = {name: self.redis.register_script(text) for name, text in
                        (("submit", SUBMIT), ("take", TAKE), ("start", START), ("finish", FINISH),
                         ("renew", RENEW), ("reap", REAP), ("release", RELEASE))}
        self.reaped = 0.0

    def key(self, kind: str, id_: str) -> str:
        return f"{self.prefix}{kind}:{id_}"

    async def submit(self, record: Record, body: Body) -> bool:
        # Kept until it ran and then for its ttl: never longer than that, even if every replica is gone.
        keep_s = int(self.limits.timeout_s + self.limits.ttl_s) + 60
        pairs = await asyncio.to_thread(pack, body)
        done = await self.scripts["submit"](
            keys=[self.queue, self.key("p", record.id), self.key("w", record.id)],
            args=[self.limits.max_queue, json.dumps(record.meta), keep_s, record.id, *pairs],
        )
        return bool(done)

    async def get(self, id_: str) -> Record | None:
        return self.record(id_, await self.redis.hgetall(self.key("p", id_)))

    @staticmethod
    def record(id_: str, raw: dict[bytes, bytes]) -> Record | None:
        if not raw or b"meta" not in raw:
            return None
        return Record(id_, raw[b"status"].decode(), json.loads(raw[b"meta"]), raw.get(b"started_at", b"").decode(),
                      raw.get(b"completed_at", b"").decode(), raw.get(b"answer", b""))

    async def take(self) -> tuple[Record, Body] | None:
        if time.monotonic() - self.reaped > HEARTBEAT_S:
            self.reaped = time.monotonic()
            await self.scripts["reap"](keys=[self.queue, self.processing], args=[self.prefix, REAP_GRACE_MS])
        raw_id = await self.scripts["take"](keys=[self.queue, self.processing], args=[self.prefix, self.owner, LEASE_MS])
        if raw_id is None:
            await asyncio.sleep(POLL_S)
            return None
        id_ = raw_id.decode()
        raw, work = await asyncio.gather(self.redis.hgetall(self.key("p", id_)), self.redis.hgetall(self.key("w", id_)))
        record = self.record(id_, raw)
        if record is None or record.status not in (STARTING, PROCESSING) or not work:
            await self.end(id_, "", b"", "", self.owner)  # ended or gone meanwhile: let the work go
            return None
        return record, await asyncio.to_thread(unpack, work)

    async def start(self, id_: str, started_at: str) -> str:
        started = await self.scripts["start"](
            keys=[self.key("p", id_)],
            args=[self.prefix, id_, self.owner, LEASE_MS, started_at, self.limits.max_attempts])
        return STARTS[int(started)]

    async def finish(self, id_: str, status: str, answer: bytes, completed_at: str) -> bool:
        return await self.end(id_, status, answer, completed_at, self.owner)

    async def end(self, id_: str, status: str, answer: bytes, completed_at: str, owner: str) -> bool:
        """FINISH: by the holder (`owner`), or by anyone ('': a cancel)."""
        done = await self.scripts["finish"](
            keys=[self.key("p", id_), self.processing, self.key("lease", id_), self.key("w", id_), self.ended,
                  self.queue],
            args=[status, answer, completed_at, int(self.limits.ttl_s), id_, time.time(),
                  self.limits.max_results, self.prefix, owner, LEASE_MS],
        )
        return bool(done)

    async def cancel(self, id_: str, completed_at: str) -> Record | None:
        # The holder (if any) sees the status at its next heartbeat and stops the call.
        if await self.redis.exists(self.key("p", id_)):
            await self.end(id_, CANCELED, b"", completed_at, "")
        return await self.get(id_)

    async def heartbeat(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        answers = await self.scripts["renew"](keys=[], args=[self.prefix, self.owner, LEASE_MS, *ids])
        return {id_ for id_, status in zip(ids, answers, strict=True) if status.decode() not in (STARTING, PROCESSING)}

    async def release(self, ids: list[str]) -> None:
        for id_ in ids:
            await self.scripts["release"](
                keys=[self.key("p", id_), self.processing, self.key("lease", id_), self.queue],
                args=[self.prefix, id_, self.owner, LEASE_MS])

    async def close(self) -> None:
        await self.redis.aclose()


def pack(body: Body) -> list[bytes | str]:
    """A body as hash fields, for whichever process runs it (uploads read whole: they
    leave this process)."""
    files = []
    pairs: list[bytes | str] = []
    for i, upload in enumerate(body.files):
        upload.seek(0)
        pairs += [f"file:{i}", upload.read()]
        files.append([upload.name, upload.content_type])
    head = {"json": body.json is not None, "fields": body.fields, "files": files}
    pairs += ["head", json.dumps(head)]
    if body.json is not None:
        pairs += ["json", bytes(body.json)]
    return pairs


def unpack(work: dict[bytes, bytes]) -> Body:
    head: dict[str, Any] = json.loads(work[b"head"])
    files = [UploadedFile(io.BytesIO(work[f"file:{i}".encode()]), name, content_type)
             for i, (name, content_type) in enumerate(head["files"])]
    return Body(json=work.get(b"json", b"") if head["json"] else None, fields=head["fields"], files=files)
