"""The distributed state store: request records, their indexes and the filing ledger in Redis.

Key layout; every name carries ``key_prefix`` in front (empty by default, so the runbook's
``request:<id>`` is the literal key):

- ``request:<id>`` hash: ``state`` (RequestState JSON), ``report`` (BugReport JSON; absent
  on a request rebuilt from the log until ``put_report``), ``status``, ``rank``, ``seq``
  (write counter: the compare-and-set version), ``idempotency_key`` when there is one,
  ``submitter`` (the scope of its id, ``domain.submissions``; with the report), and
  ``writer`` (token of the last write, so a write resent after a lost reply knows it landed).
- ``submission:<scope>:id:<bug_report_id>`` and ``submission:<scope>:key:<idempotency key>``
  hashes (the lookups): ``request`` (its id), ``fingerprint`` (of the report) and
  ``status`` (the request's last known, to answer a resubmission once the record expired).
  They never expire while the request is in flight (held for review for weeks, say); each
  write of an ended request sets them to expire ``lookup_ttl_seconds`` later (30 days): a
  resubmission is recognised long after the record itself is gone.
- ``index:submitted|processing|completed|failed``, ``index:active`` (submitted and
  processing) and ``index:all`` sorted sets: request ids scored by created_at (epoch ms).
- ``index:active-updated``: active request ids scored by updated_at (ms), for ``stuck``;
  a request held for review (``RequestState.held_for_review``) is left out: it waits for a
  person, and no timeout may fail it.
- ``index:held``: the ids of requests held for review, scored by created_at (ms): the review
  queue (``list_held``). Kept by the same write script as the request, so it always agrees
  with the stored state.
- ``index:expiry``: terminal request ids scored by when their key expires (ms); expired ids
  are purged from the index sets before anything is counted.
- ``stats:processing-seconds`` (``<id>:<seconds>`` of completed requests),
  ``stats:step-seconds:<step>`` (``<id>:<seconds>``) and ``stats:step-failures:<step>``
  (``<id>``): sorted sets scored by created_at, written when a request ends.
- ``filing:<id>`` hash: ``state`` and, once filed, ``issue`` (FiledIssue JSON); while
  pending, its lease (``owner``, ``lease_until``) and times (``attempted_at``,
  ``pending_since``), in ms of Redis's clock.
- ``heartbeats`` hash: each agent process's heartbeat (``<agent>|<instance>`` → JSON), and
  ``heartbeats:expiry``: those fields scored by when they expire (ms, Redis's clock).
- ``review-examples`` hash: maintainers' corrections kept as labelled examples, field the
  request id, value the example (JSON); ``review-examples:order`` list: those request ids in
  the order first stored (a replaced example keeps its place). Never expire.
- ``daily:<YYYY-MM-DD>`` hash: the daily report's counters (``ai_pipeline.reporting``),
  incremented by every process, kept ``DAILY_TTL_SECONDS`` after the last increment.

A request's key expires ``terminal_ttl_seconds`` after it ends; its lookups later.
Standalone Redis (optionally replicated), not Redis Cluster: the scripts update a request
and the shared index sets together, and resolve mapping keys to request keys inside Lua.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ai_pipeline.adapters.redis_client import connection_pool, unavailable
from ai_pipeline.domain.errors import TransientError
from ai_pipeline.domain.events import AGENT_STEPS, StepStatus
from ai_pipeline.domain.liveness import Heartbeat
from ai_pipeline.domain.models import BugReport, FiledIssue
from ai_pipeline.domain.request_state import (
    ACTIVE,
    RequestState,
    RequestStatus,
    StateEvent,
    fold,
)
from ai_pipeline.domain.submissions import (
    OPEN_SCOPE,
    IdConflict,
    LookupKind,
    canonical_json,
    digest,
    lookups,
    remembered,
)
from ai_pipeline.ports import (
    Bus,
    FilingClaim,
    FilingRecord,
    OutgoingMessage,
    Page,
    RequestStats,
)

# The lookups, as globs under the key prefix: an emergency flush spares them, since the log
# holds a week (AI_PIPELINE_BUS_RETENTION_SECONDS) and they must answer for 30 days.
LOOKUP_NAMES = ("submission:*",)
# A health probe must answer within its own deadline, not after the retry budget.
PING_TIMEOUT = 2.0
# Each conflict means another write to the same request won, so this only runs out
# under a pile-up of writers on one request; the runner then retries the message.
CAS_ATTEMPTS = 64
# Bounded so a backlog of expired ids never blocks Redis for long in one script.
PURGE_BATCH = 1000
REPORT_CHUNK = 1000
SAMPLE_AGE_MS = 31 * 86_400_000
# The protocol's default sample limit: older samples could never be returned.
SAMPLE_CAP = 100_000
# Daily counters outlive a year of comparisons.
DAILY_TTL_SECONDS = 400 * 86400

# Shared by the scripts that write a request: the key prefix and request id, Redis's clock.
_BASE = """
local prefix, id = ARGV[1], ARGV[2]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A lookup that is free or already ours. One held by another request stays its own, even
-- once that request's record expired: lookups outlive records on purpose.
local function claimable(key)
  local owner = redis.call('HGET', key, 'request')
  return not owner or owner == id
