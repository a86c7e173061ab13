#!/usr/bin/env bash
# Capacity planning: throughput, consumer lag and per-agent rates measured over an
# interval, CPU and memory of the processes, and how many triage agents a target rate needs.
#
# usage: scripts/capacity-planning.sh [--target local|docker|kubectl] [--interval S]
#            [--target-rate R] [--max-lag-growth N] [--headroom F]
#   --interval        seconds between the two /metrics samples (default 30)
#   --target-rate     reports per second to plan for (AI_PIPELINE_TARGET_RATE, default 50)
#   --max-lag-growth  most the summed consumer lag may grow over the interval
#                     (AI_PIPELINE_MAX_LAG_GROWTH, default 100)
#   --headroom        share of an agent's capacity to plan on using (default 0.7)
#
# Good looks like: lag flat or falling ("✔ lag: 0 → 0"), each agent's handled rate close to
# the submission rate, and a projection line "triage agents for R reports/s: N (running M)"
# with M ≥ N. Exit 1 when the lag grew by more than --max-lag-growth: the agents do not
# keep up (scale the agent whose group lags; see KafkaConsumerLag).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
INTERVAL=30
TARGET_RATE="${AI_PIPELINE_TARGET_RATE:-50}"
MAX_LAG_GROWTH="${AI_PIPELINE_MAX_LAG_GROWTH:-100}"
HEADROOM=0.7
while [[ $# -gt 0 ]]; do
  case "$1" in
    --interval) INTERVAL="$2"; shift 2 ;;
    --target-rate) TARGET_RATE="$2"; shift 2 ;;
    --max-lag-growth) MAX_LAG_GROWTH="$2"; shift 2 ;;
    --headroom) HEADROOM="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done
AGENTS=(triage_agent ticket_creation_agent github_api_agent coordinator_agent)

# Floating-point arithmetic: calc 'a / b' a=1 b=2 (prints with 3 decimals).
calc() {
  local expr="$1"; shift
  local vars=()
  local kv
  for kv in "$@"; do vars+=(-v "$kv"); done
  awk "${vars[@]}" "BEGIN { printf \"%.3f\\n\", ($expr) }"
}

sample() {
  api_get /metrics 2>/dev/null || { fail "cannot read /metrics ($TARGET)"; exit 1; }
}

echo "Capacity planning ($TARGET): sampling /metrics twice, ${INTERVAL}s apart"
first="$(sample)"
sleep "$INTERVAL"
second="$(sample)"

delta_rate() { # metric [label]: growth per second between the samples
  local a b
  a="$(prom_sum "$1" "${2:-}" <<<"$first")"
  b="$(prom_sum "$1" "${2:-}" <<<"$second")"
  calc '(b - a) / t' "a=$a" "b=$b" "t=$INTERVAL"
}

echo "== Throughput (per second over ${INTERVAL}s)"
echo "  accepted:  $(delta_rate ai_pipeline_requests_total)"
echo "  completed: $(delta_rate ai_pipeline_requests_completed_total)"
echo "  failed:    $(delta_rate ai_pipeline_requests_failed_total)"

echo "== Agents (handled per second; average handling time; capacity of one agent)"
declare -A AVG_MS=()
for agent in "${AGENTS[@]}"; do
  label="agent=\"$agent\""
  count="$(prom_sum ai_pipeline_agent_handling_seconds_count "$label" <<<"$second")"
  total="$(prom_sum ai_pipeline_agent_handling_seconds_sum "$label" <<<"$second")"
  avg_ms="$(calc 'c > 0 ? s / c * 1000 : 0' "c=$count" "s=$total")"
  AVG_MS[$agent]="$avg_ms"
  capacity="$(calc 's > 0 ? c / s : 0' "c=$count" "s=$total")"
  printf '  %-22s %9s/s  avg %9s ms  one agent ~%s/s\n' "$agent" \
    "$(delta_rate ai_pipeline_agent_handled_total "$label")" "$avg_ms" "$capacity"
done

