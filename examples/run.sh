#!/usr/bin/env bash
# Runs the bundled example end to end: `lambdabox serve` on
# examples/template.yaml (a Python, a Node.js and a Go function on the
# process driver), then invokes each function with curl and with the AWS CLI,
# calls the Go function's URL and the Python function's API route, prints
# what came back and the functions' log lines, and stops.
#
# Needs Go and curl, and for the functions:
#   Python   python3 with awslambdaric and six:  pip install awslambdaric six
#   Node.js  node (20+) and npm; this script runs `npm ci` in examples/hello-node
#            (its dependency, ms) and, unless LAMBDABOX_NODE_RIC names a folder
#            where aws-lambda-ric is installed already, `npm install aws-lambda-ric`
#            into a cache folder (its native addon needs cmake, autoconf, automake,
#            libtool, g++ and make to build).
#   Go       nothing more: lambdabox serve builds examples/hello-go itself.
# The AWS CLI part runs when `aws` is on PATH, with dummy credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -rf "$work"' EXIT

export CGO_ENABLED=0
go build -o "$work/lambdabox" ./cmd/lambdabox

# The Node.js Runtime Interface Client, shared by every Node function.
ric=${LAMBDABOX_NODE_RIC:-}
if [ -z "$ric" ]; then
	if [ -x cmd/lambdabox/testdata/node/node_modules/.bin/aws-lambda-ric ]; then
		ric=cmd/lambdabox/testdata/node # installed by .ci/run
	else
		ric=${XDG_CACHE_HOME:-$HOME/.cache}/lambdabox/node-ric
		if [ ! -x "$ric/node_modules/.bin/aws-lambda-ric" ]; then
			mkdir -p "$ric"
			(cd "$ric" && npm install --no-audit --no-fund aws-lambda-ric@3.3.0)
		fi
	fi
fi
(cd examples/hello-node && npm ci --no-audit --no-fund --silent)

"$work/lambdabox" serve -t examples/template.yaml --addr 127.0.0.1:9001 \
	--api-address 127.0.0.1:3000 --node-ric "$ric" --state-dir "$work/state" >"$work/log" 2>"$work/err" &
pid=$!
for _ in $(seq 600); do
	grep -q '^FUNCTION' "$work/err" 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/err"; exit 1; }
	sleep 0.1
done
cat "$work/err"

for fn in HelloPython HelloNode HelloGo; do
	echo "--- curl $fn:"
	curl -sS -d '{"name":"curl"}' "http://127.0.0.1:9001/2015-03-31/functions/$fn/invocations"
	echo
done
echo "--- the Go function's URL:"
curl -sS http://127.0.0.1:9002/
echo
echo "--- the Python function's API route:"
curl -sS http://127.0.0.1:3000/hello
echo

if command -v aws >/dev/null; then
	export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=
	binfmt=
	aws --version 2>&1 | grep -q '^aws-cli/1' || binfmt="--cli-binary-format raw-in-base64-out"
	for fn in HelloPython HelloNode HelloGo; do
		echo "--- aws lambda invoke $fn:"
		# shellcheck disable=SC2086
		aws lambda invoke --endpoint-url http://127.0.0.1:9001 --function-name "$fn" \
			--payload '{"name":"aws-cli"}' $binfmt "$work/out.json" >/dev/null
		cat "$work/out.json"
		echo
	done
else
	echo "--- (aws not on PATH: skipping the AWS CLI)"
fi

kill -TERM "$pid"
wait "$pid" || true
pid=
echo "--- the functions' log lines:"
cat "$work/log"
