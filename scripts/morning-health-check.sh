#!/usr/bin/env bash
# Morning health check: is the pipeline healthy, and did the last 24 h go well?
#
# usage: scripts/morning-health-check.sh [--target local|docker|kubectl]
#            [--min-success-rate F] [--max-dead-letters N] [--max-lag N]
#   --min-success-rate  lowest acceptable 24 h success rate, 0..1
#                       (AI_PIPELINE_MIN_SUCCESS_RATE, default 0.999: the 0.1 % error SLO)
#   --max-dead-letters  most dead letters tolerated (AI_PIPELINE_MAX_DEAD_LETTERS, default 0)
#   --max-lag           most unconsumed messages, summed over groups
#                       (AI_PIPELINE_MAX_LAG, default 1000: the KafkaConsumerLag alert)
#
# Good looks like: "✔ health: healthy", every component healthy (llm "disabled" with the
# local engine), success rate at or above the minimum, 0 dead letters, lag under the
# threshold, and "morning check passed" (exit 0). Anything else: exit 1, the failing
# checks listed (a degraded service names its unhealthy components).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
MIN_SUCCESS_RATE="${AI_PIPELINE_MIN_SUCCESS_RATE:-0.999}"
MAX_DEAD_LETTERS="${AI_PIPELINE_MAX_DEAD_LETTERS:-0}"
MAX_LAG="${AI_PIPELINE_MAX_LAG:-1000}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --min-success-rate) MIN_SUCCESS_RATE="$2"; shift 2 ;;
    --max-dead-letters) MAX_DEAD_LETTERS="$2"; shift 2 ;;
    --max-lag) MAX_LAG="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done

PROBLEMS=()
problem() { fail "$*"; PROBLEMS+=("$*"); }

echo "Morning health check ($TARGET, $(date -u +%Y-%m-%dT%H:%MZ))"

# 1. Health: the overall status, then each component.
health="$(api_get /api/v1/health 2>/dev/null)" || true
status="$(jq -r '.status // empty' <<<"$health" 2>/dev/null || true)"
if [[ -z "$status" ]]; then
  problem "service unreachable: no health document from /api/v1/health"
  echo "good: {\"status\": \"healthy\", ...}; check the process and its log (ServiceDown)."
  exit 1
fi
if [[ "$status" == healthy ]]; then
  ok "health: healthy"
else
  bad="$(jq -r '.components | to_entries[]
    | select(.value.status != "healthy" and .value.status != "disabled") | .key' <<<"$health" \
    | paste -sd, -)"
  problem "health: $status (components not healthy: ${bad:-none named})"
fi
jq -r '.components | to_entries[] | "  \(.key): \(.value.status)"
  + (if .value.last_error then " (last error: \(.value.last_error))" else "" end)' <<<"$health"

# 2. The last 24 h: failed requests and success rate.
if metrics="$(api_get '/api/v1/metrics?period=24h' 2>/dev/null)"; then
  total="$(jq -r '.requests.total' <<<"$metrics")"
  failed="$(jq -r '.requests.failed' <<<"$metrics")"
  rate="$(jq -r '.success_rate // "none"' <<<"$metrics")"
  echo "last 24 h: $total requests, $failed failed, success rate $rate"
  if [[ "$rate" != none ]] && awk -v r="$rate" -v m="$MIN_SUCCESS_RATE" 'BEGIN { exit !(r < m) }'; then
    problem "success rate $rate below $MIN_SUCCESS_RATE ($failed failed in 24 h;" \
      "see: ai-pipeline requests --status failed)"
  else
    ok "success rate: $rate (minimum $MIN_SUCCESS_RATE)"
  fi
else
  problem "could not read /api/v1/metrics?period=24h"
fi

# 3. Dead letters: messages no agent could process.
if letters="$(run_cli dead-letters --json --limit 1000 2>/dev/null)" \
  && dead="$(jq -er 'length' <<<"$letters" 2>/dev/null)"; then
  if ((dead > MAX_DEAD_LETTERS)); then
    problem "dead letters: $dead (maximum $MAX_DEAD_LETTERS; see: ai-pipeline dead-letters)"
    jq -r '.[:5][] | "  \(.topic) \(.key): \(.reason)"' <<<"$letters"
  else
    ok "dead letters: $dead (maximum $MAX_DEAD_LETTERS)"
  fi
else
  problem "could not list dead letters (ai-pipeline dead-letters --json)"
fi

# 4. Consumer lag, as the service exports it.
if prom="$(api_get /metrics 2>/dev/null)"; then
  lag="$(prom_sum kafka_consumer_lag_sum <<<"$prom")"
  lag="${lag%.*}"
  if ((lag > MAX_LAG)); then
    problem "consumer lag: $lag messages (maximum $MAX_LAG)"
    grep '^kafka_consumer_lag_sum' <<<"$prom" | sed 's/^/  /' || true
  else
    ok "consumer lag: $lag (maximum $MAX_LAG)"
  fi
else
  problem "could not read /metrics"
fi

if ((${#PROBLEMS[@]} > 0)); then
  fail "morning check FAILED: ${#PROBLEMS[@]} problem(s)"
  exit 1
fi
ok "morning check passed"
