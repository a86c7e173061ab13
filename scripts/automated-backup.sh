#!/usr/bin/env bash
# A restorable backup of the pipeline's state: one tar.gz with manifest.json (time, version,
# parts with their sha256) and
#   sqlite/<file>             online, consistent copies (sqlite3 backup API) of the SQLite files
#                             the settings name: the state store, the bus when it is another
#                             file, and the local tracker's file when it exists;
#   redis/keys.jsonl          when the state is Redis: every key under the key prefix (SCAN,
#                             DUMP, PTTL), the API keys included — what restore-backup.sh loads;
#   redis/dump.rdb            and, when redis-cli is installed, a full RDB (`redis-cli --rdb`);
#   config/environment.json   the AI_PIPELINE_* settings (environment and .env), secrets REDACTED.
#
# usage: scripts/automated-backup.sh [--target local|docker|kubectl] [--out-dir DIR] [--keep N]
#            [--s3-url s3://bucket/prefix] [--state-url URL]
#   --out-dir   where archives go (AI_PIPELINE_BACKUP_DIR, default ./backups)
#   --keep      keep the newest N archives in --out-dir (default 7; 0 keeps all)
#   --s3-url    also upload there (endpoint: AI_PIPELINE_S3_ENDPOINT_URL, credentials: AWS_*)
#   --state-url Redis URL reachable from here, when the one the service uses is not
# Prints the archive's path on the last line; non-zero when any part could not be saved.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
OUT_DIR="${AI_PIPELINE_BACKUP_DIR:-backups}"
KEEP=7
S3_URL=""
STATE_URL=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out-dir) OUT_DIR="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    --s3-url) S3_URL="$2"; shift 2 ;;
    --state-url) STATE_URL="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done
