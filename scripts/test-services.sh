#!/usr/bin/env bash
# Installs the Debian tools the tests (or, with "bench", the benchmarks) drive for real (chromium:
# the web console's browser tests, through Playwright's executable_path), and
# fetches the Kafka jars (cached in ~/.cache/ai-pipeline) so the first Kafka test pays no Maven.
# Idempotent and quiet when everything is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need=(curl jq promtool redis-server java mvn shellcheck chromium)
if [[ "${1:-}" == "bench" ]]; then
  need+=(wrk)
fi

# Debian package per tool, where the names differ.
declare -A package=([promtool]=prometheus [java]=default-jre-headless [mvn]=maven)
missing=()
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]:-$tool}")
done

if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
    echo "missing ${missing[*]} and cannot install them (not root, no sudo)" >&2
    exit 1
  fi
  SUDO=$([[ $(id -u) -eq 0 ]] && echo "" || echo sudo)
  echo "installing ${missing[*]} from Debian"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Kafka's jars from Maven Central (scripts/kafka/pom.xml); silent when already cached.
python3 "$here/local_services.py" install-kafka

# kustomize, to check the test suite's rendering of deploy/k8s against the real thing: built
# once from the Go module proxy (Go ships with the machine), cached between runs.
KUSTOMIZE_VERSION=v5.7.1
kustomize_bin="${XDG_CACHE_HOME:-$HOME/.cache}/ai-pipeline/kustomize-$KUSTOMIZE_VERSION"
if [[ ! -x "$kustomize_bin/kustomize" ]]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "go is needed to build kustomize $KUSTOMIZE_VERSION and is not installed" >&2
    exit 1
  fi
  echo "building kustomize $KUSTOMIZE_VERSION with go install (once)"
  GOBIN="$kustomize_bin" GOFLAGS=-mod=mod \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

# Prism (a validating mock server) and GitHub's OpenAPI description, for the contract test of
# the GitHub tracker (tests/integration/test_github_contract.py): installed once from the npm
# registry, each pinned version into its own cache folder. Prism 5.14.2 is the newest that runs
# on Node 20.
PRISM_VERSION=5.14.2
GITHUB_OPENAPI_VERSION=23.0.2
npm_cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/ai-pipeline"
npm_install() {  # npm_install FOLDER PACKAGE@VERSION FILE-IT-LEAVES
  local folder="$npm_cache_dir/$1"
  [[ -e "$folder/$3" ]] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is needed to install $2 and is not installed" >&2
    exit 1
  fi
  echo "installing $2 with npm (once)"
  mkdir -p "$folder"
  npm install --prefix "$folder" --no-audit --no-fund --loglevel=error --save-exact "$2" >/dev/null
}
npm_install "prism-$PRISM_VERSION" "@stoplight/prism-cli@$PRISM_VERSION" node_modules/.bin/prism
# recheck, the ReDoS checker tests/unit/test_linear_patterns.py runs over every regular
# expression of the package (its npm package brings a native Linux binary).
RECHECK_VERSION=4.5.0
npm_install "recheck-$RECHECK_VERSION" "recheck@$RECHECK_VERSION" node_modules/recheck/package.json
npm_install "octokit-openapi-$GITHUB_OPENAPI_VERSION" "@octokit/openapi@$GITHUB_OPENAPI_VERSION" \
  node_modules/@octokit/openapi/generated/api.github.com.json
