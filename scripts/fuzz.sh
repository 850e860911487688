#!/usr/bin/env bash
# Fuzz every cargo fuzz target in fuzz/ for SECONDS each (default 20):
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   bash scripts/fuzz.sh 600            # a longer run
#   bash scripts/fuzz.sh 60 answer      # one target
#
# Installs cargo-fuzz if missing. Stable Rust is enough: without a sanitizer
# cargo fuzz passes only stable flags, and RUSTC_BOOTSTRAP=1 covers the
# unstable ones it adds otherwise. No sanitizer: the code under test is safe
# Rust and the aim is panics and hangs (one input taking over 5 s is a hang). Builds go to fuzz/target and the growing corpus to
# fuzz/corpus/<target> (both gitignored), seeded from fuzz/seeds/<target>.
# A crash is saved in fuzz/artifacts/<target>/ and replayed to show its
# panic; the script fails once every target has had its turn.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
}
seconds=20
if [ $# -gt 0 ]; then
    [[ $1 =~ ^[1-9][0-9]*$ ]] || usage
    seconds=$1
    shift
fi
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(config otpauth options answer dbus_args)
fi

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
fi

flags=(--fuzz-dir fuzz --sanitizer none)
start=$SECONDS
cargo fuzz build "${flags[@]}"
echo "==> fuzz: built in $((SECONDS - start)) s"

# The stores of the targets that drive mfad's Service: tmpfs, since every
# change is an fsync'd transaction.
tmp=$(mktemp -d -p /dev/shm pam_mfa-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
logs=fuzz/target/logs
mkdir -p "$logs"

# Answers of 64 KiB from the start: a short run would not grow one.
seed_huge() {
    local dir=fuzz/corpus/$1
    case $1 in
    answer)
        [ -e "$dir/huge-digits" ] || { printf '\001' && head -c 65536 /dev/zero | tr '\0' 1; } >"$dir/huge-digits"
        [ -e "$dir/huge-nul" ] || { printf '\001' && head -c 65536 /dev/zero; } >"$dir/huge-nul"
        ;;
    dbus_args)
        # Login1.Answer("", 64 KiB of digits), little-endian.
        [ -e "$dir/huge-answer" ] || {
            printf '\001\000\000\000\000\000\000\000\000\000\000\000\001\000'
            head -c 65536 /dev/zero | tr '\0' 1
            printf '\000'
        } >"$dir/huge-answer"
        ;;
    esac
}

failed=()
for target in "${targets[@]}"; do
    case $target in
    answer | dbus_args) max_len=65600 quiet=(-close_fd_mask=2) ;; # mfad's audit lines
    config) max_len=16384 quiet=() ;;
    *) max_len=4096 quiet=() ;;
    esac
    mkdir -p "fuzz/corpus/$target"
    seed_huge "$target"
    log=$logs/$target.log
    if TMPDIR=$tmp cargo fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len="$max_len" \
        "${quiet[@]}" >"$log" 2>&1; then
        echo "==> fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n 1), no crash"
        continue
    fi
    failed+=("$target")
    echo "==> fuzz $target: FAILED (whole log: $log)"
    # From the panic (or libFuzzer's report) to the reproduce command.
    sed -n '/panicked at\|ERROR: libFuzzer/,/^Minimize/p' "$log" |
        grep -v -e '^ *[0-9]*: ' -e '^ *at ' | head -n 60
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    if [ -n "$artifact" ] && [ -n "${quiet[*]}" ]; then
        echo "--- the panic, replaying $artifact with stderr:"
        TMPDIR=$tmp RUST_BACKTRACE=0 cargo fuzz run "${flags[@]}" "$target" "$artifact" 2>&1 |
            grep -A 3 'panicked at' || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "==> fuzz: crash or hang in: ${failed[*]}" >&2
    exit 1
fi
echo "==> fuzz: ${#targets[@]} targets, $seconds s each, no crash"
