#!/usr/bin/env bash
# Security checks of a running deployment; exits 1 on any finding:
#   - no secret in the service log (--log FILE, repeatable): token patterns (our API keys,
#     GitHub, AWS, Slack, OpenAI-style keys, private keys, bearer tokens) and the literal values of
#     AI_PIPELINE_GITHUB_TOKEN / AI_PIPELINE_LLM_API_KEY; matches are shown masked
#   - the API leaks no stack trace: malformed JSON and an unknown request get the error
#     envelope {"error": {code, message, …}} and no "Traceback"
#   - files holding secrets (.env, --env-file FILE) are not readable by group or others
#   - AI_PIPELINE_REDACT is not `none`
#   - a Redis state URL that is not loopback carries a password
#   - a Kafka bus that is not loopback uses TLS (security.protocol SSL or SASL_SSL in
#     AI_PIPELINE_KAFKA_CONFIG)
#   - dependencies: `pip-audit` when installed (skipped with a note otherwise)
#   - an https:// AI_PIPELINE_URL: the certificate it serves is valid for at least
#     --cert-days N more days (14 by default); a self-signed one is trusted through
#     CURL_CA_BUNDLE=FILE
#
# usage: scripts/security-check.sh [--target …] [--log FILE]… [--env-file FILE]…
#          [--cert-days N] [--no-audit]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_target "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
LOGS=()
ENV_FILES=()
AUDIT=1
CERT_DAYS=14
while [[ $# -gt 0 ]]; do
  case "$1" in
    --log) LOGS+=("$2"); shift 2 ;;
    --env-file) ENV_FILES+=("$2"); shift 2 ;;
    --no-audit) AUDIT=0; shift ;;
    --cert-days) CERT_DAYS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done
[[ -f .env ]] && ENV_FILES+=(.env)

findings=0
finding() { fail "$*"; findings=$((findings + 1)); }