end
-- A lookup lives as long as its request is in flight, then its own lifetime (ttl, ms).
local function keep(key, in_flight, ttl)
  if in_flight then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ttl) end
end
"""

# KEYS: request, index:submitted/processing/completed/failed (2-5), index:active (6),
#   index:all (7), index:active-updated (8), index:expiry (9), index:held (10), ARGV[9]
#   lookup keys from KEYS[11], then the stats sets this write adds a sample to.
# ARGV: prefix, id, state, status, rank, created ms, updated ms, expiry ms ('' while
#   active), lookup count, writer token, held for review ('1' or ''), lookup lifetime ms,
#   the script's own arguments from ARGV[13] (OWN), then one member per stats set, counted
#   from the end.
_WRITE = (
    _BASE
    + f"local SAMPLE_AGE_MS, SAMPLE_CAP = {SAMPLE_AGE_MS}, {SAMPLE_CAP}\n"
    + """
local STATUS_KEY = {submitted = 2, processing = 3, completed = 4, failed = 5}
local ACTIVE, ALL, ACTIVE_UPDATED, EXPIRY, HELD = 6, 7, 8, 9, 10
local FIRST_MAPPING, OWN = 11, 13
local state, status, rank = ARGV[3], ARGV[4], ARGV[5]
local created, updated, expire_at = ARGV[6], ARGV[7], ARGV[8]
local writer, held, lookup_ttl = ARGV[10], ARGV[11] == '1', ARGV[12]
local first_stat = FIRST_MAPPING + tonumber(ARGV[9])
local nstats = #KEYS - first_stat + 1