echo "== Consumer lag (unconsumed messages)"
grep '^kafka_consumer_lag_sum' <<<"$second" | sed 's/^/  /' || echo "  (no lag exported)"
lag1="$(prom_sum kafka_consumer_lag_sum <<<"$first")"
lag2="$(prom_sum kafka_consumer_lag_sum <<<"$second")"
lag1="${lag1%.*}"
lag2="${lag2%.*}"

echo "== Processes (CPU, memory)"
case "$TARGET" in
  local)
    # The process serving the API port (ss shows only our own user's processes).
    port="$(sed -E 's#^[a-z]+://[^/:]+:?([0-9]*).*#\1#' <<<"$AI_PIPELINE_URL")"
    pids="$(ss -ltnpH "sport = :${port:-80}" 2>/dev/null | grep -o 'pid=[0-9]*' \
      | cut -d= -f2 | sort -u | paste -sd, - || true)"
    if [[ -n "$pids" ]]; then
      ps -o pid=,pcpu=,rss=,args= -p "$pids" \
        | awk '{ printf "  pid %s  cpu %s %%  rss %.0f MiB  ", $1, $2, $3 / 1024;
                 $1 = $2 = $3 = ""; sub(/^ +/, ""); print }'
    else
      warn "no process of ours listens on port ${port:-80}"
    fi
    others="$(pgrep -fc 'ai[-_]pipeline(\.cli)? agent' || true)"
    echo "  separate agent processes on this machine: ${others:-0} (ps -fp \$(pgrep -f 'ai-pipeline agent'))"
    triage_replicas=1
    ;;
  docker)
    mapfile -t containers < <(docker compose -f "$COMPOSE_FILE" ps -q)
    if ((${#containers[@]} > 0)); then
      docker stats --no-stream --format '  {{.Name}}  cpu {{.CPUPerc}}  mem {{.MemUsage}}' \
        "${containers[@]}"
    fi
    triage_replicas="$(docker compose -f "$COMPOSE_FILE" ps -q triage-agent 2>/dev/null | wc -l)"
    ((triage_replicas > 0)) || triage_replicas=1
    ;;
  kubectl)
    kubectl -n "$NAMESPACE" top pods | sed 's/^/  /' || warn "kubectl top pods failed (metrics-server?)"
    triage_replicas="$(kubectl -n "$NAMESPACE" get deployment triage-agent \
      -o jsonpath='{.spec.replicas}' 2>/dev/null || true)"
    [[ "$triage_replicas" =~ ^[0-9]+$ ]] || triage_replicas=1
    ;;
esac

echo "== Projection"
avg_ms="${AVG_MS[triage_agent]}"
measured="$(delta_rate ai_pipeline_agent_handled_total 'agent="triage_agent"')"
per_agent="$(calc 'n > 0 ? m / n : 0' "m=$measured" "n=$triage_replicas")"
echo "  triage agents running: $triage_replicas, measured ${per_agent}/s each"
if awk -v a="$avg_ms" 'BEGIN { exit !(a > 0) }'; then
  needed="$(awk -v r="$TARGET_RATE" -v a="$avg_ms" -v h="$HEADROOM" \
    'BEGIN { n = r * a / 1000 / h; c = int(n); if (c < n) c++; if (c < 1) c = 1; print c }')"
  echo "  triage agents for $TARGET_RATE reports/s: $needed (running $triage_replicas;" \
    "${avg_ms} ms per report, each planned at $(awk -v h="$HEADROOM" 'BEGIN { printf "%.0f", h * 100 }') % busy)"
  ((needed <= triage_replicas)) || warn "scale triage-agent to $needed for $TARGET_RATE reports/s"
else
  warn "no triage handling time measured yet: submit some reports, then run this again"
fi

growth=$((lag2 - lag1))
if ((growth > MAX_LAG_GROWTH)); then
  fail "lag: $lag1 → $lag2 (grew $growth > $MAX_LAG_GROWTH in ${INTERVAL}s): agents do not keep up"
  exit 1
fi
ok "lag: $lag1 → $lag2 (growth limit $MAX_LAG_GROWTH)"
