# shellcheck shell=bash
# Shared by the runbook scripts: where the service runs (local, docker compose or
# Kubernetes), and how to ask it something there. Source it; do not run it.
#
# Target: --target local|docker|kubectl (or AI_PIPELINE_TARGET), else detected:
# kubectl when the namespace has the ai-pipeline deployment, docker when the compose
# project runs an api container, local otherwise.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
AI_PIPELINE_URL="${AI_PIPELINE_URL:-http://localhost:8000}"
NAMESPACE="${AI_PIPELINE_NAMESPACE:-ai-pipeline}"
COMPOSE_FILE="${AI_PIPELINE_COMPOSE_FILE:-$REPO/deploy/docker-compose.yml}"
TARGET="${AI_PIPELINE_TARGET:-}"

# Consume a leading "--target X" from the arguments; sets TARGET and ARGS (the rest).
parse_target() {
  ARGS=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --target) TARGET="$2"; shift 2 ;;
      --target=*) TARGET="${1#--target=}"; shift ;;
      *) ARGS+=("$1"); shift ;;
    esac
  done
  [[ -n "$TARGET" ]] || TARGET="$(detect_target)"
  case "$TARGET" in
    local|docker|kubectl) ;;
    *) fail "unknown target '$TARGET' (local, docker or kubectl)"; exit 2 ;;
  esac
}

detect_target() {
  if command -v kubectl >/dev/null 2>&1 \
    && kubectl -n "$NAMESPACE" get deployment ai-pipeline >/dev/null 2>&1; then
    echo kubectl
  elif command -v docker >/dev/null 2>&1 \
    && [[ -n "$(docker compose -f "$COMPOSE_FILE" ps -q api 2>/dev/null)" ]]; then
    echo docker
  else
    echo local
  fi
}

# Once the API has keys, its read routes need one: a `read` key in AI_PIPELINE_API_KEY is
# sent with every GET, as a header read from a pipe (never on a command line, where `ps`
# shows it). Inside a container (docker, kubectl targets) the container's own variable.
_curl() {
  if [[ -n "${AI_PIPELINE_API_KEY:-}" ]]; then
    curl -H @<(printf 'X-API-Key: %s\n' "$AI_PIPELINE_API_KEY") "$@"
  else
    curl "$@"
  fi
}

# The body of GET $1 (a path such as /api/v1/health) from the API; non-zero on failure.
# HTTP errors still print the body (it carries the error envelope or the health document).
api_get() {
  local path="$1"
  case "$TARGET" in
    local) _curl -sS --fail-with-body --max-time 10 "$AI_PIPELINE_URL$path" ;;
    *) run_py "$_PY_GET" "$path" ;;
  esac
}

# The HTTP status of GET $1.
api_status() {
  local path="$1"
  case "$TARGET" in
    local) _curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$AI_PIPELINE_URL$path" || echo 000 ;;
    *) api_get "$path" >/dev/null 2>&1 && echo 200 || echo 503 ;;
  esac
}

# Run python -c "$1" with the remaining arguments where the service runs (and so where its
# Redis and Kafka are reachable: inside the API container or pod, not on the operator's box).
run_py() {
  local code="$1"
  shift
  case "$TARGET" in
    local) "$PYTHON" -c "$code" "$@" ;;
    docker) docker compose -f "$COMPOSE_FILE" exec -T api python -c "$code" "$@" ;;
    kubectl) kubectl -n "$NAMESPACE" exec deploy/ai-pipeline -- python -c "$code" "$@" ;;
  esac
}

# Run the ai-pipeline CLI where the service runs.
run_cli() {
  case "$TARGET" in
    local)
      if [[ -x "$REPO/.venv/bin/ai-pipeline" ]]; then
        "$REPO/.venv/bin/ai-pipeline" "$@"
      else
        ai-pipeline "$@"
      fi
      ;;
    docker) docker compose -f "$COMPOSE_FILE" exec -T api ai-pipeline "$@" ;;
    kubectl) kubectl -n "$NAMESPACE" exec deploy/ai-pipeline -- ai-pipeline "$@" ;;
  esac
}

# Inside a container there is python but maybe no curl: a GET in a few lines of stdlib.
# shellcheck disable=SC2016
_PY_GET='import os, sys, urllib.request, urllib.error
key = os.environ.get("AI_PIPELINE_API_KEY")
request = urllib.request.Request(
    "http://localhost:8000" + sys.argv[1], headers={"X-API-Key": key} if key else {}
)
try:
    body = urllib.request.urlopen(request, timeout=10).read()
except urllib.error.HTTPError as e:
    body = e.read()
    sys.stdout.write(body.decode()); sys.exit(1)
sys.stdout.write(body.decode())'

ok() { printf '\033[32m✔\033[0m %s\n' "$*"; }
warn() { printf '\033[33m!\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[31m✘\033[0m %s\n' "$*" >&2; }

# The project's Python (the venv's when there is one), for scripts that do their work in Python.
PYTHON="${AI_PIPELINE_PYTHON:-$REPO/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON=python3

# A setting as the service resolves it (environment, then .env), e.g. `setting state`;
# secrets print masked, dicts as JSON. Read where the service runs.
# shellcheck disable=SC2016
_PY_SETTING='import json, sys
from ai_pipeline.settings import Settings
value = getattr(Settings(), sys.argv[1])
print(json.dumps(value) if isinstance(value, (dict, list)) else ("" if value is None else value))'
setting() { run_py "$_PY_SETTING" "$1"; }

# Sum of the samples of metric $1 (exact name) in Prometheus text on stdin; optional $2
# keeps only samples whose labels contain it, e.g. 'agent="triage_agent"'. Prints 0 if none.
prom_sum() {
  awk -v name="$1" -v want="${2:-}" '
    /^#/ { next }
    { metric = $1; sub(/\{.*/, "", metric) }
    metric == name && (want == "" || index($1, want) > 0) { total += $NF }
    END { printf "%.6f\n", total + 0 }'
}
