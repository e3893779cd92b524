#!/usr/bin/env bash
# The load bench: the load_server example pinned to core 0, wrk pinned to
# core 1, on 127.0.0.1. Every scenario runs $ROUNDS times (default 3) for
# $DURATION seconds (default 5), the scenarios interleaved round by round so
# that a noisy neighbour hits them alike; the median round is reported.
# Prints requests per second, p50 and p99 per scenario, and each as a ratio
# to the no-auth route of the same run.
#
#   benches/load.sh            # or: DURATION=10 ROUNDS=5 benches/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}

. benches/start_load_server.sh
user=$(cat "$work/user.token")
service=$(cat "$work/service.token")
dpop_token=$(cat "$work/dpop.token")

run() { # name path [headers...]
  local name=$1 path=$2; shift 2
  local out
  # The URL first: a script's arguments follow `--` at the end.
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$base$path" "$@")
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  echo "$name|$rps|$p50|$p99|${non2xx:-0}" >> "$work/results"
}

U=(-H "Authorization: Bearer $user")
S=(-H "Service-Authorization: Bearer $service")
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "$base/noauth" > /dev/null # warm-up
for _ in $(seq "$ROUNDS"); do
  run "no auth" /noauth
  run "no auth, user token header sent" /noauth "${U[@]}"
  run "no auth, both token headers sent" /noauth "${U[@]}" "${S[@]}"
  run "no auth, a no-op route_layer, user header sent" /noop-layer "${U[@]}"
  run "naive jsonwebtoken::decode layer" /naive "${U[@]}"
  run "one RS256 token, cached" /one "${U[@]}"
  # Fresh proofs for this round (more than one core can check in it).
  curl -s -X POST "$base/dpop/proofs/$((20000 * DURATION))" > /dev/null
  run "one RS256 token, cached, DPoP proof (ES256) each request" /dpop \
    -s benches/dpop.lua -- "$work/dpop.proofs" "$dpop_token"
  run "one RS256 token, cached, bearer on the DPoP route" /dpop "${U[@]}"
  curl -s -X POST "$base/metrics/on" > /dev/null
  run "one RS256 token, cached, metrics on" /one "${U[@]}"
  run "no auth, user token header sent, metrics on" /noauth "${U[@]}"
  curl -s -X POST "$base/metrics/off" > /dev/null
  curl -s -X POST "$base/spans/on" > /dev/null
  run "one RS256 token, cached, request span on" /one "${U[@]}"
  curl -s -X POST "$base/metrics/on" > /dev/null
  run "one RS256 token, cached, metrics and span on" /one "${U[@]}"
  curl -s -X POST "$base/metrics/off" > /dev/null
  curl -s -X POST "$base/spans/off" > /dev/null
  run "one RS256 token, uncached" /one-uncached "${U[@]}"
  run "user + service tokens, cached" /two "${U[@]}" "${S[@]}"
  run "user + service tokens, uncached" /two-uncached "${U[@]}" "${S[@]}"
  curl -s -X POST "$base/jwks-mode/normal" > /dev/null
  run "JWKS keys, refreshed every 1 s, uncached" /jwks "${U[@]}"
  curl -s -X POST "$base/jwks-mode/hang" > /dev/null
  run "JWKS keys, endpoint hanging, uncached" /jwks "${U[@]}"
  curl -s -X POST "$base/jwks-mode/down" > /dev/null
  run "JWKS keys, endpoint failing, uncached" /jwks "${U[@]}"
  if [ -n "$authzen_url" ]; then
    run "one RS256 token, cached, AuthZEN decision from Cerbos" /authzen "${U[@]}"
    run "one RS256 token, cached, AuthZEN decision cached" /authzen-cached "${U[@]}"
  fi
done

python3 - "$work/results" "$DURATION" "$CONNECTIONS" "$ROUNDS" <<'PY'
import sys
runs = {}
for line in open(sys.argv[1]):
    name, *rest = line.rstrip("\n").split("|")
    runs.setdefault(name, []).append(rest)
# The median round of each scenario, by requests per second.
rows = []
for name, rounds in runs.items():
    rounds.sort(key=lambda r: float(r[0]))
    rows.append([name] + rounds[len(rounds) // 2])
def us(v):
    for unit, f in (("us", 1), ("ms", 1000), ("s", 1e6)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)
by_name = {r[0]: float(r[1]) for r in rows}
base = by_name["no auth"]
naive = by_name["naive jsonwebtoken::decode layer"]
print(f"wrk -t1 -c{sys.argv[3]} -d{sys.argv[2]}s, median of {sys.argv[4]} interleaved rounds, "
      "server on core 0, wrk on core 1\n")
print("| scenario | req/s | vs no auth | vs no auth, same headers | vs naive | p50 | p99 | non-2xx |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for i, (name, rps, p50, p99, bad) in enumerate(rows):
    r = float(rps)
    same = (base if i == 0 else by_name["no auth, both token headers sent"]
            if "service" in name or "both" in name else by_name["no auth, user token header sent"])
    print(f"| {name} | {r:,.0f} | {r / base:.3f} | {r / same:.3f} | {r / naive:.2f}x "
          f"| {us(p50):.0f} µs | {us(p99):.0f} µs | {bad} |")
on = by_name.get("one RS256 token, cached, metrics on")
if on:
    off = by_name["one RS256 token, cached"]
    # The time metrics add to a request, as a share of a no-auth request's.
    cost = base / on - base / off
    print(f"\nmetrics on the cached path: {on / off:.3f} of the same route with metrics off; "
          f"they add {cost * 100:+.1f} % of a no-auth request's time")
for label, key in (("the request span", "one RS256 token, cached, request span on"),
                   ("metrics and the span", "one RS256 token, cached, metrics and span on")):
    both = by_name.get(key)
    if both:
        off = by_name["one RS256 token, cached"]
        print(f"{label} on the cached path: {both / off:.3f} of the same route with them off")
PY
