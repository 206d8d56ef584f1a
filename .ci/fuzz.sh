#!/usr/bin/env bash
# Runs every fuzz target for a bounded number of executions (each about 10 s
# on a 2-core machine; FUZZSCALE multiplies them). Go takes one -fuzz target
# per invocation, so each runs on its own. The seed corpora in testdata/fuzz
# also run as plain tests in `go test ./...`.
#
# The budgets are counts (-fuzztime Nx), not durations: with a duration, Go
# 1.26's fuzz coordinator can report its own deadline as a failure
# ("context deadline exceeded", no failing input; golang/go#75804, fixed in
# Go 1.27). A count has no deadline to race.
#
# A failing input is written to the package's testdata/fuzz/<FuzzName>/:
# check it in with the fix, as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

scale=${FUZZSCALE:-1}
targets=(
	"./internal/invoke/ FuzzInvokeRequest 100000"
	"./internal/invoke/ FuzzFunctionName 100000"
	"./internal/invoke/ FuzzClientContext 100000"
	"./internal/httpfront/ FuzzRequestToEvent 50000"
	"./internal/httpfront/ FuzzResultToResponse 100000"
	"./internal/template/ FuzzParse 50000"
	"./internal/controlplane/ FuzzRequests 50000"
	"./internal/sandbox/container/ FuzzParseOwner 100000"
	"./internal/sandbox/container/ FuzzParseMemcg 50000"
)
for t in "${targets[@]}"; do
	read -r pkg name execs <<<"$t"
	n=$((execs * scale))
	echo "== fuzz $name ($pkg, ${n} executions)"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "${n}x" -timeout 10m "$pkg"
done
