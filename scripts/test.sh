#!/usr/bin/env bash
# THE test command: every check pam_mfa has, in the order CI runs them.
#
#   bash scripts/test.sh
#
# Installs missing prerequisites (Debian packages, rustfmt, clippy), then:
# formatting, clippy with warnings as errors, one `cargo build --workspace`
# (the end-to-end tests run the binaries it builds: mfad, mfactl,
# libpam_mfa.so), a short fuzzing run (scripts/fuzz.sh), the packages
# (tests/packages/test.sh), and all tests —
# unit tests, mfad on a private dbus-daemon, and real libpam logins through
# pam_mfa.so. The last line is the test runner's summary. Needs root: the
# end-to-end tests run clients as other uids and drive logins, which the
# shipped bus policy allows only to root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/prereqs.sh
. scripts/lib/prereqs.sh

require_root "the end-to-end tests switch uids and drive PAM logins"
ensure_packages
ensure_rust_components

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo build --workspace"
cargo build --workspace

# Briefly: no panic, no hang on a few thousand inputs per target. Longer
# runs: bash scripts/fuzz.sh 600.
echo "==> fuzz"
bash scripts/fuzz.sh 15

# The .debs and .rpms from scripts/package.sh: lint, contents, and the
# .debs installed, used, upgraded and removed in a clean Debian 12 root.
echo "==> packages"
bash tests/packages/test.sh

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doc tests; run them first so its summary closes.
    cargo test --workspace --doc
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
