#!/usr/bin/env bash
# The packages, built from this checkout and used as an admin would:
#
#   bash tests/packages/test.sh
#
# 1. scripts/package.sh builds revision 1 (and, from the same build,
#    revision 2 for the upgrade);
# 2. lintian and rpmlint check them (warnings are failures; rpmlint against
#    the baseline in packaging/rpm/rpmlint.toml);
# 3. their contents, modes, dependencies and scriptlets are compared with
#    the lists in tests/packages/expected/ (MFA_UPDATE_EXPECTED=1 rewrites
#    them; review the diff);
# 4. cargo-about must refuse the AGPL software key in tests/fakekey, so no
#    test-only crate can reach a package;
# 5. the .rpms are installed into a scratch rpm root and verified;
# 6. the .debs are installed into a clean Debian 12 root made by debootstrap
#    from Debian's packages: pam-auth-update, a system dbus-daemon, mfad
#    started by bus activation, a user enrolled with an HOTP secret, logins
#    through the installed /etc/pam.d/common-auth with codes from oathtool;
#    an upgrade, a removal and a purge.
#
# MFA_PACKAGES_PREBUILT=1 tests the packages of the last run again (no
# build). Needs root (chroot, mounts). The Debian root is cached in
# target/package-test/bookworm-minbase; MFA_DEBIAN_MIRROR overrides the
# mirror debootstrap uses (default: the one in /etc/apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/prereqs.sh
. scripts/lib/prereqs.sh
require_root "chroot and mounts for the clean Debian root"

EXPECTED=tests/packages/expected
WORK=target/package-test
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
ROOT=$WORK/root
CHECKS=0

fail() {
    echo "FAIL packages: $*" >&2
    exit 1
}

pass() {
    CHECKS=$((CHECKS + 1))
    echo "ok   $*"
}

# Compares what a command printed with tests/packages/expected/NAME.
expect_file() {
    local name=$1 actual=$2
    if [ "${MFA_UPDATE_EXPECTED:-}" = 1 ]; then
        cp "$actual" "$EXPECTED/$name"
        echo "updated $EXPECTED/$name"
        return
    fi
    diff -u "$EXPECTED/$name" "$actual" >&2 ||
        fail "$name differs from $EXPECTED/$name (if the change is meant: MFA_UPDATE_EXPECTED=1 bash $0, then review the diff)"
    pass "$name as expected"
}

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
# The version changes with every release; the lists should not.
unversion() { sed "s/$VERSION/@VERSION@/g"; }

# ---------------------------------------------------------------- build
if [ "${MFA_PACKAGES_PREBUILT:-}" = 1 ]; then
    echo "==> packages of the last run (MFA_PACKAGES_PREBUILT=1)"
