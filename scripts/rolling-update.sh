#!/usr/bin/env bash
# Rolling update, one deployment at a time, with a health check after each and automatic
# rollback: a failed rollout or health check undoes that deployment and every one this run
# already updated (newest first), then exits 1.
#   kubectl: kubectl -n ai-pipeline set image deployment/<d> <container>=<image>,
#            kubectl rollout status --timeout, GET /api/v1/health; rollback: rollout undo
#   docker:  AI_PIPELINE_IMAGE=<image> docker compose up -d --no-deps <service>, health;
#            rollback: the same with the image the service ran before (the compose file must
#            use `image: ${AI_PIPELINE_IMAGE:-…}`)
#   local:   one process, nothing to roll: with --command 'CMD' it runs CMD (your restart)
#            and waits for health; without, it says so and exits 0
#
# usage: scripts/rolling-update.sh [--target …] --image IMAGE [--deployments "d1 d2 …"]
#            [--container NAME] [--timeout 300s] [--health-tries N] [--command 'CMD']
#   --deployments  default: ai-pipeline triage-agent ticket-creation-agent
#                  github-api-agent coordinator-agent (docker: api triage-agent …)
#   --container    container name inside each deployment (default: the deployment's name)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
IMAGE=""
DEPLOYMENTS=""
CONTAINER=""
TIMEOUT=300s
HEALTH_TRIES=10
HEALTH_WAIT="${AI_PIPELINE_HEALTH_WAIT_SECONDS:-3}"
COMMAND=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --image) IMAGE="$2"; shift 2 ;;
    --deployments) DEPLOYMENTS="$2"; shift 2 ;;
    --container) CONTAINER="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --health-tries) HEALTH_TRIES="$2"; shift 2 ;;
    --command) COMMAND="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done

healthy() {  # the API answers its health check with 200, within a few tries
  local i status
  for ((i = 1; i <= HEALTH_TRIES; i++)); do
    status="$(api_status /api/v1/health)"
    if [[ "$status" == 200 ]]; then
      return 0
    fi
    sleep "$HEALTH_WAIT"
  done
  warn "health check: HTTP $status after $HEALTH_TRIES tries"
  return 1
}

if [[ "$TARGET" == local ]]; then
  if [[ -z "$COMMAND" ]]; then
    ok "local target: one process, nothing to roll (pass --command 'your restart' to restart and check health)"
    exit 0
  fi
  bash -c "$COMMAND"
  if healthy; then
    ok "restarted ($COMMAND) and healthy"
    exit 0
  fi
  fail "restarted ($COMMAND) but the service is not healthy"
  exit 1
fi

[[ -n "$IMAGE" ]] || { fail "--image is required for $TARGET"; usage >&2; exit 2; }
if [[ -z "$DEPLOYMENTS" ]]; then
  if [[ "$TARGET" == kubectl ]]; then
    DEPLOYMENTS="ai-pipeline triage-agent ticket-creation-agent github-api-agent coordinator-agent"
  else
    DEPLOYMENTS="api triage-agent ticket-creation-agent github-api-agent coordinator-agent"
  fi
fi

updated=()
declare -A previous=()

update_one() {  # update_one NAME: set the image and wait for it; non-zero when it fails
  local d="$1"
  case "$TARGET" in
    kubectl)
      kubectl -n "$NAMESPACE" set image "deployment/$d" "${CONTAINER:-$d}=$IMAGE" || return 1
      kubectl -n "$NAMESPACE" rollout status "deployment/$d" --timeout="$TIMEOUT" || return 1
      ;;
    docker)
      local id
      id="$(docker compose -f "$COMPOSE_FILE" ps -q "$d" | head -n 1)"
      [[ -n "$id" ]] && previous[$d]="$(docker inspect -f '{{.Config.Image}}' "$id")"
      AI_PIPELINE_IMAGE="$IMAGE" docker compose -f "$COMPOSE_FILE" up -d --no-deps --wait "$d" \
        || return 1
      ;;
  esac
}

roll_back() {  # every deployment this run touched, newest first
  local i d
  for ((i = ${#updated[@]} - 1; i >= 0; i--)); do
    d="${updated[$i]}"
    case "$TARGET" in
      kubectl)
        if kubectl -n "$NAMESPACE" rollout undo "deployment/$d" \
          && kubectl -n "$NAMESPACE" rollout status "deployment/$d" --timeout="$TIMEOUT"; then
          ok "rolled back $d"
        else
          fail "rollback of $d did not complete: kubectl -n $NAMESPACE rollout history deployment/$d"
        fi
        ;;
      docker)
        if [[ -z "${previous[$d]:-}" ]]; then
          fail "no previous image known for $d: roll it back by hand"
        elif AI_PIPELINE_IMAGE="${previous[$d]}" docker compose -f "$COMPOSE_FILE" up -d --no-deps "$d"; then
          ok "rolled back $d to ${previous[$d]}"
        else
          fail "rollback of $d to ${previous[$d]} failed"
        fi
        ;;
    esac
  done
}

for d in $DEPLOYMENTS; do
  echo "== $d → $IMAGE"
  updated+=("$d")
  if ! update_one "$d"; then
    fail "$d: the rollout did not complete; rolling back"
    roll_back
    exit 1
  fi
  if ! healthy; then
    fail "$d: rolled out but the API is not healthy; rolling back"
    roll_back
    exit 1
  fi
  ok "$d updated and healthy"
done
ok "rolling update to $IMAGE done: $DEPLOYMENTS"
