#!/usr/bin/env bash
# The project's test command (README.md): formatting, vet, staticcheck, the race-enabled test
# suite, then every fuzz target for a short time on top of its checked-in seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed: $bad"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed (.ci/run installs it)"; fi

echo "== go test -race"
go test -race -count=1 ./...

echo "== fuzz (${FUZZTIME} each)"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $target"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" >/tmp/fuzz.log 2>&1 || { cat /tmp/fuzz.log; exit 1; }
  done
done
echo "== all tests passed"