else
    echo "==> packages, revision 2 (the upgrade) and 1"
    bash scripts/package.sh --revision 2 >"$WORK/package-2.log" 2>&1 ||
        { cat "$WORK/package-2.log" >&2; fail "scripts/package.sh --revision 2"; }
    rm -rf "$WORK/rev2" "$WORK/rev1"
    mkdir -p "$WORK/rev2" "$WORK/rev1"
    cp target/debian/*.deb target/generate-rpm/*.rpm "$WORK/rev2/"
    bash scripts/package.sh --revision 1 --reuse-build >"$WORK/package-1.log" 2>&1 ||
        { cat "$WORK/package-1.log" >&2; fail "scripts/package.sh --revision 1 --reuse-build"; }
    cp target/debian/*.deb target/generate-rpm/*.rpm "$WORK/rev1/"
fi
DEB_PAM=$WORK/rev1/libpam-mfa_${VERSION}-1_amd64.deb
DEB_MFAD=$WORK/rev1/mfad_${VERSION}-1_amd64.deb
RPM_PAM=$WORK/rev1/pam_mfa-${VERSION}-1.x86_64.rpm
RPM_MFAD=$WORK/rev1/mfad-${VERSION}-1.x86_64.rpm
for f in "$DEB_PAM" "$DEB_MFAD" "$RPM_PAM" "$RPM_MFAD" \
    "$WORK/rev2/libpam-mfa_${VERSION}-2_amd64.deb" "$WORK/rev2/mfad_${VERSION}-2_amd64.deb"; do
    [ -f "$f" ] || fail "scripts/package.sh made no $(basename "$f")"
done
pass "scripts/package.sh built revisions 1 and 2"

# ---------------------------------------------------------------- lint
echo "==> lintian"
lintian --fail-on error,warning --tag-display-limit 0 "$DEB_PAM" "$DEB_MFAD" >"$WORK/lintian.log" 2>&1 ||
    { cat "$WORK/lintian.log" >&2; fail "lintian found errors or warnings (above)"; }
cat "$WORK/lintian.log"
pass "lintian: no error, no warning"

echo "==> rpmlint"
rpmlint -s -c packaging/rpm/rpmlint.toml "$RPM_PAM" "$RPM_MFAD" >"$WORK/rpmlint.log" 2>&1 ||
    { cat "$WORK/rpmlint.log" >&2; fail "rpmlint found errors or warnings not filtered in packaging/rpm/rpmlint.toml (above)"; }
pass "rpmlint -s: nothing beyond the baseline in packaging/rpm/rpmlint.toml"

# ---------------------------------------------------------------- contents
echo "==> contents"
for deb in "$DEB_PAM" "$DEB_MFAD"; do
    pkg=$(dpkg-deb -f "$deb" Package)
    # mode, owner, path (and a link's target): sizes and dates change.
    dpkg-deb -c "$deb" | awk '{ $3 = $4 = $5 = ""; print }' | tr -s ' ' | unversion >"$WORK/$pkg.deb.contents"
    expect_file "$pkg.deb.contents" "$WORK/$pkg.deb.contents"
    dpkg-deb -f "$deb" Package Version Architecture Multi-Arch Depends Recommends Section Priority |
        unversion >"$WORK/$pkg.deb.control"
    expect_file "$pkg.deb.control" "$WORK/$pkg.deb.control"
    dpkg-deb --ctrl-tarfile "$deb" | tar -t | sort >"$WORK/$pkg.deb.control-files"
    expect_file "$pkg.deb.control-files" "$WORK/$pkg.deb.control-files"
done

for rpm in "$RPM_PAM" "$RPM_MFAD"; do
    pkg=$(rpm -qp --qf '%{NAME}' "$rpm")
    rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} (%{FILEFLAGS:fflags}) %{FILENAMES}\n]' "$rpm" |
        unversion >"$WORK/$pkg.rpm.contents"
    expect_file "$pkg.rpm.contents" "$WORK/$pkg.rpm.contents"
    rpm -qp --requires "$rpm" | unversion >"$WORK/$pkg.rpm.requires"
    expect_file "$pkg.rpm.requires" "$WORK/$pkg.rpm.requires"
    rpm -qp --scripts "$rpm" >"$WORK/$pkg.rpm.scripts"
    expect_file "$pkg.rpm.scripts" "$WORK/$pkg.rpm.scripts"
    for tag in PREIN POSTIN PREUN POSTUN; do
        rpm -qp --qf "%{$tag}" "$rpm" >"$WORK/$pkg.$tag.sh"
        [ "$(cat "$WORK/$pkg.$tag.sh")" = "(none)" ] && continue
        sh -n "$WORK/$pkg.$tag.sh" || fail "$pkg's $tag scriptlet is not valid sh"
        pass "$pkg's $tag scriptlet parses (sh -n)"
    done
done

# ---------------------------------------------------------------- licences
echo "==> licences"
if cargo about generate --format json --offline --locked --fail -c about.toml \
    -m tests/fakekey/Cargo.toml -o /dev/null >"$WORK/about-fakekey.log" 2>&1; then
    fail "cargo about accepted tests/fakekey, which links AGPL-3.0 soft-fido2: about.toml lets it into packages"
fi
grep -q 'AGPL' "$WORK/about-fakekey.log" ||
    { cat "$WORK/about-fakekey.log" >&2; fail "cargo about refused tests/fakekey, but not for its AGPL licence"; }
pass "cargo about refuses the AGPL test key (tests/fakekey)"
for copyright in target/package/libpam-mfa.copyright target/package/mfad.copyright; do
    grep -q '^License: GPL-3.0-or-later' "$copyright" || fail "$copyright: no GPL-3.0-or-later paragraph"
    ! grep -qi 'AGPL' "$copyright" || fail "$copyright names an AGPL licence"
done
# Every crate linked into the binaries (cargo's own dependency tree, not
# cargo-about's: normal dependencies for this target, no build- or
# dev-dependencies) has its paragraph in the installed copyright file.
for pair in "$DEB_MFAD:mfad:mfad mfactl" "$DEB_PAM:libpam-mfa:pam_mfa"; do
    IFS=: read -r deb pkg crates <<<"$pair"
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/share/doc/$pkg/copyright" >"$WORK/$pkg.copyright"
    # shellcheck disable=SC2086 # one -p per crate
    cargo tree $(printf -- '-p %s ' $crates) -e normal --target x86_64-unknown-linux-gnu \
        --prefix none --locked --offline |
        sed -n 's/^\([^ ]*\) v\([^ ]*\).*/\1 \2/p' | sort -u >"$WORK/$pkg.linked"
    missing=$(while read -r name version; do
        case " mfad mfactl pam_mfa mfa_dbus mfa_qr " in *" $name "*) continue ;; esac
        grep -qxF "Files: rust/$name-$version/*" "$WORK/$pkg.copyright" || echo "$name $version"
    done <"$WORK/$pkg.linked")
    [ -z "$missing" ] || fail "$pkg's copyright file misses linked crates: $(echo $missing)"
    pass "$pkg's copyright names all $(wc -l <"$WORK/$pkg.linked") crates cargo tree finds linked"
