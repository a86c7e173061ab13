#!/usr/bin/env bash
# Evening summary: the day's figures from the stored daily counters
# (`ai-pipeline report daily --json`), checked against the error-rate objective.
#
# usage: scripts/evening-summary.sh [--target local|docker|kubectl] [--date YYYY-MM-DD]
#            [--max-error-rate F]
#   --date            the UTC day to summarise (default today, UTC)
#   --max-error-rate  highest acceptable share of failed requests, 0..1
#                     (AI_PIPELINE_MAX_ERROR_RATE, default 0.001: the 0.1 % SLO)
#
# Good looks like: every figure printed, "error rate 0.000 % (objective < 0.100 %)" and
# "evening summary: within objectives" (exit 0). Exit 1 when the error rate is above the
# maximum or nothing was recorded for the day (is the service running? it records its
# counters every AI_PIPELINE_LAG_INTERVAL_SECONDS).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
DAY="$(date -u +%Y-%m-%d)"
MAX_ERROR_RATE="${AI_PIPELINE_MAX_ERROR_RATE:-0.001}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --date) DAY="$2"; shift 2 ;;
    --max-error-rate) MAX_ERROR_RATE="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done

REPORT_JSON=""

# One figure of the day's report ("" when it is null or absent).
get_daily_metric() {
  jq -r --arg name "$1" '.[$name] // empty' <<<"$REPORT_JSON"
}

# A fraction as a percentage with 3 decimals, "n/a" when empty.
percent() { [[ -n "$1" ]] && awk -v f="$1" 'BEGIN { printf "%.3f %%", f * 100 }' || echo "n/a"; }
# Seconds as milliseconds, "n/a" when empty.
millis() { [[ -n "$1" ]] && awk -v s="$1" 'BEGIN { printf "%.1f ms", s * 1000 }' || echo "n/a"; }

if ! REPORT_JSON="$(run_cli report daily --date "$DAY" --json)" \
  || ! jq -e 'type == "object"' <<<"$REPORT_JSON" >/dev/null 2>&1; then
  fail "no daily report for $DAY (ai-pipeline report daily --date $DAY)"
  echo "good: a report exists once the service has run that day; check it is up"
  exit 1
fi

error_rate="$(get_daily_metric error_rate)"
llm_calls="$(get_daily_metric llm_calls)"
llm_note=""
[[ "$llm_calls" != 0 ]] || llm_note=" (the local triage engine makes none)"
cat <<EOF
=== AI Pipeline daily summary, $DAY (UTC) ===
Reports accepted:          $(get_daily_metric reports_accepted)
Reports processed:         $(get_daily_metric reports_processed) ($(get_daily_metric completed) completed, $(get_daily_metric failed) failed)
Success rate:              $(percent "$(get_daily_metric success_rate)")
Average processing time:   $(millis "$(get_daily_metric average_processing_seconds)") (p95 $(millis "$(get_daily_metric p95_processing_seconds)"))
Errors:                    $(get_daily_metric errors) (error rate $(percent "$error_rate"))
API response time:         average $(millis "$(get_daily_metric average_response_seconds)"), p95 $(millis "$(get_daily_metric p95_response_seconds)") over $(get_daily_metric http_requests) requests ($(get_daily_metric http_errors) 5xx)
Bus messages:              $(get_daily_metric bus_messages)
State-store operations:    $(get_daily_metric store_operations)
LLM calls:                 $llm_calls$llm_note
EOF

if [[ -n "$error_rate" ]] \
  && awk -v r="$error_rate" -v m="$MAX_ERROR_RATE" 'BEGIN { exit !(r > m) }'; then
  fail "error rate $(percent "$error_rate") above the objective $(percent "$MAX_ERROR_RATE")"
  echo "next: ai-pipeline requests --status failed; ai-pipeline dead-letters (HighErrorRate)"
  exit 1
fi
ok "error rate $(percent "${error_rate:-0}") (objective < $(percent "$MAX_ERROR_RATE"))"
p95="$(get_daily_metric p95_response_seconds)"
if [[ -n "$p95" ]] && awk -v p="$p95" 'BEGIN { exit !(p >= 2) }'; then
  warn "API p95 $(millis "$p95") is not under the 2 s objective"
fi
ok "evening summary: within objectives"
