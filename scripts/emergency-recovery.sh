#!/usr/bin/env bash
# The runbook's emergency procedure (Redis lost or flushed), which loses nothing: the
# status-updates log is the record of truth and the state store a view rebuilt from it.
#   1. count what the API shows:   GET /api/v1/requests?status=all → pagination.total
#   2. scale the tracker agents to 0 (kubectl, docker; locally: stop them yourself — a
#      tracker agent left running searches for its marker before creating, so files nothing twice)
#   3. with --flush only: empty the store (`ai-pipeline state flush`: every key, or with
#      AI_PIPELINE_REDIS_KEY_PREFIX set only that prefix's, so other tenants keep theirs) but
#      the API keys, which no log can give back (emptied, the store would shut the API)
#   4. ai-pipeline state rebuild
#   5. count again: fails (non-zero) when fewer requests show than before
#   6. scale the tracker agents back (also when a step failed)
#
# usage: scripts/emergency-recovery.sh [--target local|docker|kubectl] [--flush]
#            [--no-scale] [--expect N] [--agents "github-api-agent …"]
#   --expect N  the count known from before the incident (when Redis is already gone, the
#               API's count at step 1 shows the loss, not the truth)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
FLUSH=0
SCALE=1
EXPECT=""
AGENTS="${AI_PIPELINE_TRACKER_DEPLOYMENTS:-github-api-agent}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --flush) FLUSH=1; shift ;;
    --no-scale) SCALE=0; shift ;;
    --expect) EXPECT="$2"; shift 2 ;;
    --agents) AGENTS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done

total() {  # requests the API shows, all statuses
  api_get '/api/v1/requests?status=all&limit=1' | jq -er '.pagination.total'
}

# 1. Before.
if ! before="$(total)"; then
  fail "the API at $AI_PIPELINE_URL does not answer GET /api/v1/requests: nothing touched"
  exit 1
fi
if [[ -n "$EXPECT" && "$EXPECT" -gt "$before" ]]; then
  warn "the API shows $before requests, --expect says $EXPECT: checking against $EXPECT"
  before="$EXPECT"
fi
ok "before: $before requests"

state="$(setting state)"
if [[ "$FLUSH" == 1 && "$state" != redis://* && "$state" != rediss://* ]]; then
  fail "--flush is for the Redis state store; AI_PIPELINE_STATE is '$state'"
  exit 2
fi

# 2. Tracker agents down, remembered so they come back whatever happens.
declare -A replicas=()
scale_back() {
  local d
  for d in "${!replicas[@]}"; do
    if [[ "$TARGET" == kubectl ]]; then
      # KEDA owns the replica count again once its ScaledObject is unpaused.
      kubectl -n "$NAMESPACE" annotate scaledobject "$d" \
        autoscaling.keda.sh/paused-replicas- >/dev/null 2>&1 || true
      if kubectl -n "$NAMESPACE" scale deployment "$d" --replicas="${replicas[$d]}"; then
        ok "scaled $d back to ${replicas[$d]}"
      else
        fail "could not scale $d back to ${replicas[$d]}: do it by hand"
      fi
    elif docker compose -f "$COMPOSE_FILE" start "$d"; then
      ok "started $d again"
    else
      fail "could not start $d again: do it by hand"
    fi
  done
}
trap scale_back EXIT
if [[ "$SCALE" == 1 ]]; then
  for d in $AGENTS; do
    case "$TARGET" in
      kubectl)
        replicas[$d]="$(kubectl -n "$NAMESPACE" get deployment "$d" -o jsonpath='{.spec.replicas}')"
        # Where KEDA scales the agent, a plain scale is undone in seconds: pause it at 0.
        kubectl -n "$NAMESPACE" annotate scaledobject "$d" \
          autoscaling.keda.sh/paused-replicas=0 --overwrite >/dev/null 2>&1 || true
        kubectl -n "$NAMESPACE" scale deployment "$d" --replicas=0
        ok "scaled $d to 0 (was ${replicas[$d]})"
        ;;
      docker)
        replicas[$d]=1
        docker compose -f "$COMPOSE_FILE" stop "$d"
        ok "stopped $d"
        ;;
      local)
        warn "local: stop the '$d' process(es) yourself if you can (pgrep -af 'ai-pipeline agent github-api');" \
          "one left running files nothing twice"
        ;;
    esac
  done
fi

# 3. The flush, only when asked.
if [[ "$FLUSH" == 1 ]]; then
  if ! run_cli state flush --yes; then
    fail "the flush failed (Redis reachable?): nothing rebuilt; run the script again"
    exit 1
  fi
  ok "state store emptied (API keys kept)"
fi

# 4. Rebuild from the log.
if ! run_cli state rebuild; then
  fail "state rebuild failed: fix the cause (bus reachable? store reachable?) and run it again — it is safe to repeat"
  exit 1
fi

# 5. After.
if ! after="$(total)"; then
  fail "the API does not answer after the rebuild"
  exit 1
fi
if [[ "$after" -lt "$before" ]]; then
  fail "after: $after requests, fewer than the $before before: something was lost — do not restart the tracker agents blindly; check the log retention (AI_PIPELINE_BUS_RETENTION_SECONDS) and restore a backup (scripts/restore-backup.sh)"
  exit 1
fi
ok "after: $after requests (before: $before): nothing lost"
