#!/usr/bin/env bash
# Restore an archive written by automated-backup.sh: checks every part against the manifest's
# sha256 first (nothing is touched when one differs), then
#   SQLite parts  → the files the current settings name for their role (state, bus, local
#                   tracker), written with the sqlite3 backup API, so no stale -wal/-shm remain;
#   redis/keys.jsonl → RESTORE of every key with its remaining TTL; a key that exists is kept
#                   (an older snapshot never overwrites newer state) unless --force (REPLACE).
#                   Afterwards run `ai-pipeline state rebuild`: the log brings forward
#                   whatever happened after the backup. The API keys are among them.
#   --only-keys      only the API keys of redis/keys.jsonl (a Redis that lost them: a raw
#                   FLUSHDB, an eviction, a failover to an empty replica), nothing else.
# It stops nothing by itself: it refuses to overwrite a SQLite file that a running process
# holds open (the embedded service) unless --force. Run on the machine that holds the files
# (the local target; for docker/kubectl, run it inside the api container).
#
# usage: scripts/restore-backup.sh ARCHIVE.tar.gz [--force] [--verify-only] [--only-keys]
#            [--state-url URL]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
ARCHIVE=""
FORCE=0
VERIFY_ONLY=0
ONLY_KEYS=0
STATE_URL=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) FORCE=1; shift ;;
    --verify-only) VERIFY_ONLY=1; shift ;;
    --only-keys) ONLY_KEYS=1; shift ;;
    --state-url) STATE_URL="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
    *) ARCHIVE="$1"; shift ;;
  esac
done
[[ -n "$ARCHIVE" ]] || { usage >&2; exit 2; }
[[ -f "$ARCHIVE" ]] || { fail "no archive at $ARCHIVE"; exit 1; }
if [[ "$TARGET" != local ]]; then
  fail "restore runs where the files are: copy the archive into the api container and run it there with --target local"
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# shellcheck disable=SC2016
read -r -d '' PY_TOOL <<'PY' || true
import base64, hashlib, json, os, sqlite3, sys, tarfile
from pathlib import Path

def verify(archive, into):
    into = Path(into)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(into, filter="data")
    manifest = json.loads((into / "manifest.json").read_text())
    bad = 0
    for part in manifest["parts"]:
        path = into / part["name"]
        if not path.is_file():
            print(f"MISSING {part['name']}"); bad += 1; continue
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != part["sha256"]:
            print(f"CHECKSUM MISMATCH {part['name']}: {h.hexdigest()} != {part['sha256']}")
            bad += 1
        else:
            print(f"checksum ok {part['name']} ({part['bytes']} bytes)")
    print(f"archive of {manifest['created_at']}, version {manifest['version']},"
          f" state {manifest['state']}, {len(manifest['parts'])} parts")
    sys.exit(1 if bad else 0)

def plan(into, state, bus, tracker):
    """One line per part: kind, file in the archive, where it goes."""
    manifest = json.loads((Path(into) / "manifest.json").read_text())
    current = {"state": state, "bus": bus, "local_tracker": tracker}
    for part in manifest["parts"]:
        kind = part.get("kind")
        if kind == "sqlite":
            urls = [current[r] for r in part["roles"] if current.get(r, "").startswith("sqlite:///")]
            url = urls[0] if urls else part["url"]
            print(f"sqlite\t{part['name']}\t{url.removeprefix('sqlite:///')}")
        elif kind == "redis-keys":
            print(f"redis-keys\t{part['name']}\t{part.get('prefix', '')}")

def holders(path):
    """Processes (other than us) that hold the file or its WAL open."""
    targets = {os.path.realpath(p) for p in (path, path + "-wal", path + "-shm") if os.path.exists(p)}
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            for fd in fds:
                if os.path.realpath(f"/proc/{pid}/fd/{fd}") in targets:
                    found.add(int(pid))
        except OSError:
            continue
    found.discard(os.getpid())
    print(" ".join(map(str, sorted(found))))

def restore_sqlite(src, dst):
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst, timeout=30)
    with target:
        source.backup(target)
    check = target.execute("PRAGMA integrity_check").fetchone()[0]
    target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tables = target.execute("select count(*) from sqlite_master where type='table'").fetchone()[0]
    source.close(); target.close()
    if check != "ok":
        sys.exit(f"{dst} fails integrity_check after the restore: {check}")
    print(f"restored {dst} ({tables} tables, integrity ok)")

