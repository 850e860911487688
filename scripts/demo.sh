#!/usr/bin/env bash
# The pam_mfa demo: a real PAM login that asks for a one-time code held by
# mfad — nothing installed, nothing on the system bus touched.
#
#   bash scripts/demo.sh           # interactive: scan the QR code, type codes
#   bash scripts/demo.sh --auto    # answers itself with oathtool codes (CI)
#
# It builds the workspace, starts a private dbus-daemon running the shipped
# bus policy and mfad with a temporary state directory (mfa-sandbox), enrols
# the user "demo" with mfactl (run as demo's uid), and logs in with pamtester
# under pam_wrapper, which makes libpam use a service file naming the freshly
# built pam_mfa.so. Everything is removed on exit. Needs root (it switches to
# demo's uid and drives the login, which the bus policy allows only to root).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/prereqs.sh
. scripts/lib/prereqs.sh

auto=false
case "${1:-}" in
    --auto) auto=true ;;
    "") ;;
    -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument $1 (try --help)" ;;
esac

require_root "the demo runs mfactl as the demo user and drives a PAM login"
if ! $auto && ! [ -t 0 ]; then
    die "the interactive demo needs a terminal to type codes into; use --auto"
fi
ensure_packages
echo "==> building"
cargo build --workspace --quiet

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# The sandbox prints KEY=VALUE lines, then READY, and tears everything down
# when its stdin closes — including when this script dies.
coproc SANDBOX { exec target/debug/mfa-sandbox --max-tries 3; }
sandbox_pid=$SANDBOX_PID
cleanup() {
    local status=$?
    local fd=${SANDBOX[1]:-}
    if [ -n "$fd" ]; then
        exec {fd}>&-
    fi
    wait "$sandbox_pid" 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A env=()
while IFS= read -r -u "${SANDBOX[0]}" line; do
    [ "$line" = READY ] && break
    env[${line%%=*}]=${line#*=}
done
[ -n "${env[BUS_ADDRESS]:-}" ] || die "the sandbox did not start"

bus=${env[BUS_ADDRESS]}
user=${env[DEMO_USER]}
uid=${env[DEMO_UID]}
service=${env[PAM_SERVICE]}
step "private bus at $bus, mfad running (state in ${env[STATE_DIR]})"

as_demo() {
    setpriv --reuid="$uid" --regid="$uid" --clear-groups -- \
        env -i PATH=/usr/bin:/bin TERM="${TERM:-dumb}" "$@"
}

login() {
    LD_PRELOAD=${env[PAM_WRAPPER_LIB]} PAM_WRAPPER=1 \
        PAM_WRAPPER_SERVICE_DIR=${env[PAM_SERVICE_DIR]} \
        pamtester -v "$service" "$user" authenticate 2>&1
}

step "PAM service file ${env[PAM_SERVICE_DIR]}/$service"
cat "${env[PAM_SERVICE_DIR]}/$service"

if $auto; then
    # A generated secret, imported, so oathtool can make the codes.
    secret=$(head -c 20 /dev/urandom | base32 | tr -d '=')
    step "enrolling $user: mfactl enrol totp (confirmed with an oathtool code)"
    as_demo "${env[MFACTL]}" --bus-address "$bus" enrol totp --label demo-phone \
        --secret "$secret" --code "$(oathtool --totp -b "$secret")"

    # The confirmation used this period's code; the next period's is fresh
    # and inside mfad's default skew of one step.
    code=$(oathtool --totp -b "$secret" -N "@$(($(date +%s) + 30))")
    step "logging in as $user with pamtester (typing $code)"
    printf '%s\n' "$code" | login || die "the login with a valid code failed"

    step "the same code again must be refused"
    if printf '%s\n%s\n%s\n' "$code" "$code" "$code" | login; then
        die "a replayed code was accepted"
    fi
    step "mfad's audit log (no code or secret in it)"
    cat "${env[MFAD_LOG]}"
    if grep -q -e "$code" -e "$secret" "${env[MFAD_LOG]}"; then
        die "mfad logged a code or the secret"
    fi
    step "demo passed"
else
    step "enrolling $user: scan the QR code (or type the secret) into an authenticator app,"
    echo "    then type the code it shows. No phone? In another terminal:"
    echo "    oathtool --totp -b <the secret shown below>"
    as_demo "${env[MFACTL]}" --bus-address "$bus" enrol totp --label demo-phone

    step "logging in as $user through real libpam"
    echo "    The code you confirmed with is used up: wait for the next one."
    if login; then
        step "logged in"
    else
        step "login refused"
    fi
    step "mfad's audit log"
    cat "${env[MFAD_LOG]}"
fi
