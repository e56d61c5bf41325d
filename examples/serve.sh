#!/usr/bin/env bash
# The main job: serve the example functions (examples/template.yaml) over Lambda's API, a
# ZeroMQ endpoint and the template's API Gateway route, invoke them as clients do, print
# the bill, and stop the server.
# Run from anywhere; set FASTINVOKE to the command to use (default: fastinvoke on PATH),
# PORT to the Lambda API's port and API_PORT to the API routes' (default: any free ones;
# the server says which).
set -euo pipefail
cd "$(dirname "$0")/.."
fastinvoke=${FASTINVOKE:-fastinvoke}
state=$(mktemp -d)
server=
stop() {  # on any exit: the server if it still runs, then its state
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" || true
    fi
    rm -rf "$state"
}
trap stop EXIT

# The clients talk to the address this server prints when it serves, read from its
# stdout, never to whatever else may hold a port.  A port already taken stops it with one
# line saying so.
mkfifo "$state/out"
$fastinvoke serve --template examples/template.yaml --port "${PORT:-0}" \
    --api-port "${API_PORT:-0}" --zmq "ipc://$state/zmq" --state-dir "$state" >"$state/out" &
server=$!
exec 3<"$state/out"
http=
api=
while IFS= read -r line <&3; do
    echo "$line"
    if [[ $line =~ ^"fastinvoke: serving the Lambda API on "(http://[^ ]+) ]]; then
        http=${BASH_REMATCH[1]}
    fi
    if [[ $line =~ ^"fastinvoke: serving "[0-9]+" API routes on "(http://[^ ]+) ]]; then
        api=${BASH_REMATCH[1]}
    fi
    if [[ $line == "fastinvoke: serving Invoke over ZeroMQ on "* ]]; then
        break
    fi
done
if [ -z "$http" ] || [ -z "$api" ] \
        || [[ $line != "fastinvoke: serving Invoke over ZeroMQ on "* ]]; then
    status=0
    wait "$server" || status=$?
    server=
    echo "$0: fastinvoke serve did not start (exit status $status)" >&2
    exit $((status ? status : 1))
fi
cat <&3 &  # whatever else the server prints
relay=$!
exec 3<&-

$fastinvoke invoke add --endpoint "$http" --payload '{"value1": 10, "value2": 20}' --log-type Tail
$fastinvoke invoke log --endpoint "$http" --payload '{"message": "hello from fastinvoke"}' \
    --log-type Tail
if command -v node >/dev/null; then
    $fastinvoke invoke node-add --endpoint "$http" --payload '{"value1": 10, "value2": 20}'
    $fastinvoke invoke node-log --endpoint "$http" --payload '{"message": "hello from node"}' \
        --log-type Tail
fi
$fastinvoke invoke add --endpoint "ipc://$state/zmq" --payload '{"value1": 1, "value2": 2}'
# The template's HTTP API route, as a browser or curl reaches it.
python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
    "$api/hello/fastinvoke"
$fastinvoke invoke log --endpoint "$http" --payload '{"message": "later"}' \
    --invocation-type Event
kill -TERM "$server" && wait "$server"   # stops gracefully; the meters are written down
server=
wait "$relay"
$fastinvoke billing --state-dir "$state"
