"""The async store in Redis (`server.async_store: redis://HOST:PORT/DB`): every replica
and worker process that shares the Redis answers for every prediction, and work
accepted by a replica that dies is run by another.

Keys, under `conduit:<name>:`:

    p:<id>      hash: status, meta (JSON), started_at, completed_at, answer
    w:<id>      hash: the request's body (JSON bytes, or form fields and files) until it ran
    queue       list of ids waiting (bounded by server.async_max_queue)
    processing  list of ids some process holds
    lease:<id>  the holder's name, expiring LEASE_MS after its last heartbeat
    ended       sorted set of ended ids by end time (the count bound evicts the oldest)

Taking work moves its id from `queue` to `processing` and sets its lease in one
script, so there is no moment when a held id has no lease. Every process renews the
leases of what it runs each HEARTBEAT_S and, as often, puts back at the head of the
queue every id in `processing` whose lease expired (its holder died). A status change
is a script too: an ended prediction never changes again, whoever asks.
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
from .store import CANCELED, HEARTBEAT_S, PROCESSING, STARTING, Limits, Record, Store

LEASE_MS = 5000  # a process silent this long is taken for dead and its work runs elsewhere
POLL_S = 0.1  # how often an idle process looks for work

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

START = """
local s = redis.call('HGET', KEYS[1], 'status')
if s ~= 'starting' and s ~= 'processing' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'processing', 'started_at', ARGV[1])
return 1
"""

# KEYS: p, processing, lease, w, ended, queue; ARGV: status, answer, completed_at, ttl, id, now, max, prefix
FINISH = """
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

REAP = """
local n = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. id) == 0 then
    redis.call('LREM', KEYS[2], 1, id)
    redis.call('LPUSH', KEYS[1], id)
    n = n + 1
  end
end
return n
"""

# KEYS: p, processing, lease, queue; ARGV: id
RELEASE = """
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('HGET', KEYS[1], 'status') == 'processing' then
  redis.call('HSET', KEYS[1], 'status', 'starting')
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('LPUSH', KEYS[4], ARGV[1]) end
return 1
"""


class RedisStore(Store):
    def __init__(self, url: str, name: str, limits: Limits) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.limits = limits
        self.prefix = f"conduit:{name}:"
        self.owner = uuid.uuid4().hex  # this process, in its leases
        self.queue, self.processing, self.ended = (self.prefix + k for k in ("queue", "processing", "ended"))
        self.scripts = {name: self.redis.register_script(text) for name, text in
                        (("submit", SUBMIT), ("take", TAKE), ("start", START), ("finish", FINISH),
                         ("reap", REAP), ("release", RELEASE))}
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
            await self.scripts["reap"](keys=[self.queue, self.processing], args=[self.prefix])
        raw_id = await self.scripts["take"](keys=[self.queue, self.processing], args=[self.prefix, self.owner, LEASE_MS])
        if raw_id is None:
            await asyncio.sleep(POLL_S)
            return None
        id_ = raw_id.decode()
        raw, work = await asyncio.gather(self.redis.hgetall(self.key("p", id_)), self.redis.hgetall(self.key("w", id_)))
        record = self.record(id_, raw)
        if record is None or record.status not in (STARTING, PROCESSING) or not work:
            await self.finish(id_, "", b"", "")  # ended or gone meanwhile: let the work go
            return None
        return record, await asyncio.to_thread(unpack, work)

    async def start(self, id_: str, started_at: str) -> bool:
        return bool(await self.scripts["start"](keys=[self.key("p", id_)], args=[started_at]))

    async def finish(self, id_: str, status: str, answer: bytes, completed_at: str) -> bool:
        done = await self.scripts["finish"](
            keys=[self.key("p", id_), self.processing, self.key("lease", id_), self.key("w", id_), self.ended,
                  self.queue],
            args=[status, answer, completed_at, int(self.limits.ttl_s), id_, time.time(),
                  self.limits.max_results, self.prefix],
        )
        return bool(done)

    async def cancel(self, id_: str, completed_at: str) -> Record | None:
        # The holder (if any) sees the status at its next heartbeat and stops the call.
        if await self.redis.exists(self.key("p", id_)):
            await self.finish(id_, CANCELED, b"", completed_at)
        return await self.get(id_)

    async def heartbeat(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for id_ in ids:
                pipe.set(self.key("lease", id_), self.owner, px=LEASE_MS, xx=True)
                pipe.hget(self.key("p", id_), "status")
            answers = await pipe.execute()
        return {id_ for id_, status in zip(ids, answers[1::2], strict=True)
                if status is None or status.decode() not in (STARTING, PROCESSING)}

    async def release(self, ids: list[str]) -> None:
        for id_ in ids:
            await self.scripts["release"](
                keys=[self.key("p", id_), self.processing, self.key("lease", id_), self.queue], args=[id_])

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