done

# ---------------------------------------------------------------- rpm --root
echo "==> rpm --root"
RPMROOT=$WORK/rpmroot
rm -rf "$RPMROOT"
mkdir -p "$RPMROOT"
rpm --root "$RPMROOT" --initdb
# --nodeps: the scratch root has no glibc or pam packages; --noscripts: and
# no shell. The scriptlets were checked above.
rpm --root "$RPMROOT" -i --nodeps --noscripts "$RPM_MFAD" "$RPM_PAM"
rpm --root "$RPMROOT" -q mfad pam_mfa >/dev/null || fail "rpm does not list mfad and pam_mfa as installed"
verify=$(rpm --root "$RPMROOT" -Va --nodeps 2>&1) || true
[ -z "$verify" ] || fail "rpm -Va in the scratch root found differences: $verify"
pass "rpm -Va: every installed file matches its package (digest, mode, owner)"
[ "$(stat -c '%a %U' "$RPMROOT/usr/lib64/security/pam_mfa.so")" = "644 root" ] ||
    fail "/usr/lib64/security/pam_mfa.so is not 0644 root"
[ "$(stat -c '%a' "$RPMROOT/usr/sbin/mfad")" = 755 ] || fail "/usr/sbin/mfad is not 0755"
cmp -s "$RPMROOT/etc/mfa/mfad.toml" packaging/mfad.toml || fail "the rpm's /etc/mfa/mfad.toml is not packaging/mfad.toml"
pass "rpm payload: module 0644 in /usr/lib64/security, mfad 0755, the shipped mfad.toml"

# ---------------------------------------------------------------- Debian root
echo "==> clean Debian 12 root"

