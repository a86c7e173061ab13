#!/usr/bin/env bash
# Vendors the web console's third-party assets into src/ai_pipeline/console/static/vendor/, so
# the console needs no CDN and no build step: Chart.js's UMD file and its licence, from the npm
# registry at a pinned version, checked against the tarball's sha256 recorded here.
# Run it after changing the version (and the sha256: `npm pack chart.js@X` then `sha256sum`);
# its output is committed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
vendor="$here/../src/ai_pipeline/console/static/vendor"

CHARTJS_VERSION=4.6.1
CHARTJS_SHA256=9345dacdf4bb4c5d40321f4b9aafab6fe676d37a534fc0bc2d17c4c4e29c4f00

command -v npm >/dev/null 2>&1 || { echo "npm is needed to fetch chart.js" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "chart.js@$CHARTJS_VERSION" >/dev/null)
tarball="$work/chart.js-$CHARTJS_VERSION.tgz"
echo "$CHARTJS_SHA256  $tarball" | sha256sum --check --quiet - || {
  echo "chart.js-$CHARTJS_VERSION.tgz does not match the recorded sha256" >&2
  exit 1
}
tar -xzf "$tarball" -C "$work" package/dist/chart.umd.js package/LICENSE.md

mkdir -p "$vendor"
install -m 0644 "$work/package/dist/chart.umd.js" "$vendor/chart.umd.js"
install -m 0644 "$work/package/LICENSE.md" "$vendor/chart.js-LICENSE.md"
echo "vendored chart.js $CHARTJS_VERSION into ${vendor#"$here/../"}"
