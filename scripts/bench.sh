#!/bin/sh
# Login benchmark: pam_mfa next to google-authenticator-libpam and pam_oath,
# through real libpam, on this machine, in one run. Not a test: rerun it when
# you want numbers. Prints a Markdown report and writes it to
# target/bench/results.md.
#
#   scripts/bench.sh                      # everything (a few minutes)
#   scripts/bench.sh --parts latency      # only the sequential part
#   scripts/bench.sh --parts fleet        # pam_mfa on SQLite vs PostgreSQL, two hosts
#   scripts/bench.sh --logins 200 --per-worker 50 --big 20000   # quick look
#
# Arguments go to `pam-bench run` (see `pam-bench run --help`). To measure
# another build of mfad and libpam_mfa.so, point MFA_TEST_BIN_DIR at it.
# Needs root (Debian/Ubuntu): installs missing packages with apt-get, builds
# once in release mode, and, when nothing listens on /dev/log, provides a
# discarding log sink there for the run (removed afterwards).
set -eu

cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench.sh: run as root (PAM secret files and mfad's login interface are root's)" >&2
    exit 1
fi

# Debian packages: the modules compared, the bus, libpam headers for the
# build, clang for bindgen, and for the fleet part a PostgreSQL server (the
# benchmark starts its own, it does not use the system's) with openssl for
# its test certificates.
packages="dbus libpam0g-dev libclang-dev libpam-google-authenticator libpam-oath postgresql openssl"
missing=""
for p in $packages; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "bench.sh: installing$missing" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

# Two invocations: a --bin filter would apply to every -p and skip mfad's
# binary and the module.
cargo build --release -p mfad -p pam_mfa
cargo build --release -p mfa_tests --bin pam-bench

# pam-bench provides /dev/log itself when nothing listens there and removes
# it when done; if the run is interrupted, remove it here (only if it was
# not there before the run).
if [ ! -e /dev/log ]; then
    trap 'rc=$?; [ -S /dev/log ] && rm -f /dev/log; exit $rc' EXIT INT TERM
fi
target/release/pam-bench run "$@"
