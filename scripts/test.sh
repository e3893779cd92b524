#!/usr/bin/env bash
# Run every test of tower-mandate on a fresh machine: installs what the tests
# need (a Python venv with PyJWT and jwcrypto, oidc-provider and the Cerbos
# PDP from npm, Debian's redis-server), then runs formatting, lints, each feature
# alone, docs, the MSRV check, all tests, and compiles the benches.
set -euo pipefail
cd "$(dirname "$0")/.."

# One clean build, never edited in between: incremental caches would only
# take disk (gigabytes over every test binary) and time.
export CARGO_INCREMENTAL=0

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies"
if ! .venv/bin/python -c 'import jwt, cryptography, jwcrypto' 2>/dev/null; then
  if ! python3 -m venv .venv 2>/dev/null; then
    # Debian's python3 needs the venv module installed separately.
    if command -v apt-get >/dev/null; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv
    fi
    python3 -m venv .venv
  fi
  .venv/bin/pip install -q --disable-pip-version-check -r tests/support/requirements.txt
fi
export MANDATE_PYTHON="$PWD/.venv/bin/python"
# A real Redis server for the shared revocation store.
if ! command -v redis-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server
fi
# A real identity provider (panva's oidc-provider) for the key tests.
if [ ! -d tests/support/idp/node_modules/oidc-provider ]; then
  (cd tests/support/idp && npm install --no-audit --no-fund --silent)
fi
# A real AuthZEN policy decision point: the Cerbos server binary, from npm.
if [ ! -x tests/support/cerbos/node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64 ]; then
  (cd tests/support/cerbos && npm install --no-audit --no-fund --silent)
fi

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --all-targets --all-features -- -D warnings

step "every feature alone"
for features in "" axum aws-lc-rs rust-crypto test-util jwks oauth reqwest tonic tonic-tls cedar authzen redis config metrics "authzen,config"; do
  echo "--no-default-features ${features:+--features $features}"
  cargo check --quiet --lib --no-default-features ${features:+--features "$features"}
done

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --all-features

step "MSRV"
python3 scripts/check_msrv.py

step "tests (all features)"
cargo test --all-features

step "unit tests with the rust-crypto backend"
cargo test --lib --no-default-features --features rust-crypto,axum

step "jsonwebtoken (rust_crypto) beside tower-mandate (aws-lc-rs) in one application"
cargo run --quiet --manifest-path tests/compat/Cargo.toml --target-dir target/compat

step "fuzz targets, briefly, from the committed seeds"
# cargo-fuzz from crates.io, kept in ~/.cargo/bin between runs where the
# machine allows. Each target starts from fuzz/seeds/<target> (tokens of the
# attack suite, JWKS documents, token-endpoint answers, credential headers);
# new inputs go to a scratch corpus, never into the repository. A crash
# stops the run: its input is in fuzz/artifacts/<target>/, to be kept as a
# seed once fixed.
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --quiet --locked cargo-fuzz
fi
for target in verify credentials jwks token_response; do
  scratch="target/fuzz-corpus/$target"
  mkdir -p "$scratch"
  # Stable toolchains accept the sanitizer flags with RUSTC_BOOTSTRAP.
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "$scratch" "fuzz/seeds/$target" -- \
    -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 2>&1 | tail -n 3
done

step "examples run"
cargo run --quiet --example demo > /dev/null
cargo run --quiet --example jobs
cargo run --quiet --example config_file
APP_MANDATE__USER__MODE=optional cargo run --quiet --example config_file

step "benches compile"
# Type-checked, not built in release: building them is the benches' own
# job (`cargo bench`), and a release build of every dependency would add
# minutes to CI.
cargo check --benches --all-features --quiet

echo
du -sh target fuzz/target 2>/dev/null | sed 's/^/disk used: /'
echo "all tests passed"