[[ "$KEEP" =~ ^[0-9]+$ ]] || { fail "--keep wants a number, not '$KEEP'"; exit 2; }
if [[ -n "$S3_URL" && "$S3_URL" != s3://* ]]; then
  fail "--s3-url must look like s3://bucket/prefix"; exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/parts/sqlite" "$work/parts/redis" "$work/parts/config" "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

# shellcheck disable=SC2016
read -r -d '' PY_TOOL <<'PY' || true
import base64, hashlib, json, os, re, sqlite3, sys, tarfile, time
from datetime import UTC, datetime
from pathlib import Path

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|PRIVATE|AUTH", re.I)
SECRET_VALUE = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[\w-]{10,}"
    r"|sk-[A-Za-z0-9_-]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)

def redact(name, value):
    if SECRET_NAME.search(name):
        return "REDACTED"
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):  # AI_PIPELINE_KAFKA_CONFIG: sasl.password, ssl.key.password…
        return json.dumps({k: "REDACTED" if re.search(r"password|secret|key$|token", k, re.I)
                           else v for k, v in parsed.items()})
    value = re.sub(r"(://[^:/@]*:)[^@/]+@", r"\1REDACTED@", value)  # passwords in URLs
    return SECRET_VALUE.sub("REDACTED", value)

def config(out, source):
    """AI_PIPELINE_* from the environment (stdin: `env` of the service, or ours) and .env."""
    lines = sys.stdin.read().splitlines() if source == "stdin" else [
        f"{k}={v}" for k, v in os.environ.items()]
    found = {}
    dotenv = Path(".env")
    if source != "stdin" and dotenv.is_file():
        for line in dotenv.read_text().splitlines():
            line = line.strip().removeprefix("export ")
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                found[k.strip()] = {"value": v.strip().strip("'\""), "from": ".env"}
    for line in lines:
        if "=" in line:
            k, v = line.split("=", 1)
            found[k] = {"value": v, "from": "environment"}
    settings = {k: {"value": redact(k, d["value"]), "from": d["from"]}
                for k, d in sorted(found.items()) if k.startswith("AI_PIPELINE_")}
    Path(out).write_text(json.dumps(settings, indent=2) + "\n")
    print(f"configuration: {len(settings)} AI_PIPELINE_* settings (secrets redacted)")

def sqlite_backup(src, dst):
    if not Path(src).is_file():
        sys.exit(f"SQLite file {src} does not exist")
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    with target:
        source.backup(target)  # a consistent snapshot while writers carry on
    ok = target.execute("PRAGMA integrity_check").fetchone()[0]
    source.close(); target.close()
    if ok != "ok":
        sys.exit(f"the copy of {src} fails integrity_check: {ok}")

def redis_dump(url, prefix, out):
    import redis
    from ai_pipeline.adapters.keys.redis import NAMES
    from ai_pipeline.adapters.state.redis_flush import spared
    client = redis.Redis.from_url(url, socket_timeout=30)
    count = api_keys = 0
    with open(out, "w") as f:
        batch = []
        def flush():
            nonlocal count, api_keys
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.dump(key); pipe.pttl(key)
            replies = pipe.execute()
            for key, dump, pttl in zip(batch, replies[0::2], replies[1::2]):
                if dump is None:  # expired between SCAN and DUMP
                    continue
                f.write(json.dumps({"key": base64.b64encode(key).decode(), "pttl": pttl,
                                    "dump": base64.b64encode(dump).decode()}) + "\n")
                count += 1
                api_keys += spared(key.decode(errors="replace"), prefix, NAMES)
            batch.clear()
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                flush()
        flush()
    print(f"redis: {count} keys under prefix {prefix!r} ({api_keys} of them API-key entries)",
          file=sys.stderr)

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

def pack(parts_dir, out_dir, meta_json):
    from importlib.metadata import version
    meta = json.loads(meta_json)
    parts_dir = Path(parts_dir)
    now = datetime.now(UTC)
    parts = []
    for path in sorted(p for p in parts_dir.rglob("*") if p.is_file()):
        name = path.relative_to(parts_dir).as_posix()
        parts.append({"name": name, "bytes": path.stat().st_size, "sha256": sha256(path),
                      **meta.get("parts", {}).get(name, {})})
    try:
        app_version = version("ai-pipeline")
    except Exception:
        app_version = "unknown"
    manifest = {"format": 1, "created_at": now.isoformat(), "version": app_version,
                "target": meta["target"], "state": meta["state"], "parts": parts}
    (parts_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    name = f"ai-pipeline-backup-{now.strftime('%Y%m%dT%H%M%S%fZ')}.tar.gz"
    final = Path(out_dir) / name
    partial = final.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(parts_dir / "manifest.json", arcname="manifest.json")
        for part in parts:
            tar.add(parts_dir / part["name"], arcname=part["name"])
    os.replace(partial, final)
    for part in parts:
        print(f"  {part['name']}  {part['bytes']} bytes  sha256 {part['sha256'][:16]}…")
    print(final)

def upload(archive, s3_url):
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        sys.exit("--s3-url needs boto3: pip install 'ai-pipeline[backup]' (make setup has it)")
    bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
    key = "/".join(p for p in (prefix.strip("/"), Path(archive).name) if p)
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AI_PIPELINE_S3_ENDPOINT_URL") or None)
    try:
        s3.upload_file(archive, bucket, key)
        size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except (BotoCoreError, ClientError) as error:
        sys.exit(f"upload to s3://{bucket}/{key} failed: {error}")
    if size != Path(archive).stat().st_size:
        sys.exit(f"s3://{bucket}/{key} holds {size} bytes, the archive {Path(archive).stat().st_size}")
    print(f"uploaded s3://{bucket}/{key} ({size} bytes)")

commands = {"config": config, "sqlite": sqlite_backup, "redis": redis_dump, "pack": pack,
            "upload": upload}
commands[sys.argv[1]](*sys.argv[2:])
PY
tool() { "$PYTHON" -c "$PY_TOOL" "$@"; }

# Where the service runs, a command's output on our stdout.
in_service() {
  case "$TARGET" in
    local) "$@" ;;
    docker) docker compose -f "$COMPOSE_FILE" exec -T api "$@" ;;
    kubectl) kubectl -n "$NAMESPACE" exec deploy/ai-pipeline -- "$@" ;;
  esac
}

sqlite_path() { local url="$1"; echo "${url#sqlite:///}"; }

