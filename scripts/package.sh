#!/usr/bin/env bash
# Builds the packages from this checkout:
#
#   bash scripts/package.sh [--revision N] [--reuse-build]
#
#   target/debian/libpam-mfa_VERSION-N_ARCH.deb   pam_mfa.so, pam-auth-update profile
#   target/debian/mfad_VERSION-N_ARCH.deb         mfad, mfactl, bus policy, units, config
#   target/generate-rpm/pam_mfa-VERSION-N.x86_64.rpm
#   target/generate-rpm/mfad-VERSION-N.x86_64.rpm
#
# VERSION is the workspace's (Cargo.toml); N, the package revision, is 1
# unless given. One release build serves all four; --reuse-build packs the
# release build and staged files of the last run again (a new revision of
# the same code) without building or checking licences again. The copyright files list
# the licence of every crate linked into each binary, from cargo-about, which
# refuses a licence about.toml does not accept. Installs the packaging tools
# (cargo-deb, cargo-generate-rpm, cargo-about, at pinned versions) when they
# are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

REVISION=1
REUSE_BUILD=false
while [ $# -gt 0 ]; do
    case "$1" in
        --revision) REVISION="${2:?--revision needs a number}"; shift 2 ;;
        --reuse-build) REUSE_BUILD=true; shift ;;
        *) echo "package.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$REVISION" in
    '' | *[!0-9]*) echo "package.sh: --revision must be a number, not '$REVISION'" >&2; exit 2 ;;
esac

die() {
    echo "package.sh: $*" >&2
    exit 1
}

# tool command, crate, version, extra cargo install flags
ensure_tool() {
    local sub=$1 crate=$2 version=$3
    shift 3
    if ! cargo "$sub" --version 2>/dev/null | grep -qF "$version"; then
        echo "==> cargo install $crate $version"
        cargo install --locked --quiet "$crate" --version "$version" "$@"
    fi
}
ensure_tool deb cargo-deb 3.8.0
ensure_tool generate-rpm cargo-generate-rpm 0.21.1
ensure_tool about cargo-about 0.9.3 --features cli

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$VERSION" ] || die "no version in the workspace Cargo.toml"

# The places that name the version besides Cargo.toml must agree with it.
changelog_version=$(sed -n '1s/^[^ ]* (\([^-)]*\)-[0-9]*).*/\1/p' packaging/debian/changelog)
[ "$changelog_version" = "$VERSION" ] ||
    die "packaging/debian/changelog starts at $changelog_version, the workspace is at $VERSION: add an entry"
grep -qF "mfad (>= $VERSION), mfad (<< $VERSION+)" pam_mfa/Cargo.toml ||
    die "pam_mfa/Cargo.toml: libpam-mfa must depend on mfad (>= $VERSION), mfad (<< $VERSION+)"

staging=target/package

# The release build and everything the packages take from it.
build_and_stage() {
    echo "==> cargo build --release (mfad, mfactl, pam_mfa)"
    cargo build --release --locked -p mfad -p mfactl -p pam_mfa

    rm -rf "$staging"
    mkdir -p "$staging/man" "$staging/completions" "$staging/about"

    # Man pages: gzip -9n (no name or time in the header) so builds repeat.
    for page in packaging/man/*.[158]; do
        gzip -9n <"$page" >"$staging/man/$(basename "$page").gz"
    done

    # Completions from the CLI definition of the mfactl being packaged.
    target/release/mfactl completions bash >"$staging/completions/mfactl.bash"
    target/release/mfactl completions zsh >"$staging/completions/_mfactl"
    target/release/mfactl completions fish >"$staging/completions/mfactl.fish"

    echo "==> licences (cargo about)"
    # cargo about reads the metadata of every platform's dependencies, not
    # only those built here: fetch them all once, then it runs offline.
    cargo fetch --locked --quiet
    for crate in mfad mfactl pam_mfa; do
        cargo about generate --format json --offline --locked --fail -c about.toml \
            -m "$crate/Cargo.toml" -o "$staging/about/$crate.json" ||
            die "cargo about failed for $crate: a licence about.toml does not accept, or the error above"
    done
    python3 packaging/copyright.py --package libpam-mfa --style debian \
        "$staging/libpam-mfa.copyright" "$staging/about/pam_mfa.json"
    python3 packaging/copyright.py --package mfad --style debian \
        "$staging/mfad.copyright" "$staging/about/mfad.json" "$staging/about/mfactl.json"
    python3 packaging/copyright.py --package pam_mfa --style full \
        "$staging/pam_mfa.COPYING" "$staging/about/pam_mfa.json"
    python3 packaging/copyright.py --package mfad --style full \
        "$staging/mfad.COPYING" "$staging/about/mfad.json" "$staging/about/mfactl.json"
}

if [ "$REUSE_BUILD" = true ]; then
    [ -f "$staging/mfad.copyright" ] && [ -x target/release/mfad ] ||
        die "--reuse-build: no earlier build to reuse; run without it first"
else
    build_and_stage
fi

echo "==> .deb"
rm -f target/debian/*.deb
cargo deb --no-build --quiet -p pam_mfa --multiarch=foreign --deb-revision "$REVISION"
cargo deb --no-build --quiet -p mfad --deb-revision "$REVISION"

echo "==> .rpm"
rm -f target/generate-rpm/*.rpm
for crate in pam_mfa mfad; do
    requires=()
    if [ "$crate" = pam_mfa ]; then
        # The D-Bus contract is the upstream version's, as in the .deb.
        requires=(-s "requires = { mfad = \"= $VERSION\" }")
    fi
    cargo generate-rpm -p "$crate" -s "release = \"$REVISION\"" "${requires[@]}"
done

ls -l target/debian/*.deb target/generate-rpm/*.rpm