local function record_samples(now)
  for i = 0, nstats - 1 do
    local key = KEYS[first_stat + i]
    redis.call('ZADD', key, created, ARGV[#ARGV - nstats + 1 + i])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - SAMPLE_AGE_MS))
    redis.call('ZREMRANGEBYRANK', key, 0, -SAMPLE_CAP - 1)
  end
end

local function write(fields)
  local now = now_ms()
  record_samples(now)
  if expire_at ~= '' and tonumber(expire_at) <= now then
    -- Ended longer than the TTL ago (a rebuild from an old log): only its samples stay.
    redis.call('DEL', KEYS[1])
    for k = 2, HELD do redis.call('ZREM', KEYS[k], id) end
    return
  end
  redis.call('HSET', KEYS[1], 'state', state, 'status', status, 'rank', rank,
    'writer', writer, unpack(fields))
  redis.call('HINCRBY', KEYS[1], 'seq', 1)
  -- Its lookups: kept while it is in flight, then from its last change, whatever the
  -- record's own lifetime.
  for k = FIRST_MAPPING, first_stat - 1 do
    if redis.call('HGET', KEYS[k], 'request') == id then
      redis.call('HSET', KEYS[k], 'status', status)
      keep(KEYS[k], expire_at == '', lookup_ttl)
    end
  end
  for name, k in pairs(STATUS_KEY) do
    if name == status then
      redis.call('ZADD', KEYS[k], created, id)
    else
      redis.call('ZREM', KEYS[k], id)
    end
  end
  redis.call('ZADD', KEYS[ALL], created, id)
  if expire_at == '' then
    if redis.call('ZREM', KEYS[EXPIRY], id) == 1 then
      -- Ended once, and reopened (a redrive): it lives again until it ends again (its
      -- lookups, kept above, too).
      redis.call('PERSIST', KEYS[1])
    end
    redis.call('ZADD', KEYS[ACTIVE], created, id)
    if held then
      -- Waits for a person: in the review queue, and out of stuck's reach.
      redis.call('ZADD', KEYS[HELD], created, id)
      redis.call('ZREM', KEYS[ACTIVE_UPDATED], id)
    else
      redis.call('ZREM', KEYS[HELD], id)
      redis.call('ZADD', KEYS[ACTIVE_UPDATED], updated, id)
    end
    return
  end
  redis.call('ZREM', KEYS[ACTIVE], id)
  redis.call('ZREM', KEYS[ACTIVE_UPDATED], id)
  redis.call('ZREM', KEYS[HELD], id)
  redis.call('ZADD', KEYS[EXPIRY], expire_at, id)
  redis.call('PEXPIREAT', KEYS[1], expire_at)
end
"""
)

# Own arguments: report JSON, idempotency key or '', submitter scope, report fingerprint.
# Returns, for the first lookup already held: {'conflict', lookup index, request id} when it
# was for another report, else {'state', state JSON} of its request, or {'gone', request id,
# last status} once that record expired; nil once this request is written.
CREATE_SCRIPT = (
    _WRITE
    + """
local fp = ARGV[OWN + 3]
for k = FIRST_MAPPING, first_stat - 1 do
  local owner = redis.call('HGET', KEYS[k], 'request')
  if owner then
    if owner ~= id and redis.call('HGET', KEYS[k], 'fingerprint') ~= fp then
      return {'conflict', k - FIRST_MAPPING, owner}
    end
    local stored = redis.call('HGET', prefix .. 'request:' .. owner, 'state')
    if stored then return {'state', stored} end
    return {'gone', owner, redis.call('HGET', KEYS[k], 'status') or ''}
  end
end
for k = FIRST_MAPPING, first_stat - 1 do
  redis.call('HSET', KEYS[k], 'request', id, 'fingerprint', fp)
end
local fields = {'report', ARGV[OWN], 'submitter', ARGV[OWN + 2]}
if ARGV[OWN + 1] ~= '' then fields[5], fields[6] = 'idempotency_key', ARGV[OWN + 1] end
write(fields)
return false
"""
)

# Own argument: the seq the state was read at ('' for none). 1 written, 0 a conflict.
APPLY_SCRIPT = (
    _WRITE
    + """
local seq = redis.call('HGET', KEYS[1], 'seq')
if (seq or '') ~= ARGV[OWN] then
  -- The client resent this call after a lost reply, and the first attempt had landed.
  if seq and redis.call('HGET', KEYS[1], 'writer') == writer then return 1 end
  return 0
end
write({})
return 1
"""
)

# KEYS: request, lookup keys. ARGV: prefix, id, report, idempotency key or '', writer
# token, submitter scope, report fingerprint, lookup lifetime ms. 1 when the report was
# written.
PUT_REPORT_SCRIPT = (
    _BASE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'report') == 1 then
  return redis.call('HGET', KEYS[1], 'writer') == ARGV[5] and 1 or 0
end
redis.call('HSET', KEYS[1], 'report', ARGV[3], 'writer', ARGV[5], 'submitter', ARGV[6])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'idempotency_key', ARGV[4]) end
redis.call('HINCRBY', KEYS[1], 'seq', 1)
local status = redis.call('HGET', KEYS[1], 'status')
-- An ended request's record expires; one in flight has none.
local in_flight = redis.call('PTTL', KEYS[1]) == -1
for k = 2, #KEYS do
  if claimable(KEYS[k]) then
    redis.call('HSET', KEYS[k], 'request', id, 'fingerprint', ARGV[7], 'status', status)
    keep(KEYS[k], in_flight, ARGV[8])
  end
end
return 1
"""
)

# Only onto a request that exists: a request that expired (or was flushed) while its report
# was being triaged must not come back as a hash holding nothing but an embedding.
PUT_EMBEDDING_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'embedding', ARGV[1])
end
"""

# KEYS: review-examples, review-examples:order. ARGV: request id, example JSON. A new
# request id goes to the end of the order; a known one has its example replaced in place.
PUT_REVIEW_EXAMPLE_SCRIPT = """
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
"""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(n) return string.format('%.0f', n) end
"""

# KEYS: filing:<id>. ARGV: owner, lease ms, '1' when a create call starts, the key's TTL ms.
# Returns granted (1/0), Redis's now (ms), then the entry as it was (field, value, …).
CLAIM_FILING_SCRIPT = (
    _NOW
    + """
local before = redis.call('HGETALL', KEYS[1])
local f = {}
for i = 1, #before, 2 do f[before[i]] = before[i + 1] end
local held = f.owner and f.owner ~= ARGV[1] and tonumber(f.lease_until or '0') > now
if f.state == 'filed' or held then return {0, ms(now), unpack(before)} end
redis.call('HSET', KEYS[1], 'state', 'pending', 'owner', ARGV[1],
  'lease_until', ms(now + tonumber(ARGV[2])), 'pending_since', f.pending_since or ms(now))
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'attempted_at', ms(now)) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, ms(now), unpack(before)}
"""
)

