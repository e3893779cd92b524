"""Check the MSRV without another toolchain: the package's rust-version must
be at least the rust-version of every dependency it resolves to, and at
least 1.85 (edition 2024)."""
import json
import subprocess
import sys


def parse(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--quiet", "--format-version", "1", "--all-features"]))
root = next(p for p in meta["packages"] if p["id"] == meta["resolve"]["root"])
ours = parse(root["rust_version"])
problems = []
if ours < (1, 85, 0):
    problems.append(f"rust-version {root['rust_version']} is below 1.85, which edition 2024 needs")
# Only the packages the library itself needs (not dev-dependencies).
normal = {}
for node in meta["resolve"]["nodes"]:
    normal[node["id"]] = [d["pkg"] for d in node["deps"]
                          if any(k["kind"] in (None, "build") for k in d["dep_kinds"])]
seen, todo = set(), [root["id"]]
while todo:
    pid = todo.pop()
    if pid in seen:
        continue
    seen.add(pid)
    todo.extend(normal.get(pid, []))
for pkg in meta["packages"]:
    if pkg["id"] in seen and pkg["rust_version"] and parse(pkg["rust_version"]) > ours:
        problems.append(f"{pkg['name']} {pkg['version']} needs Rust {pkg['rust_version']}")
if problems:
    print(f"rust-version = {root['rust_version']} is too low:")
    print("\n".join("  " + p for p in problems))
    sys.exit(1)
print(f"rust-version {root['rust_version']} covers {len(seen) - 1} dependencies")
