#!/usr/bin/env bash
# The main job: serve the example functions (examples/template.yaml) over Lambda's API and
# a ZeroMQ endpoint, invoke them as clients do, print the bill, and stop the server.
# Run from anywhere; set FASTINVOKE to the command to use (default: fastinvoke on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
fastinvoke=${FASTINVOKE:-fastinvoke}
state=$(mktemp -d)
port=${PORT:-3001}
$fastinvoke serve --template examples/template.yaml --port "$port" \
    --zmq "ipc://$state/zmq" --state-dir "$state" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server; rm -rf "$state"' EXIT

http=http://127.0.0.1:$port
$fastinvoke invoke add --endpoint "$http" --payload '{"value1": 10, "value2": 20}' --log-type Tail
$fastinvoke invoke log --endpoint "$http" --payload '{"message": "hello from fastinvoke"}' \
    --log-type Tail
if command -v node >/dev/null; then
    $fastinvoke invoke node-add --endpoint "$http" --payload '{"value1": 10, "value2": 20}'
    $fastinvoke invoke node-log --endpoint "$http" --payload '{"message": "hello from node"}' \
        --log-type Tail
fi
$fastinvoke invoke add --endpoint "ipc://$state/zmq" --payload '{"value1": 1, "value2": 2}'
$fastinvoke invoke log --endpoint "$http" --payload '{"message": "later"}' \
    --invocation-type Event
kill -TERM $server && wait $server   # stops gracefully; the meters are written down
trap 'rm -rf "$state"' EXIT
$fastinvoke billing --state-dir "$state"
