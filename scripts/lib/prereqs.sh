# shellcheck shell=bash
# Prerequisites shared by scripts/test.sh and scripts/demo.sh: Debian
# packages (installed with apt-get when missing, one `apt-get update` at
# most) and the rustfmt/clippy components. Source it, then call
# `ensure_packages` / `ensure_rust_components`.

# Every Debian package the tests and the demo use, and why.
MFA_PACKAGES=(
    dbus                          # dbus-daemon: the private test bus
    libpam0g-dev                  # libpam headers and libpam.so to link against
    libpam-modules                # pam_permit, pam_deny, pam_debug, pam_echo in test stacks
    libpam-wrapper                # pam_wrapper: libpam reads our service dir
    libnss-wrapper                # nss_wrapper: test users without touching /etc/passwd
    pamtester                     # a stock PAM application
    oathtool                      # reference TOTP/HOTP codes
    libclang-dev                  # bindgen
    zbar-tools                    # zbarimg reads back the QR code mfactl draws
    util-linux                    # setpriv: run clients as other uids
    openssh-server                # a real sshd for the SSH login tests
    openssh-client                # ssh and ssh-keygen for the SSH login tests
    libpam-google-authenticator   # benchmark baseline
    libpam-oath                   # benchmark baseline
    libudev-dev                   # hidapi (ctap-hid-fido2's USB HID backend) builds against it
    pkg-config                    # finds libudev for hidapi's build
    gcc                           # the test NSS module (tests/nss) is compiled by the tests
    systemd                       # systemd-analyze checks the shipped unit offline
    postgresql                    # a real PostgreSQL for the fleet store tests
    openssl                       # a test CA and certificates for TLS to it
    python3-aiosmtpd              # a real SMTP server (STARTTLS, TLS, AUTH) for e-mail codes
    chrony                        # a real NTP server on loopback serving a shifted time ([time])
    lintian                       # the .debs are checked as Debian checks its own
    rpm                           # rpm -qp and rpm --root install the .rpms into a scratch root
    rpmlint                       # the .rpms are checked against packaging/rpm/rpmlintrc
    debootstrap                   # a clean Debian 12 root the .debs are installed into
)

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

require_root() {
    [ "$(id -u)" = 0 ] || die "run as root: $1"
}

ensure_packages() {
    local missing=() pkg
    for pkg in "${MFA_PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get"
    echo "$(basename "$0"): installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ensure_rust_components() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
    local component
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            command -v rustup >/dev/null || die "cargo $component missing and no rustup to add it"
            rustup component add "$component"
        fi
    done
}