def restore_redis(src, url, replace, prefix, only_keys):
    """Keys that exist are kept unless replace: an older snapshot must not overwrite newer
    state (the log is the truth; `ai-pipeline state rebuild` brings the rest forward).
    only_keys: the API keys alone."""
    import redis
    from ai_pipeline.adapters.keys.redis import NAMES
    from ai_pipeline.adapters.state.redis_flush import spared
    client = redis.Redis.from_url(url, socket_timeout=30)
    replace, only_keys = replace == "1", only_keys == "1"
    restored = kept = expired = 0
    pipe = client.pipeline(transaction=False)

    def run():
        nonlocal restored, kept
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, redis.ResponseError) and "BUSYKEY" in str(reply):
                kept += 1
            elif isinstance(reply, Exception):
                raise reply
            else:
                restored += 1

    with open(src) as f:
        for line in f:
            item = json.loads(line)
            name = base64.b64decode(item["key"]).decode(errors="replace")
            if only_keys and not spared(name, prefix, NAMES):
                continue
            ttl = item["pttl"]
            if ttl == -2 or ttl == 0:
                expired += 1; continue
            pipe.restore(base64.b64decode(item["key"]), max(ttl, 0),
                         base64.b64decode(item["dump"]), replace=replace)
            if len(pipe) >= 500:
                run()
        run()
    print(f"restored {restored} {'API-key entries' if only_keys else 'Redis keys'}"
          f" into {url.split('@')[-1]}"
          + (" (REPLACE)" if replace else "")
          + (f", {kept} existing keys kept (--force replaces them)" if kept else "")
          + (f", {expired} already expired skipped" if expired else ""))

{"verify": verify, "plan": plan, "holders": holders, "sqlite": restore_sqlite,
 "redis": restore_redis}[sys.argv[1]](*sys.argv[2:])
PY
tool() { "$PYTHON" -c "$PY_TOOL" "$@"; }

if ! tool verify "$ARCHIVE" "$work"; then
  fail "$ARCHIVE does not match its manifest: nothing restored"
  exit 1
fi
ok "every part matches its sha256"
if [[ "$VERIFY_ONLY" == 1 ]]; then
  exit 0
fi

state="${STATE_URL:-$(setting state)}"
mapfile -t plan < <(tool plan "$work" "$state" "$(setting bus)" "$(setting local_tracker_db)")
# Refuse before touching anything.
for line in "${plan[@]}"; do
  IFS=$'\t' read -r kind _name dest <<<"$line"
  if [[ "$kind" == sqlite && "$ONLY_KEYS" != 1 ]]; then
    pids="$(tool holders "$dest")"
    if [[ -n "$pids" && "$FORCE" != 1 ]]; then
      fail "$dest is open in running process(es) $pids (the service?): stop it first, or --force"
      exit 1
    elif [[ -n "$pids" ]]; then
      warn "$dest is open in process(es) $pids: restoring anyway (--force); restart them afterwards"
    fi
  elif [[ "$kind" == redis-keys && "$state" != redis://* && "$state" != rediss://* ]]; then
    fail "the archive holds Redis keys but AI_PIPELINE_STATE is '$state' (use --state-url)"
    exit 1
  fi
done
if [[ "$ONLY_KEYS" == 1 && "${plan[*]}" != *redis-keys* ]]; then
  fail "--only-keys: the archive holds no Redis keys (with SQLite the keys live in the state file: restore it whole)"
  exit 1
fi
for line in "${plan[@]}"; do
  IFS=$'\t' read -r kind name dest <<<"$line"
  case "$kind" in
    sqlite)
      if [[ "$ONLY_KEYS" == 1 ]]; then
        warn "--only-keys: $name skipped (with SQLite the keys live in the state file: restore it whole)"
        continue
      fi
      tool sqlite "$work/$name" "$dest"; ok "SQLite $name → $dest" ;;
    redis-keys)
      tool redis "$work/$name" "$state" "$FORCE" "$dest" "$ONLY_KEYS"
      ok "Redis $([[ "$ONLY_KEYS" == 1 ]] && echo "API keys" || echo keys) (prefix '$dest') restored" ;;
  esac
done
if [[ -f "$work/redis/dump.rdb" ]]; then
  echo "redis/dump.rdb is in the archive too: for a whole-server restore, stop Redis, put it in its dir as its dbfilename, start."
fi
if [[ "${plan[*]}" == *redis-keys* && "$ONLY_KEYS" != 1 ]]; then
  echo "next: ai-pipeline state rebuild — replays the log over the restored keys (newer events win)"
fi
ok "restore done; start the service (or restart it) and check: curl -s \$AI_PIPELINE_URL/api/v1/requests?status=all | jq .pagination.total"
