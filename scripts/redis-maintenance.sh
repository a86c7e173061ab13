#!/usr/bin/env bash
# Redis maintenance report for the distributed state store (AI_PIPELINE_STATE=redis://…):
#   memory (used, peak, RSS, fragmentation, maxmemory), keyspace, key counts by kind under
#   AI_PIPELINE_REDIS_KEY_PREFIX (SCAN, never KEYS), orphan index members (ids in the
#   index:* sorted sets whose request:<id> key is gone and that are not merely awaiting the
#   store's own purge of expired requests), and the biggest keys (MEMORY USAGE).
# Exits 1 on a finding: memory above --max-memory-mb (default 80 % of maxmemory when set),
# fragmentation above --max-fragmentation (default 1.5, only once more than 64 MiB is used),
# a key above --big-key-mb (default 16), or orphans without --fix. --fix removes the orphans.
#
# usage: scripts/redis-maintenance.sh [--target …] [--state-url URL] [--fix]
#            [--max-memory-mb N] [--max-fragmentation R] [--big-key-mb N] [--top N]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
STATE_URL=""
FIX=0
MAX_MEMORY_MB=""
MAX_FRAG=1.5
BIG_KEY_MB=16
TOP=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --state-url) STATE_URL="$2"; shift 2 ;;
    --fix) FIX=1; shift ;;
    --max-memory-mb) MAX_MEMORY_MB="$2"; shift 2 ;;
    --max-fragmentation) MAX_FRAG="$2"; shift 2 ;;
    --big-key-mb) BIG_KEY_MB="$2"; shift 2 ;;
    --top) TOP="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done

state="${STATE_URL:-$(setting state)}"
if [[ "$state" != redis://* && "$state" != rediss://* ]]; then
  fail "AI_PIPELINE_STATE is '$state', not Redis: nothing to maintain (use --state-url)"
  exit 2
fi
prefix="$(setting redis_key_prefix)"

read -r -d '' PY_REPORT <<'PY' || true
import sys, time
from collections import Counter
import redis

url, prefix, fix, max_mb, max_frag, big_mb, top = sys.argv[1:8]
fix, max_frag, big_bytes, top = fix == "1", float(max_frag), float(big_mb) * 2**20, int(top)
findings = []
try:
    r = redis.Redis.from_url(url, socket_timeout=30, decode_responses=True)
    memory, keyspace = r.info("memory"), r.info("keyspace")
except redis.RedisError as error:
    print(f"\u2718 Redis at {url.split('@')[-1]} does not answer: {error}", file=sys.stderr)
    sys.exit(1)

used, rss, limit = memory["used_memory"], memory.get("used_memory_rss", 0), memory.get("maxmemory", 0)
frag = float(memory.get("mem_fragmentation_ratio", 0) or 0)
print("== memory")
print(f"used {memory['used_memory_human']}, peak {memory.get('used_memory_peak_human')},"
      f" rss {memory.get('used_memory_rss_human')}, fragmentation {frag:.2f},"
      f" maxmemory {limit or 'unlimited'} ({memory.get('maxmemory_policy')})")
max_bytes = float(max_mb) * 2**20 if max_mb else (0.8 * limit if limit else 0)
if max_bytes and used > max_bytes:
    findings.append(f"memory: {used / 2**20:.1f} MiB used, above the limit of {max_bytes / 2**20:.1f} MiB")
if frag > max_frag and used > 64 * 2**20:
    findings.append(f"fragmentation {frag:.2f} above {max_frag} (consider activedefrag yes)")
if limit and memory.get("maxmemory_policy") not in ("noeviction", None):
    findings.append(f"maxmemory-policy is {memory['maxmemory_policy']}: Redis may evict request"
                    " state; use noeviction (rebuildable, but a silent loss until rebuilt)")

print("== keyspace")
for db, stats in keyspace.items():
    print(f"{db}: {stats}")

print(f"== keys under prefix {prefix!r} (SCAN)")
kinds, sizes, indexes = Counter(), [], []
pipe_keys = []
def measure():
    pipe = r.pipeline(transaction=False)
    for key in pipe_keys:
        pipe.memory_usage(key, samples=0)
    for key, size in zip(pipe_keys, pipe.execute()):
        sizes.append((size or 0, key))
    pipe_keys.clear()
for key in r.scan_iter(match=f"{prefix}*", count=1000):
    rest = key[len(prefix):]
    kind = rest.split(":", 1)[0] if ":" in rest else rest
    if kind == "stats":
        kind = "stats:" + rest.split(":")[1]
    kinds[kind] += 1
    if kind == "index":
        indexes.append(key)
    pipe_keys.append(key)
    if len(pipe_keys) >= 500:
        measure(); sizes.sort(reverse=True); del sizes[top:]
measure(); sizes.sort(reverse=True); del sizes[top:]
for kind, n in sorted(kinds.items()):
    print(f"{kind:28} {n}")
if not kinds:
    print("(none)")

print("== orphan index members (id in index:*, request:<id> gone)")
now_ms = time.time() * 1000
expiry = f"{prefix}index:expiry"
orphans = {}
for index in sorted(indexes):
    if r.type(index) != "zset":
        continue
    members = [m for m, _ in r.zscan_iter(index, count=1000)]
    for start in range(0, len(members), 500):
        chunk = members[start:start + 500]
        pipe = r.pipeline(transaction=False)
        for m in chunk:
            pipe.exists(f"{prefix}request:{m}")
            pipe.zscore(expiry, m)
        replies = pipe.execute()
        for m, exists, expires in zip(chunk, replies[0::2], replies[1::2]):
            # Expired terminal requests wait in the index for the store to purge them.
            if not exists and not (expires is not None and expires <= now_ms):
                orphans.setdefault(m, []).append(index)
for m, where in sorted(orphans.items()):
    print(f"orphan {m} in {', '.join(w[len(prefix):] for w in where)}")
if orphans and fix:
    pipe = r.pipeline(transaction=False)
    for m, where in orphans.items():
        for index in where:
            pipe.zrem(index, m)
    removed = sum(pipe.execute())
    print(f"\u2714 removed {removed} orphan index entries ({len(orphans)} ids)")
elif orphans:
    findings.append(f"{len(orphans)} orphan ids in the index sets (run again with --fix)")
else:
    print("none")

print(f"== biggest keys (top {top}, MEMORY USAGE)")
for size, key in sizes:
    print(f"{size:>12} B  {key}")
    if size > big_bytes:
        findings.append(f"big key {key}: {size / 2**20:.1f} MiB")

if findings:
    for f in findings:
        print(f"\u2718 {f}", file=sys.stderr)
    sys.exit(1)
print("\u2714 Redis healthy: no finding above the thresholds")
PY
run_py "$PY_REPORT" "$state" "$prefix" "$FIX" "$MAX_MEMORY_MB" "$MAX_FRAG" "$BIG_KEY_MB" "$TOP"
