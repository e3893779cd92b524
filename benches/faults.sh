#!/usr/bin/env bash
# Faults under load: $DURATION seconds (default 60) at full rate on
# 127.0.0.1 with a mix of valid, expired, forged and unknown-kid tokens
# (60/10/10/20 %), while the JWKS endpoint is stopped, restarted, made to
# hang and made to fail. The load_server example runs pinned to core 0, wrk
# pinned to core 1. Reports statuses per token class (flagging any status
# that is not expected), the server-side p50/p99 of valid requests, and the
# server's memory at start and end.
#
#   benches/faults.sh            # or: DURATION=30 benches/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}

. benches/start_load_server.sh
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }

cat > "$work/mix.lua" <<LUA
local dir = "$work"
local classes = { {"valid", 60}, {"expired", 10}, {"forged", 10}, {"unknown_kid", 20} }
local tokens = {}
for _, c in ipairs(classes) do
  tokens[c[1]] = {}
  for line in io.lines(dir .. "/" .. c[1] .. ".tokens") do table.insert(tokens[c[1]], line) end
end
math.randomseed(os.time())
request = function()
  local r, acc, class = math.random(100), 0, "valid"
  for _, c in ipairs(classes) do
    acc = acc + c[2]
    if r <= acc then class = c[1]; break end
  end
  local list = tokens[class]
  local token = list[math.random(#list)]
  return wrk.format("GET", "/mixed?class=" .. class, { ["Authorization"] = "Bearer " .. token })
end
LUA

taskset -c 1 wrk -t1 -c32 -d2s -s "$work/mix.lua" "$base" > /dev/null # warm-up
curl -s "$base/stats?reset" > /dev/null
rss_start=$(rss)
taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" --latency -s "$work/mix.lua" "$base" > "$work/wrk.txt" &
wrk_pid=$!
step=$((DURATION / 6))
timeline=""
for mode in stopped normal hang normal down normal; do
  sleep "$step"
  curl -s -X POST "$base/jwks-mode/$mode" > /dev/null
  timeline="$timeline $mode@$(( $(date +%s) ))"
done
wait "$wrk_pid"
rss_end=$(rss)
curl -s "$base/stats" > "$work/stats.json"

python3 - "$work/stats.json" "$work/wrk.txt" "$rss_start" "$rss_end" "$DURATION" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
wrk = open(sys.argv[2]).read()
rps = next((l.split()[1] for l in wrk.splitlines() if l.startswith("Requests/sec")), "?")
expected = {"valid": {200}, "expired": {401}, "forged": {401}, "unknown_kid": {401, 503}}
print(f"{sys.argv[5]} s at full rate (wrk -t1 -c32), {rps} req/s; the JWKS endpoint was stopped,")
print("restarted, hung, restored, failing (503) and restored, one sixth of the run each.\n")
print("| token class | status | count | expected |")
print("|---|---:|---:|---|")
unexpected = 0
for row in stats["counts"]:
    if row["class"] == "none":
        continue
    ok = row["status"] in expected.get(row["class"], set())
    unexpected += 0 if ok else row["count"]
    print(f"| {row['class']} | {row['status']} | {row['count']:,} | {'yes' if ok else 'NO'} |")
print(f"\nunexpected statuses: {unexpected}")
print(f"valid requests, server side: p50 {stats['valid_p50_us']} µs, p99 {stats['valid_p99_us']} µs "
      f"({stats['valid_samples']:,} samples)")
print(f"memory (VmRSS): {int(sys.argv[3]) / 1024:.1f} MiB at start, {int(sys.argv[4]) / 1024:.1f} MiB at end")
sys.exit(1 if unexpected else 0)
PY
