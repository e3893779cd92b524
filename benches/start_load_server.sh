# Sourced by load.sh and faults.sh: installs wrk if missing, builds the
# load_server example, starts it pinned to core 0, and sets `work` (a
# temporary directory holding its tokens), `server` (its pid) and `base`
# (its URL). The server is stopped and `work` removed on exit.
if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk
fi
cargo build --quiet --release --example load_server
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

work=$(mktemp -d)
# A real Cerbos PDP for the AuthZEN routes, when scripts/test.sh installed
# it; on core 1, beside wrk (the server's core stays the server's).
cerbos_bin=tests/support/cerbos/node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64
cerbos=""
authzen_url=""
if [ -x "$cerbos_bin" ]; then
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  cerbos_port=$(free_port)
  # Its HTTP gateway calls its gRPC port: a real one, not 0.
  printf 'server:\n  httpListenAddr: "127.0.0.1:%s"\n  grpcListenAddr: "127.0.0.1:%s"\nstorage:\n  driver: disk\n  disk:\n    directory: %s\n    watchForChanges: false\ntelemetry:\n  disabled: true\n' \
    "$cerbos_port" "$(free_port)" "$PWD/tests/support/cerbos/policies" > "$work/cerbos.yaml"
  taskset -c 1 "$cerbos_bin" server --config="$work/cerbos.yaml" > "$work/cerbos.log" 2>&1 &
  cerbos=$!
  authzen_url="http://127.0.0.1:$cerbos_port"
  for _ in $(seq 100); do curl -sf "$authzen_url/_cerbos/health" > /dev/null && break; sleep 0.1; done
fi
trap 'kill $server $cerbos 2>/dev/null || true; rm -rf "$work"' EXIT
AUTHZEN_URL="$authzen_url" LOAD_DIR="$work" taskset -c 0 "$target_dir/release/examples/load_server" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
base=$(sed -n 's/.*listening on //p' "$work/server.log")
