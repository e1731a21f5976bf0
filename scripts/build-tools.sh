#!/usr/bin/env bash
# Builds the test-only servers pinned in tools/ (each its own Go module, so that their
# dependencies never enter the agent's go.mod) into $(go env GOPATH)/bin, skipping those
# already there. Tests that need one skip with a reason when it is missing.
#
#   victoria-metrics  VictoriaMetrics single-node v1.154.1 (tools/victoriametrics): receives
#                     the push export (OTLP/HTTP and remote write) in cmd/pktvisord's
#                     end-to-end test. It needs Go 1.27: GOTOOLCHAIN makes the go command fetch
#                     that toolchain from the module proxy. About 1.5 min on 2 cores, cold.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(go env GOPATH)/bin"
mkdir -p "$bin"

if [ -x "$bin/victoria-metrics" ]; then
  echo "victoria-metrics: already in $bin"
else
  echo "victoria-metrics: building into $bin"
  start=$(date +%s)
  (cd tools/victoriametrics &&
    CGO_ENABLED=0 GOTOOLCHAIN=go1.27.3 go build -trimpath -o "$bin/victoria-metrics.tmp" \
      github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics)
  mv "$bin/victoria-metrics.tmp" "$bin/victoria-metrics"
  echo "victoria-metrics: built in $(( $(date +%s) - start )) s"
fi
