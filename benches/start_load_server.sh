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
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
LOAD_DIR="$work" taskset -c 0 "$target_dir/release/examples/load_server" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
base=$(sed -n 's/.*listening on //p' "$work/server.log")