# --- Secrets in logs.
TOKEN_PATTERN='aip_[A-Za-z0-9_-]{40,}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|[Bb]earer [A-Za-z0-9._~+/-]{20,}|://[^:/@ ]*:[^@/ ]{3,}@'
mask() { sed -E 's/([A-Za-z0-9_:/-]{4})[^ "]{4,}/\1****/g' | cut -c1-160; }
if [[ ${#LOGS[@]} -eq 0 ]]; then
  warn "no --log given: secrets in logs not checked"
fi
for log in "${LOGS[@]+"${LOGS[@]}"}"; do
  if [[ ! -r "$log" ]]; then
    finding "log $log cannot be read"
    continue
  fi
  hits="$(grep -nE -- "$TOKEN_PATTERN" "$log" || true)"
  for name in AI_PIPELINE_GITHUB_TOKEN AI_PIPELINE_LLM_API_KEY; do
    value="${!name:-}"
    if [[ ${#value} -ge 8 ]]; then
      hits+="$(grep -nF -- "$value" "$log" || true)"
    fi
  done
  if [[ -n "$hits" ]]; then
    finding "secrets in $log ($(grep -c . <<<"$hits") lines), e.g.:"
    head -n 3 <<<"$hits" | mask >&2
  else
    ok "no secret in $log"
  fi
done

# --- No stack traces from the API.
post_malformed() {
  case "$TARGET" in
    local)
      curl -sS --max-time 10 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary '{"id": "x", "title": ' "$AI_PIPELINE_URL/api/v1/bug-reports"
      ;;
    *)
      local code='import urllib.request, urllib.error
req = urllib.request.Request("http://localhost:8000/api/v1/bug-reports", data=b"{\"id\": \"x\", \"title\": ",
                             headers={"Content-Type": "application/json"}, method="POST")
try:
    r = urllib.request.urlopen(req, timeout=10); print(r.read().decode()); print(r.status)
except urllib.error.HTTPError as e:
    print(e.read().decode()); print(e.code)'
      if [[ "$TARGET" == docker ]]; then
        docker compose -f "$COMPOSE_FILE" exec -T api python -c "$code"
      else
        kubectl -n "$NAMESPACE" exec deploy/ai-pipeline -- python -c "$code"
      fi
      ;;
  esac
}
check_envelope() {  # check_envelope WHAT STATUS BODY
  local what="$1" status="$2" body="$3"
  if grep -qE 'Traceback|File "[^"]+", line [0-9]+' <<<"$body"; then
    finding "$what: the answer carries a stack trace"
  elif [[ ! "$status" =~ ^4[0-9][0-9]$ ]]; then
    finding "$what: HTTP $status, expected a 4xx"
  elif ! jq -e '.error.code and .error.message' >/dev/null 2>&1 <<<"$body"; then
    finding "$what: HTTP $status without the error envelope: $(cut -c1-200 <<<"$body")"
  else
    ok "$what: HTTP $status $(jq -r .error.code <<<"$body"), no stack trace"
  fi
}
if answer="$(post_malformed)"; then
  check_envelope "malformed JSON" "$(tail -n 1 <<<"$answer")" "$(sed '$d' <<<"$answer")"
else
  finding "the API at $AI_PIPELINE_URL does not answer POST /api/v1/bug-reports"
fi
if [[ "$TARGET" == local ]]; then
  answer="$(curl -sS --max-time 10 -w '\n%{http_code}' "$AI_PIPELINE_URL/api/v1/requests/no-such-request/status" || true)"
  check_envelope "unknown request" "$(tail -n 1 <<<"$answer")" "$(sed '$d' <<<"$answer")"
fi

# --- Certificate expiry: an expired certificate is an outage for every client at once.
check_certificate() {
  local hostport="${AI_PIPELINE_URL#https://}" pem
  hostport="${hostport%%/*}"
  [[ "$hostport" == *:* ]] || hostport="$hostport:443"
  if ! pem="$(openssl s_client -connect "$hostport" -servername "${hostport%:*}" \
      </dev/null 2>/dev/null | openssl x509 2>/dev/null)"; then
    finding "no TLS certificate could be read from $hostport"
    return
  fi
  local expires
  expires="$(openssl x509 -noout -enddate <<<"$pem" | cut -d= -f2)"
  if openssl x509 -noout -checkend $((CERT_DAYS * 86400)) <<<"$pem" >/dev/null; then
    ok "TLS certificate of $hostport valid until $expires (more than $CERT_DAYS days)"
  else
    finding "TLS certificate of $hostport expires within $CERT_DAYS days ($expires): renew it"
  fi
}
if [[ "$AI_PIPELINE_URL" == https://* ]]; then
  check_certificate
fi

# --- Secret files.
for file in "${ENV_FILES[@]+"${ENV_FILES[@]}"}"; do
  if [[ ! -e "$file" ]]; then
    finding "env file $file does not exist"
    continue
  fi
  mode="$(stat -c '%a' "$file")"
  if (( 8#$mode & 8#077 )); then
    finding "$file is mode $mode: readable beyond its owner (chmod 600 $file)"
  else
    ok "$file is mode $mode"
  fi
done

# --- Settings.
redact="$(setting redact)"
if [[ "${redact,,}" == none || -z "$redact" ]]; then
  finding "AI_PIPELINE_REDACT is '$redact': secrets and personal data in reports reach the tracker"
else
  ok "AI_PIPELINE_REDACT=$redact"
fi

is_loopback() { [[ "$1" =~ ^(localhost|127\.[0-9.]+|\[?::1\]?)$ ]]; }
host_of() {  # host of a URL or host:port
  local rest="${1#*://}"
  rest="${rest##*@}"
  rest="${rest%%/*}"
  if [[ "$rest" == \[* ]]; then echo "${rest%%]*}]"; else echo "${rest%%:*}"; fi
}

state="$(setting state)"
if [[ "$state" == redis://* || "$state" == rediss://* ]]; then
  host="$(host_of "$state")"
  userinfo="${state#*://}"
  if [[ "$userinfo" == */* ]]; then userinfo="${userinfo%%/*}"; fi
  if is_loopback "$host"; then
    ok "Redis on loopback ($host)"
  elif [[ "$userinfo" != *:*@* ]]; then
    finding "Redis at $host is not loopback and its URL has no password (redis://:PASSWORD@$host…)"
  else
    ok "Redis at $host with a password"
    [[ "$state" == rediss://* ]] || warn "Redis at $host without TLS (rediss://) — fine on a private network only"
  fi
fi

bus="$(setting bus)"
if [[ "$bus" == kafka://* ]]; then
  IFS=',' read -r -a brokers <<<"${bus#kafka://}"
  remote=""
  for b in "${brokers[@]}"; do
    is_loopback "$(host_of "$b")" || remote="$b"
  done
  protocol="$(setting kafka_config | jq -r '."security.protocol" // "PLAINTEXT"')"
  if [[ -z "$remote" ]]; then
    ok "Kafka on loopback"
  elif [[ "${protocol^^}" == SSL || "${protocol^^}" == SASL_SSL ]]; then
    ok "Kafka at $remote over $protocol"
  else
    finding "Kafka at $remote over $protocol: set AI_PIPELINE_KAFKA_CONFIG='{\"security.protocol\": \"SASL_SSL\", …}'"
  fi
fi

# --- Dependencies.
auditor=""
if [[ -x "$REPO/.venv/bin/pip-audit" ]]; then
  auditor="$REPO/.venv/bin/pip-audit"
elif command -v pip-audit >/dev/null 2>&1; then
  auditor="$(command -v pip-audit)"
fi
if [[ "$AUDIT" == 0 ]]; then
  echo "note: dependency audit skipped (--no-audit)"
elif [[ -z "$auditor" ]]; then
  echo "note: pip-audit not installed: dependency audit skipped (pip install pip-audit to enable)"
elif "$auditor" --progress-spinner off --skip-editable; then
  ok "pip-audit: no known vulnerability"
else
  finding "pip-audit reports vulnerable dependencies (above)"
fi

if [[ "$findings" -gt 0 ]]; then
  fail "$findings finding(s)"
  exit 1
fi
ok "no finding"