# KEYS: heartbeats, heartbeats:expiry. ARGV: TTL ms, then field and beat JSON pairs.
# Expired beats go as new ones come.
PUT_HEARTBEATS_SCRIPT = (
    _NOW
    + """
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], ms(now + tonumber(ARGV[1])), ARGV[i])
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ms(now))
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
"""
)

# KEYS: heartbeats, heartbeats:expiry. The live beats' JSON.
HEARTBEATS_SCRIPT = (
    _NOW
    + """
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ms(now), '+inf')
if #live == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(live))
"""
)

# KEYS: index:expiry, then the sets a terminal request is in. ARGV: batch size.
# Redis's own clock decides, the one that expires the keys. Returns how many went.
PURGE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
if #gone > 0 then
  for k = 1, #KEYS do redis.call('ZREM', KEYS[k], unpack(gone)) end
end
return #gone
"""


class RedisStateStore:
    """The ``StateStore`` on Redis; see the module docstring for the key layout.

    Every operation retries connection errors and timeouts for about 30 s, then raises
    ``UnavailableError``. The hiredis parser is used, being installed. Writes are
    Lua scripts, so each request's record and indexes change together; ``apply`` folds in
    Python and writes with a compare-and-set on ``seq``.
    """

    publishes_outbox_atomically = False

    def __init__(
        self,
        url: str,
        *,
        bus: Bus,
        terminal_ttl_seconds: float = 86400,
        filing_ttl_seconds: float = 7 * 86400,
        lookup_ttl_seconds: float = 30 * 86400,
        key_prefix: str = "",
    ):
        self.url = url
        self._bus = bus
        self._terminal_ttl_ms = round(terminal_ttl_seconds * 1000)
        self._lookup_ttl_ms = round(lookup_ttl_seconds * 1000)
        self._filing_ttl_ms = round(filing_ttl_seconds * 1000)
        self._prefix = key_prefix
        self.operations: Counter[str] = Counter()
        # With decode_responses every reply is str, which the casts below state to the
        # type checker (see redis_client.connection_pool).
        self._pool = connection_pool(url)
        self._redis = Redis(connection_pool=self._pool)
        self._probe = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=PING_TIMEOUT,
            socket_connect_timeout=PING_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._create = self._redis.register_script(CREATE_SCRIPT)
        self._apply = self._redis.register_script(APPLY_SCRIPT)
        self._put_report = self._redis.register_script(PUT_REPORT_SCRIPT)
        self._purge = self._redis.register_script(PURGE_SCRIPT)
        self._put_embedding = self._redis.register_script(PUT_EMBEDDING_SCRIPT)
        self._put_review_example = self._redis.register_script(PUT_REVIEW_EXAMPLE_SCRIPT)
        self._claim_filing = self._redis.register_script(CLAIM_FILING_SCRIPT)
        self._put_heartbeats = self._redis.register_script(PUT_HEARTBEATS_SCRIPT)
        self._heartbeats = self._redis.register_script(HEARTBEATS_SCRIPT)
        self._heartbeat_keys = [self._key("heartbeats"), self._key("heartbeats", "expiry")]
        self._index = {s: self._key("index", s) for s in RequestStatus}
        self._active = self._key("index", "active")
        self._all = self._key("index", "all")
        self._active_updated = self._key("index", "active-updated")
        self._expiry = self._key("index", "expiry")
        self._held = self._key("index", "held")
        # The order the write scripts' KEYS[2..10] expect.
        self._index_keys = [
            *(self._index[s] for s in RequestStatus),
            self._active,
            self._all,
            self._active_updated,
            self._expiry,
            self._held,
        ]
        self._review_examples = self._key("review-examples")
        self._review_order = self._key("review-examples", "order")
        self._processing_samples = self._key("stats", "processing-seconds")

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    @unavailable
    async def start(self) -> None:
        await self._redis.ping()
        for script in (
            self._create,
            self._apply,
            self._put_report,
            self._purge,
            self._put_review_example,
            self._claim_filing,
            self._put_heartbeats,
            self._heartbeats,
        ):
            await self._redis.script_load(script.script)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()
        await self._probe.aclose()

    @unavailable
    async def create_request(
        self,
        state: RequestState,
        report: BugReport,
        idempotency_key: str | None,
        outbox: Sequence[OutgoingMessage] = (),
        submitter: str = OPEN_SCOPE,
    ) -> tuple[RequestState, bool]:
        self.operations["redis|create_request"] += 1
        wanted = lookups(report, idempotency_key)
        report_json = canonical_json(report)
        keys, args = self._write(
            state,
            self._lookup_keys(submitter, wanted),
            [report_json, idempotency_key or "", submitter, digest(report_json)],
        )
        known = cast(list[Any] | None, await self._create(keys=keys, args=args))
        if known is not None:
            tag, *rest = known
            if tag == "conflict":
                kind, value = wanted[int(rest[0])]
                raise IdConflict(kind, value, str(rest[1]))
            existing = (
                RequestState.model_validate_json(rest[0])
                if tag == "state"
                else remembered(str(rest[0]), report.id, str(rest[1]))
            )
            # Our own request means a resent call whose first attempt had created it.
            if existing.request_id != state.request_id:
                return existing, False
        if outbox:
            await self._bus.publish(outbox)
        return state, True

    @unavailable
    async def get(self, request_id: str) -> RequestState | None:
        self.operations["redis|get"] += 1
        raw = await self._redis.hget(self._key("request", request_id), "state")
        return None if raw is None else RequestState.model_validate_json(raw)

    @unavailable
    async def get_report(self, request_id: str) -> BugReport | None:
        self.operations["redis|get_report"] += 1
        raw = await self._redis.hget(self._key("request", request_id), "report")
        return None if raw is None else BugReport.model_validate_json(raw)

    @unavailable
    async def put_report(
        self,
        request_id: str,
        report: BugReport,
        idempotency_key: str | None,
        submitter: str = OPEN_SCOPE,
    ) -> bool:
        """Give a request rebuilt from the log its report (and the report's lookups, unless
        another request holds them) unless it is unknown or already has one; whether it
        wrote."""
        self.operations["redis|put_report"] += 1
        lookup_keys = self._lookup_keys(submitter, lookups(report, idempotency_key))
        report_json = canonical_json(report)
        written = await self._put_report(
            keys=[self._key("request", request_id), *lookup_keys],
            args=[
                self._prefix,
                request_id,
                report_json,
                idempotency_key or "",
                uuid.uuid4().hex,
                submitter,
                digest(report_json),
                self._lookup_ttl_ms,
            ],
        )
        return bool(written)

    async def expire_lookups(self) -> int:
        return 0  # Redis expires them itself (see the module docstring)

    @unavailable
    async def apply(self, event: StateEvent) -> RequestState | None:
        self.operations["redis|apply"] += 1
        key = self._key("request", event.request_id)
        for _ in range(CAS_ATTEMPTS):
            raw, seq, idempotency_key, submitter = cast(
                list[str | None],
                await self._redis.hmget(key, ["state", "seq", "idempotency_key", "submitter"]),
            )
            new = fold(None if raw is None else RequestState.model_validate_json(raw), event)
            if new is None:
                return None
            # A request rebuilt from the log has no scope until its report is put back: its
            # lookups are then ``put_report``'s to restore.
            wanted: list[tuple[LookupKind, str]] = []
            if submitter is not None:
                wanted = [("id", new.bug_report_id)]
                if idempotency_key is not None:
                    wanted.append(("key", idempotency_key))
            keys, args = self._write(new, self._lookup_keys(submitter or "", wanted), [seq or ""])
            if await self._apply(keys=keys, args=args):
                return new
            self.operations["redis|apply_conflict"] += 1
        raise TransientError(f"request {event.request_id}: {CAS_ATTEMPTS} write conflicts")

    def _lookup_keys(self, scope: str, wanted: Sequence[tuple[LookupKind, str]]) -> list[str]:
        return [self._key("submission", scope, kind, value) for kind, value in wanted]

    def _write(
        self, state: RequestState, mappings: list[str], own: list[str]
    ) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of a write script writing ``state``; ``own``: the script's own."""
        samples = self._samples(state)
        expire_at: str | int = ""
        if state.status.terminal:
            expire_at = _ms(state.completed_at or state.updated_at) + self._terminal_ttl_ms
        keys = [
            self._key("request", state.request_id),
            *self._index_keys,
            *mappings,
            *(key for key, _ in samples),
        ]
        args: list[str | int] = [
            self._prefix,
            state.request_id,
            state.model_dump_json(),
            state.status.value,
            state.rank,
            _ms(state.created_at),
            _ms(state.updated_at),
            expire_at,
            len(mappings),
            uuid.uuid4().hex,
            "1" if state.held_for_review else "",
            self._lookup_ttl_ms,
            *own,
            *(member for _, member in samples),
        ]
        return keys, args

    def _samples(self, state: RequestState) -> list[tuple[str, str]]:
        """The stats entries (sorted set, member) of a request that has ended.

        The request id in each member makes a replayed end (a rebuild) add nothing twice.
        """
        if not state.status.terminal:
            return []
        rid = state.request_id
        samples = []
        seconds = state.processing_time_seconds
        if state.status is RequestStatus.COMPLETED and seconds is not None:
            samples.append((self._processing_samples, f"{rid}:{seconds!r}"))
        for step in AGENT_STEPS:
            progress = state.progress.get(step)
            if progress is None:
                continue
            if progress.status is StepStatus.COMPLETED and progress.duration_seconds is not None:
                samples.append(
                    (
                        self._key("stats", "step-seconds", step),
                        f"{rid}:{progress.duration_seconds!r}",
                    )
                )
            elif progress.status is StepStatus.FAILED:
                samples.append((self._key("stats", "step-failures", step), rid))
        return samples

    async def _purge_expired(self) -> None:
        """Drop ids of expired requests from the index sets, so counts are exact."""
        keys = [self._expiry, *(self._index[s] for s in RequestStatus if s.terminal), self._all]
        while await self._purge(keys=keys, args=[PURGE_BATCH]) == PURGE_BATCH:
            pass

    def _view(self, statuses: Sequence[RequestStatus]) -> str:
        wanted = frozenset(statuses)
        if len(wanted) == 1:
            return self._index[RequestStatus(next(iter(wanted)))]
        if wanted == frozenset(ACTIVE):
            return self._active
        if wanted == frozenset(RequestStatus):
            return self._all
        raise ValueError(
            f"no index for statuses {sorted(map(str, wanted))}: one, the active ones, or all"
        )

    async def _states(self, request_ids: Sequence[str]) -> list[RequestState]:
        """States in the order of ``request_ids``, skipping requests expired meanwhile."""
        pipe = self._redis.pipeline(transaction=False)
        for rid in request_ids:
            pipe.hget(self._key("request", rid), "state")
        return [RequestState.model_validate_json(raw) for raw in await pipe.execute() if raw]

    @unavailable
    async def list_requests(
        self, statuses: Sequence[RequestStatus], limit: int, offset: int
    ) -> Page:
        """Newest created first. Scores are created_at in ms and ties go by request id
        descending (Redis's reverse order); with time-ordered UUIDv7 ids that is newest
        first too, as the SQLite store's microsecond created_at orders them."""
        self.operations["redis|list_requests"] += 1
        view = self._view(statuses)
        await self._purge_expired()
        pipe = self._redis.pipeline(transaction=True)
        pipe.zcard(view)
        if limit > 0:
            pipe.zrevrange(view, offset, offset + limit - 1)
        total, *page = await pipe.execute()
        return Page(await self._states(page[0] if page else []), int(total))

    @unavailable
    async def stuck(self, older_than: datetime, limit: int) -> list[RequestState]:
        self.operations["redis|stuck"] += 1
        request_ids = cast(
            list[str],
            await self._redis.zrangebyscore(
                self._active_updated, "-inf", f"({_ms(older_than)}", start=0, num=limit
            ),
        )
        # Checked again on the state itself: an apply may have moved it since. Held
        # requests are never in index:active-updated.
        return [
            s
            for s in await self._states(request_ids)
            if not s.status.terminal and s.updated_at < older_than and not s.held_for_review
        ]

    @unavailable
    async def list_held(self, limit: int, offset: int) -> Page:
        """Oldest created first; ties in created_at (ms) go by request id ascending."""
        self.operations["redis|list_held"] += 1
        pipe = self._redis.pipeline(transaction=True)
        pipe.zcard(self._held)
        if limit > 0:
            pipe.zrange(self._held, offset, offset + limit - 1)
        total, *page = await pipe.execute()
        # A request released between the two reads is left out of this page.
        states = await self._states(page[0] if page else [])
        return Page([s for s in states if s.held_for_review], int(total))

    @unavailable
    async def put_review_example(self, request_id: str, example: Mapping[str, Any]) -> None:
        """A later example for the same request replaces the stored one in its place."""
        self.operations["redis|put_review_example"] += 1
        await self._put_review_example(
            keys=[self._review_examples, self._review_order],
            args=[request_id, json.dumps(dict(example))],
        )

    @unavailable
    async def review_examples(self) -> list[dict[str, Any]]:
        self.operations["redis|review_examples"] += 1
        pipe = self._redis.pipeline(transaction=True)
        pipe.lrange(self._review_order, 0, -1)
        pipe.hgetall(self._review_examples)
        order, examples = cast(tuple[list[str], dict[str, str]], await pipe.execute())
        return [json.loads(examples[rid]) for rid in order if rid in examples]

    @unavailable
    async def recent_reports(self, limit: int) -> list[tuple[RequestState, BugReport]]:
        self.operations["redis|recent_reports"] += 1
        found: list[tuple[RequestState, BugReport]] = []
        seen: set[str] = set()
        start = 0
        while len(found) < limit:
            request_ids = cast(
                list[str], await self._redis.zrevrange(self._all, start, start + REPORT_CHUNK - 1)
            )
            if not request_ids:
                break
            start += REPORT_CHUNK
            pipe = self._redis.pipeline(transaction=False)
            for rid in request_ids:
                pipe.hmget(self._key("request", rid), ["state", "report"])
            for rid, (state, report) in zip(request_ids, await pipe.execute(), strict=True):
                # New requests shift ranks between chunks: one may come round twice.
                if state and report and rid not in seen:
                    seen.add(rid)
                    found.append(
                        (
                            RequestState.model_validate_json(state),
                            BugReport.model_validate_json(report),
                        )
                    )
        return found[:limit]

    @unavailable
    async def put_embedding(self, request_id: str, vector: bytes) -> None:
        self.operations["redis|put_embedding"] += 1
        # Base64: every reply of this client is decoded as text (decode_responses).
        encoded = base64.b64encode(vector).decode("ascii")
        await self._put_embedding(keys=[self._key("request", request_id)], args=[encoded])

    @unavailable
    async def embeddings(self, request_ids: Sequence[str]) -> dict[str, bytes]:
        self.operations["redis|embeddings"] += 1
        found: dict[str, bytes] = {}
        ids = list(request_ids)
        for start in range(0, len(ids), REPORT_CHUNK):
            pipe = self._redis.pipeline(transaction=False)
            chunk = ids[start : start + REPORT_CHUNK]
            for rid in chunk:
                pipe.hget(self._key("request", rid), "embedding")
            for rid, vector in zip(chunk, await pipe.execute(), strict=True):
                if vector:
                    found[rid] = base64.b64decode(vector)
        return found

    @unavailable
    async def stats(
        self, since: datetime, sample_limit: int = 100_000, with_steps: bool = True
    ) -> RequestStats:
        """Counts of requests created since ``since``, from the index sets; samples from the
        stats sets, newest first.

        The index sets hold a terminal request until its key expires, no sooner than
        ``created_at + terminal_ttl``: counts are exact for periods up to the TTL, and for
        longer ones cover only the requests Redis still holds. Processing times and step
        figures are recorded when a request ends and kept 31 days (at most ``SAMPLE_CAP``
        per set), so they cover 30-day periods; a step finished by a request still in
        flight shows once the request ends. Costs a few sorted-set reads, no states.
        """
        self.operations["redis|stats"] += 1
        await self._purge_expired()
        low = _ms(since)
        pipe = self._redis.pipeline(transaction=False)
        for status in RequestStatus:
            pipe.zcount(self._index[status], low, "+inf")
        pipe.zrevrangebyscore(self._processing_samples, "+inf", low, start=0, num=sample_limit)
        steps = AGENT_STEPS if with_steps else ()
        for step in steps:
            pipe.zrevrangebyscore(
                self._key("stats", "step-seconds", step), "+inf", low, start=0, num=sample_limit
            )
            pipe.zcount(self._key("stats", "step-failures", step), low, "+inf")
        results = await pipe.execute()
        n = len(RequestStatus)
        counts = dict(zip(RequestStatus, results[:n], strict=True))
        stats = RequestStats(
            total=sum(int(c) for c in counts.values()),
            completed=int(counts[RequestStatus.COMPLETED]),
            failed=int(counts[RequestStatus.FAILED]),
            processing_seconds=_seconds(results[n]),
        )
        rest = results[n + 1 :]
        for i, step in enumerate(steps):
            stats.step_seconds[step.value] = _seconds(rest[2 * i])
            stats.step_failures[step.value] = int(rest[2 * i + 1])
        return stats

    @unavailable
    async def get_filing(self, request_id: str) -> FilingRecord | None:
        self.operations["redis|get_filing"] += 1
        fields = cast(dict[str, str], await self._redis.hgetall(self._key("filing", request_id)))
        return _filing(request_id, fields)

    @unavailable
    async def put_filing(self, record: FilingRecord) -> None:
        self.operations["redis|put_filing"] += 1
        key = self._key("filing", record.request_id)
        pending = record.state != "filed"
        fields: dict[str, str | None] = {
            "state": record.state,
            "issue": record.issue.model_dump_json() if record.issue else None,
            "owner": record.owner if pending else None,
            "lease_until": _ms_or_none(record.lease_until) if pending else None,
            "attempted_at": _ms_or_none(record.attempted_at) if pending else None,
            "pending_since": _ms_or_none(record.pending_since) if pending else None,
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={k: v for k, v in fields.items() if v is not None})
        gone = [k for k, v in fields.items() if v is None]
        if gone:
            pipe.hdel(key, *gone)
        pipe.pexpire(key, self._filing_ttl_ms)
        await pipe.execute()

    @unavailable
    async def claim_filing(
        self, request_id: str, owner: str, lease_seconds: float, attempt: bool
    ) -> FilingClaim:
        self.operations["redis|claim_filing"] += 1
        granted, now, *before = cast(
            list[Any],
            await self._claim_filing(
                keys=[self._key("filing", request_id)],
                args=[
                    owner,
                    round(lease_seconds * 1000),
                    "1" if attempt else "",
                    self._filing_ttl_ms,
                ],
            ),
        )
        previous = _filing(request_id, dict(zip(before[::2], before[1::2], strict=True)))
        return FilingClaim(bool(int(granted)), previous, int(now) / 1000)

    @unavailable
    async def put_heartbeats(self, beats: Sequence[Heartbeat], ttl_seconds: float) -> None:
        self.operations["redis|put_heartbeats"] += 1
        pairs = [part for b in beats for part in (f"{b.agent}|{b.instance}", b.to_json())]
        await self._put_heartbeats(
            keys=self._heartbeat_keys, args=[round(ttl_seconds * 1000), *pairs]
        )

    @unavailable
    async def heartbeats(self) -> list[Heartbeat]:
        self.operations["redis|heartbeats"] += 1
        raw = cast(list[str | None], await self._heartbeats(keys=self._heartbeat_keys))
        return [Heartbeat.from_json(beat) for beat in raw if beat]

    @unavailable
    async def record_daily(self, day: date, figures: Mapping[str, float]) -> None:
        self.operations["redis|record_daily"] += 1
        if not figures:
            return
        key = self._key("daily", day.isoformat())
        pipe = self._redis.pipeline(transaction=True)
        for name, value in figures.items():
            if float(value).is_integer():
                pipe.hincrby(key, name, int(value))
            else:
                pipe.hincrbyfloat(key, name, float(value))
        pipe.expire(key, DAILY_TTL_SECONDS)
        await pipe.execute()

    @unavailable
    async def daily(self, day: date) -> dict[str, float] | None:
        self.operations["redis|daily"] += 1
        fields = cast(
            dict[str, str], await self._redis.hgetall(self._key("daily", day.isoformat()))
        )
        return {name: float(value) for name, value in fields.items()} or None

    async def ping(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"backend": "redis", "url": _redacted(self.url)}
        started = time.perf_counter()
        try:
            await self._probe.ping()
            doc["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
            memory = await self._probe.info("memory")
            keyspace = await self._probe.info("keyspace")
        except RedisError as exc:
            return {"status": "unhealthy", **doc, "error": f"{type(exc).__name__}: {exc}"}
        db = self._probe.connection_pool.connection_kwargs.get("db", 0)
        return {
            "status": "healthy",
            **doc,
            "used_memory": memory.get("used_memory"),
            "keys": keyspace.get(f"db{db}", {}).get("keys", 0),
        }


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _ms_or_none(seconds: float | None) -> str | None:
    return None if seconds is None else str(round(seconds * 1000))


def _seconds_or_none(ms: str | None) -> float | None:
    return None if ms is None else int(ms) / 1000


def _filing(request_id: str, fields: Mapping[str, str]) -> FilingRecord | None:
    if not fields:
        return None
    issue = fields.get("issue")
    return FilingRecord(
        request_id,
        fields["state"],
        FiledIssue.model_validate_json(issue) if issue else None,
        owner=fields.get("owner"),
        lease_until=_seconds_or_none(fields.get("lease_until")),
        attempted_at=_seconds_or_none(fields.get("attempted_at")),
        pending_since=_seconds_or_none(fields.get("pending_since")),
    )


def _seconds(members: Sequence[str]) -> list[float]:
    return [float(m.rpartition(":")[2]) for m in members]


def _redacted(url: str) -> str:
    """``url`` without user info or query, either of which may carry a password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
