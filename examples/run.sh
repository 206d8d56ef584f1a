#!/usr/bin/env bash
# Runs the bundled example end to end: builds lambdabox and the Go example
# function, serves it with `lambdabox rie` on 127.0.0.1:9000, invokes it with
# curl twice, prints what came back and the platform's log, then stops.
# Needs only Go and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

export CGO_ENABLED=0
go build -o "$work/lambdabox" ./cmd/lambdabox
go build -o "$work/bootstrap" ./examples/hello-go

"$work/lambdabox" rie --runtime-interface-emulator-address 127.0.0.1:9000 \
	--function-name hello --timeout 10s "$work/bootstrap" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 50); do
	(exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null && break
	sleep 0.1
done

url=http://127.0.0.1:9000/2015-03-31/functions/hello/invocations
echo "--- invoke 1 (cold start):"
curl -sS -i -d '{"name":"lambdabox"}' "$url"
echo
echo "--- invoke 2 (warm):"
curl -sS -d '{}' "$url"
echo
kill -TERM "$pid"
wait "$pid"
echo "--- lambdabox output:"
cat "$work/log"