in_root() {
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

# Ends every process whose root directory is the test root, then unmounts.
release_root() {
    local pid
    [ -d "$ROOT" ] || return 0
    for pid in /proc/[0-9]*; do
        if [ "$(readlink "$pid/root" 2>/dev/null)" = "$ROOT" ]; then
            kill -9 "${pid#/proc/}" 2>/dev/null || true
        fi
    done
    while read -r _ mnt _; do
        case "$mnt" in "$ROOT"/*) umount -l "$mnt" ;; esac
    done < <(tac /proc/mounts)
    return 0
}
trap release_root EXIT

BASE=$WORK/bookworm-minbase
if [ ! -f "$BASE/.complete" ]; then
    mirror=${MFA_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(.*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "debootstrap bookworm from $mirror (cached in $BASE)"
    rm -rf --one-file-system "$BASE"
    debootstrap --variant=minbase --include=dbus,pamtester,oathtool bookworm "$BASE" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 30 "$WORK/debootstrap.log" >&2; fail "debootstrap bookworm from $mirror"; }
    touch "$BASE/.complete"
fi
release_root
rm -rf --one-file-system "$ROOT"
cp -a "$BASE" "$ROOT"
mount -t proc proc "$ROOT/proc"
mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run"
mkdir -p "$ROOT/run/dbus"
mkdir -p "$ROOT/pkg"
cp "$WORK/rev1/"*.deb "$WORK/rev2/"*.deb "$ROOT/pkg/"

stack_before=$(cat "$ROOT/etc/pam.d/common-auth")
in_root dpkg -i "/pkg/mfad_${VERSION}-1_amd64.deb" "/pkg/libpam-mfa_${VERSION}-1_amd64.deb" >"$WORK/dpkg-install.log" 2>&1 ||
    { cat "$WORK/dpkg-install.log" >&2; fail "dpkg -i of both .debs into a clean Debian 12 root"; }
pass "dpkg -i libpam-mfa and mfad into a clean Debian 12 root"
[ "$(stat -c '%a %U' "$ROOT/var/lib/mfa")" = "700 root" ] || fail "/var/lib/mfa is not 0700 root after install"
[ "$(stat -c '%a' "$ROOT/usr/lib/x86_64-linux-gnu/security/pam_mfa.so")" = 644 ] ||
    fail "pam_mfa.so is not 0644 in the multiarch security directory"
pass "state directory 0700 root; module 0644 in /usr/lib/x86_64-linux-gnu/security"
[ "$(cat "$ROOT/etc/pam.d/common-auth")" = "$stack_before" ] ||
    fail "installing changed /etc/pam.d/common-auth; the profile is Default: no"
pass "installing leaves /etc/pam.d/common-auth alone (Default: no)"

in_root pam-auth-update --enable mfa
grep -Eq '^auth[[:space:]]+required[[:space:]]+pam_mfa\.so' "$ROOT/etc/pam.d/common-auth" ||
    fail "pam-auth-update --enable mfa put no pam_mfa.so line in common-auth"
# After the primary block: pam_unix, then pam_deny/pam_permit, then pam_mfa.
awk '/pam_unix\.so/ { u = NR } /pam_permit\.so/ { p = NR } /pam_mfa\.so/ { m = NR }
     END { exit !(u && p && m && u < p && p < m) }' "$ROOT/etc/pam.d/common-auth" ||
    { cat "$ROOT/etc/pam.d/common-auth" >&2; fail "pam_mfa.so is not after the primary block in common-auth"; }
pass "pam-auth-update --enable mfa: pam_mfa.so required, after the primary block"

# MFA on (the conffile ships with it off); the edit must survive the upgrade.
sed -i '/^\[policy\]$/,/^\[/ s/^enabled = false$/enabled = true/' "$ROOT/etc/mfa/mfad.toml"
[ "$(grep -c '^enabled = true$' "$ROOT/etc/mfa/mfad.toml")" = 1 ] ||
    fail "could not turn MFA on ([policy] enabled) in /etc/mfa/mfad.toml"
in_root mfad --check-config >/dev/null || fail "mfad --check-config refuses the installed config"

in_root useradd -m -s /bin/bash alice
echo 'alice:correct horse' | in_root chpasswd

# A system bus from the installed policy; nothing starts mfad but bus
# activation (dbus-daemon-launch-helper and the installed .service file).
rm -f "$WORK/bus-ready" "$WORK/mfad-out"
mkfifo "$WORK/bus-ready"
in_root dbus-daemon --system --nofork --nopidfile --print-address=3 3>"$WORK/bus-ready" 2>"$WORK/dbus.log" &
read -r bus_address <"$WORK/bus-ready"
[ -n "$bus_address" ] || fail "the chroot's dbus-daemon printed no address"
in_root mfactl policy check >"$WORK/policy-check.log" 2>&1 ||
    { cat "$WORK/policy-check.log" "$WORK/dbus.log" >&2; fail "mfactl could not reach mfad through bus activation"; }
mfad_pids=()
for pid in /proc/[0-9]*; do
    if [ "$(readlink "$pid/root" 2>/dev/null)" = "$ROOT" ] &&
        [ "$(readlink "$pid/exe" 2>/dev/null)" = "$ROOT/usr/sbin/mfad" ]; then
        mfad_pids+=("${pid#/proc/}")
    fi
done
[ "${#mfad_pids[@]}" = 1 ] || fail "expected one mfad started by bus activation, found ${#mfad_pids[@]}"
pass "bus activation started /usr/sbin/mfad; mfactl reached it"
[ -S "$ROOT/run/mfa/login.sock" ] || fail "mfad made no login socket at /run/mfa/login.sock"

# An HOTP secret oathtool knows too; counter 1 confirms, 2, 3, ... log in.
secret=$(head -c 20 /dev/urandom | base32)
hotp() { in_root oathtool --hotp --base32 --counter "$1" "$secret"; }
in_root runuser -u alice -- mfactl enrol hotp --label pkgtest --secret "$secret" --no-qr --code "$(hotp 1)" \
    >"$WORK/enrol.log" 2>&1 || { cat "$WORK/enrol.log" >&2; fail "alice could not enrol an HOTP factor"; }
pass "alice enrolled an HOTP factor with mfactl (confirmed with oathtool's code)"

# A login through /etc/pam.d/login (@include common-auth): each argument
# answers one prompt (password, then code).
login() {
    python3 tests/packages/converse.py "$@" -- \
        chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        pamtester login alice authenticate
}
out=$(login 'correct horse' "$(hotp 2)") || fail "login with password and oathtool's code was refused: $out"
grep -q 'Verification code' <<<"$out" || fail "the login asked no verification code: $out"
pass "login through common-auth asks for the code and accepts oathtool's"
if out=$(login 'correct horse' "$(hotp 2)"); then fail "a used HOTP code logged in again: $out"; fi
pass "the same code is refused a second time"
if out=$(login 'wrong password' "$(hotp 3)"); then fail "a wrong password with a good code logged in: $out"; fi
grep -q 'Verification code' <<<"$out" && fail "pam_mfa asked for a code after a wrong password: $out"
pass "a wrong password is refused before any code is asked"

echo "==> upgrade to revision 2"
conf_before=$(sha256sum <"$ROOT/etc/mfa/mfad.toml")
in_root dpkg -i "/pkg/mfad_${VERSION}-2_amd64.deb" "/pkg/libpam-mfa_${VERSION}-2_amd64.deb" >"$WORK/dpkg-upgrade.log" 2>&1 ||
    { cat "$WORK/dpkg-upgrade.log" >&2; fail "dpkg -i of revision 2 over revision 1"; }
[ "$(in_root dpkg-query -W -f '${Version}' mfad)" = "${VERSION}-2" ] || fail "mfad is not at revision 2 after the upgrade"
[ "$(sha256sum <"$ROOT/etc/mfa/mfad.toml")" = "$conf_before" ] || fail "the upgrade changed the admin's /etc/mfa/mfad.toml"
grep -Eq '^auth[[:space:]]+required[[:space:]]+pam_mfa\.so' "$ROOT/etc/pam.d/common-auth" ||
    fail "the upgrade took pam_mfa.so out of common-auth"
pass "upgrade: revision 2 installed, the edited conffile and the enabled profile kept"
# The running mfad goes on; one started by hand, on the new binary, must
# find the same state. It says "serving" once it owns its name.
kill "${mfad_pids[@]}"
timeout 30 tail --pid="${mfad_pids[0]}" -f /dev/null || fail "mfad did not stop within 30 s of SIGTERM"
mkfifo "$WORK/mfad-out"
in_root /usr/sbin/mfad --log-stderr >"$WORK/mfad-out" 2>&1 &
exec {mfad_out}<"$WORK/mfad-out"
rm -f "$WORK/mfad-out"
serving=false
while read -r -u "$mfad_out" line; do
    echo "$line" >>"$WORK/mfad.log"
    case "$line" in *"serving org.pam_mfa.Mfad1"*) serving=true && break ;; esac
done
[ "$serving" = true ] || { cat "$WORK/mfad.log" >&2; fail "mfad started by hand stopped before serving"; }
# Keep reading its log, so that it never blocks on a full pipe.
cat <&"$mfad_out" >>"$WORK/mfad.log" &
exec {mfad_out}<&-
out=$(login 'correct horse' "$(hotp 3)") || fail "login after the upgrade was refused: $out"
pass "after the upgrade, mfad started by hand keeps alice's factor and its counter: login with the next code"

echo "==> removal"
in_root dpkg -r libpam-mfa >"$WORK/dpkg-remove.log" 2>&1 ||
    { cat "$WORK/dpkg-remove.log" >&2; fail "dpkg -r libpam-mfa"; }
[ "$(cat "$ROOT/etc/pam.d/common-auth")" = "$stack_before" ] ||
    { diff <(echo "$stack_before") "$ROOT/etc/pam.d/common-auth" >&2; fail "removing libpam-mfa did not restore common-auth"; }
out=$(login 'correct horse') || fail "a password-only login after removing libpam-mfa was refused: $out"
grep -q 'Verification code' <<<"$out" && fail "a code was asked after libpam-mfa was removed: $out"
pass "dpkg -r libpam-mfa restores common-auth; password logins work"
in_root dpkg -r mfad >"$WORK/dpkg-remove-mfad.log" 2>&1 ||
    { cat "$WORK/dpkg-remove-mfad.log" >&2; fail "dpkg -r mfad"; }
[ -f "$ROOT/etc/mfa/mfad.toml" ] || fail "dpkg -r mfad removed the conffile (only purge may)"
[ ! -e "$ROOT/usr/sbin/mfad" ] || fail "dpkg -r mfad left /usr/sbin/mfad"
pass "dpkg -r mfad removes the programs and keeps /etc/mfa/mfad.toml"
in_root dpkg -P mfad >"$WORK/dpkg-purge.log" 2>&1 || { cat "$WORK/dpkg-purge.log" >&2; fail "dpkg -P mfad"; }
[ ! -e "$ROOT/etc/mfa" ] || fail "dpkg -P mfad left /etc/mfa"
[ -d "$ROOT/var/lib/mfa" ] && [ -n "$(ls -A "$ROOT/var/lib/mfa")" ] || fail "dpkg -P mfad removed /var/lib/mfa"
grep -q 'kept /var/lib/mfa' "$WORK/dpkg-purge.log" || fail "dpkg -P mfad did not say it kept /var/lib/mfa"
pass "dpkg -P mfad removes /etc/mfa, keeps /var/lib/mfa and says so"

release_root
echo "packages: $CHECKS checks passed"
