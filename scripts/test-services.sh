#!/usr/bin/env bash
# Installs the Debian tools the tests (or, with "bench", the benchmarks) drive for real.
# Idempotent and quiet when everything is already there.
set -euo pipefail

need=(curl jq promtool)
if [[ "${1:-}" == "bench" ]]; then
  need+=(wrk)
fi

# Debian package per tool, where the names differ.
declare -A package=([promtool]=prometheus)
missing=()
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]:-$tool}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
  echo "missing ${missing[*]} and cannot install them (not root, no sudo)" >&2
  exit 1
fi
SUDO=$([[ $(id -u) -eq 0 ]] && echo "" || echo sudo)
echo "installing ${missing[*]} from Debian"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
