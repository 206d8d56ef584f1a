#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZTIME, default 20s each).
# Go takes one -fuzz target per invocation, so each runs on its own. The
# seed corpora in testdata/fuzz also run as plain tests in `go test ./...`.
# A failing input is written to the package's testdata/fuzz/<FuzzName>/:
# check it in with the fix, as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-20s}
targets=(
	"./internal/invoke/ FuzzInvokeRequest"
	"./internal/invoke/ FuzzFunctionName"
	"./internal/invoke/ FuzzClientContext"
	"./internal/httpfront/ FuzzRequestToEvent"
	"./internal/httpfront/ FuzzResultToResponse"
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "== fuzz $name ($pkg, $fuzztime)"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