state="${STATE_URL:-$(setting state)}"
bus="$(setting bus)"
parts_meta="{}"
add_meta() {  # add_meta NAME JSON: what restore needs to know about a part
  parts_meta="$("$PYTHON" -c 'import json, sys
m = json.loads(sys.argv[1]); m[sys.argv[2]] = json.loads(sys.argv[3]); print(json.dumps(m))' \
    "$parts_meta" "$1" "$2")"
}

backup_sqlite() {  # backup_sqlite URL ROLES
  local path name
  path="$(sqlite_path "$1")"
  name="sqlite/$(basename "$path")"
  if [[ "$TARGET" == local ]]; then
    tool sqlite "$path" "$work/parts/$name"
  else
    local remote="/tmp/ai-pipeline-backup-$$.db"
    in_service python -c "$PY_TOOL" sqlite "$path" "$remote"
    in_service cat "$remote" >"$work/parts/$name"
    in_service rm -f "$remote"
  fi
  add_meta "$name" "{\"kind\": \"sqlite\", \"roles\": $2, \"url\": \"$1\"}"
  ok "SQLite $path copied ($2)"
}

if [[ "$state" == sqlite:///* ]]; then
  if [[ "$bus" == "$state" ]]; then
    backup_sqlite "$state" '["state", "bus"]'
  else
    backup_sqlite "$state" '["state"]'
  fi
elif [[ "$state" == redis://* || "$state" == rediss://* ]]; then
  prefix="$(setting redis_key_prefix)"
  if [[ "$TARGET" == local ]]; then
    tool redis "$state" "$prefix" "$work/parts/redis/keys.jsonl"
  else  # Redis is reachable from the service, not necessarily from here: dump it there
    in_service python -c "$PY_TOOL" redis "$state" "$prefix" /dev/stdout \
      >"$work/parts/redis/keys.jsonl"
  fi
  add_meta redis/keys.jsonl "{\"kind\": \"redis-keys\", \"prefix\": \"$prefix\"}"
  ok "Redis keys dumped (SCAN + DUMP)"
  if [[ "$TARGET" != local ]]; then
    warn "an RDB snapshot is taken only with --target local: the archive holds the logical dump"
  elif command -v redis-cli >/dev/null 2>&1; then
    if redis-cli -u "$state" --no-auth-warning --rdb "$work/parts/redis/dump.rdb" >/dev/null 2>&1; then
      add_meta redis/dump.rdb '{"kind": "redis-rdb"}'
      ok "Redis RDB snapshot copied (redis-cli --rdb)"
    else
      rm -f "$work/parts/redis/dump.rdb"
      warn "redis-cli --rdb failed: the archive holds the logical dump only"
    fi
  else
    warn "redis-cli not installed: the archive holds the logical dump only"
  fi
else
  fail "unknown state store '$state'"; exit 1
fi
if [[ "$bus" == sqlite:///* && "$bus" != "$state" ]]; then
  backup_sqlite "$bus" '["bus"]'
fi
tracker_db="$(setting local_tracker_db)"
if [[ "$state" != sqlite:///* && "$tracker_db" == sqlite:///* ]] \
  && in_service test -f "$(sqlite_path "$tracker_db")"; then
  backup_sqlite "$tracker_db" '["local_tracker"]'
fi

if [[ "$TARGET" == local ]]; then
  tool config "$work/parts/config/environment.json" local
else
  in_service env | tool config "$work/parts/config/environment.json" stdin
fi

meta="{\"target\": \"$TARGET\", \"state\": \"${state%%:*}\", \"parts\": $parts_meta}"
tool pack "$work/parts" "$OUT_DIR" "$meta" >"$work/pack.out"
sed '$d' "$work/pack.out"
archive="$(tail -n 1 "$work/pack.out")"
ok "archive written: $archive"

if [[ -n "$S3_URL" ]]; then
  tool upload "$archive" "$S3_URL" || { fail "upload to $S3_URL failed"; exit 1; }
  ok "uploaded to $S3_URL"
fi

if [[ "$KEEP" -gt 0 ]]; then
  mapfile -t archives < <(find "$OUT_DIR" -maxdepth 1 -name 'ai-pipeline-backup-*.tar.gz' | sort -r)
  for old in "${archives[@]:$KEEP}"; do
    rm -f -- "$old"
    ok "retention: removed $old (keeping the newest $KEEP)"
  done
fi
echo "$archive"
