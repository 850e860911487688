//! End to end: the mfa-fakekey binary serves a soft-fido2 key as a FUSE
//! file, and the real, unmodified ctap-hid-fido2 (through hidapi's hidraw
//! backend, `HidParam::Path`) registers and authenticates with it.
//! Signatures are checked independently with p256 / ed25519-dalek.
//!
//! Needs root and /dev/fuse. Every test starts its own key in its own
//! temporary directory and synchronises on the `ready` line and on control
//! answers, never on sleeps.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctap_hid_fido2::fidokey::get_assertion::get_assertion_params::Assertion;
use ctap_hid_fido2::fidokey::make_credential::Attestation;
use ctap_hid_fido2::fidokey::{
    CredentialSupportedKeyType, GetAssertionArgsBuilder, MakeCredentialArgsBuilder,
};
use ctap_hid_fido2::{verifier, FidoKeyHid, FidoKeyHidFactory, HidParam, LibCfg};
use sha2::{Digest, Sha256};

const RP: &str = "pam://testhost";

/// ctap-hid-fido2's errors are anyhow::Error; the tests keep their text
/// (`{:#}`), which carries the CTAP status byte, e.g. "0x27 ...".
type CtapResult<T> = Result<T, String>;

struct FakeKey {
    child: Option<Child>,
    dir: tempfile::TempDir,
    node: PathBuf,
    state: PathBuf,
}

impl FakeKey {
    /// A fresh key, its state in its own directory.
    fn start(args: &[&str]) -> FakeKey {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        Self::start_in(dir, state, args)
    }

    /// A key whose state is (a copy of) an existing state file.
    fn start_with_state(state: &Path, args: &[&str]) -> FakeKey {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, state.to_path_buf(), args)
    }

    fn start_in(dir: tempfile::TempDir, state: PathBuf, args: &[&str]) -> FakeKey {
        assert!(
            Path::new("/dev/fuse").exists() && nix::unistd::geteuid().is_root(),
            "these tests need root and /dev/fuse"
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_mfa-fakekey"))
            .arg("--mount")
            .arg(dir.path().join("dev"))
            .arg("--control")
            .arg(dir.path().join("control"))
            .arg("--sysfs")
            .arg(dir.path().join("sys"))
            .arg("--state")
            .arg(&state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mfa-fakekey");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let node = match line.trim_end().strip_prefix("ready ") {
            Some(path) => PathBuf::from(path),
            None => {
                let status = child.wait().unwrap();
                panic!("mfa-fakekey did not get ready ({status}), said {line:?}");
            }
        };
        FakeKey {
            child: Some(child),
            dir,
            node,
            state,
        }
    }

    fn path(&self) -> String {
        self.node.to_str().unwrap().to_string()
    }

    fn sysfs_node(&self) -> PathBuf {
        self.dir.path().join("sys/class/hidraw/hidraw0")
    }

    /// One control command; its answer line.
    fn control(&self, command: &str) -> String {
        let mut s = UnixStream::connect(self.dir.path().join("control")).unwrap();
        writeln!(s, "{command}").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    /// A control command that must succeed.
    fn ctl(&self, command: &str) {
        let answer = self.control(command);
        assert_eq!(answer, "ok", "control {command:?}");
    }

    /// One field of `status`.
    fn status(&self, field: &str) -> String {
        let answer = self.control("status");
        let details = answer.strip_prefix("ok ").expect("status answers ok");
        details
            .split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{field}=")[..]))
            .unwrap_or_else(|| panic!("no {field} in {answer:?}"))
            .to_string()
    }

    /// Waits (by asking, no sleeping) until `field` of `status` is `value`.
    fn await_status(&self, field: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status(field) != value {
            assert!(Instant::now() < deadline, "{field} never became {value}");
        }
    }

    /// ctap-hid-fido2 on the node, as mfad would open a key, speaking PIN/UV
    /// auth protocol 2 (the only one the fake key offers).
    fn open(&self) -> FidoKeyHid {
        self.open_default().with_pin_protocol_version(2)
    }

    /// ctap-hid-fido2 with its defaults (PIN/UV auth protocol 1).
    fn open_default(&self) -> FidoKeyHid {
        let mut cfg = LibCfg::init();
        // Otherwise ctap-hid-fido2 prints "touch the sensor" to stdout.
        cfg.enable_keep_alive_msg = false;
        FidoKeyHidFactory::create_by_params(&[HidParam::Path(self.path())], &cfg)
            .expect("ctap-hid-fido2 opens the node")
    }

    /// SIGTERM; the key must exit 0 and leave no mount behind.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "mfa-fakekey exited with {status}");
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = self.dir.path().join("dev");
        assert!(
            !mounts.contains(mount.to_str().unwrap()),
            "{} is still mounted",
            mount.display()
        );
    }
}

impl Drop for FakeKey {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

fn challenge() -> Vec<u8> {
    verifier::create_challenge().to_vec()
}

/// The attested credential's COSE key from authData:
/// rpIdHash(32) flags(1) signCount(4) aaguid(16) credIdLen(2) credId COSE_Key.
fn cose_key(att: &Attestation) -> Vec<(i64, ciborium::Value)> {
    let ad = &att.auth_data;
    let id_len = u16::from_be_bytes([ad[53], ad[54]]) as usize;
    assert_eq!(&ad[55..55 + id_len], &att.credential_descriptor.id[..]);
    let value: ciborium::Value = ciborium::from_reader(&ad[55 + id_len..]).unwrap();
    value
        .into_map()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (i128::from(k.into_integer().unwrap()) as i64, v))
        .collect()
}

fn cose_get(key: &[(i64, ciborium::Value)], label: i64) -> &ciborium::Value {
    &key.iter().find(|(k, _)| *k == label).unwrap().1
}

fn cose_alg(att: &Attestation) -> i64 {
    let key = cose_key(att);
    i128::from(cose_get(&key, 3).as_integer().unwrap()) as i64
}

/// The SEC1 uncompressed point of an ES256 credential.
fn p256_point(att: &Attestation) -> Vec<u8> {
    let key = cose_key(att);
    let mut point = vec![0x04];
    point.extend_from_slice(cose_get(&key, -2).as_bytes().unwrap());
    point.extend_from_slice(cose_get(&key, -3).as_bytes().unwrap());
    point
}

/// What a WebAuthn assertion signs: authData || clientDataHash, and
/// ctap-hid-fido2 makes clientDataHash = SHA-256(challenge).
fn signed_message(assertion: &Assertion, challenge: &[u8]) -> Vec<u8> {
    let mut msg = assertion.auth_data.clone();
    msg.extend_from_slice(&Sha256::digest(challenge));
    msg
}

fn verify_es256(point: &[u8], assertion: &Assertion, challenge: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
    let Ok(sig) = p256::ecdsa::Signature::from_der(&assertion.signature) else {
        return false;
    };
    key.verify(&signed_message(assertion, challenge), &sig)
        .is_ok()
}

fn verify_ed25519(public: &[u8], assertion: &Assertion, challenge: &[u8]) -> bool {
    use ed25519_dalek::Verifier;
    let key = ed25519_dalek::VerifyingKey::from_bytes(public.try_into().unwrap()).unwrap();
    let Ok(sig) = ed25519_dalek::Signature::from_slice(&assertion.signature) else {
        return false;
    };
    key.verify(&signed_message(assertion, challenge), &sig)
        .is_ok()
}

fn register(key: &FidoKeyHid, pin: Option<&str>) -> Attestation {
    let challenge = challenge();
    let args = match pin {
        Some(pin) => MakeCredentialArgsBuilder::new(RP, &challenge).pin(pin),
        None => MakeCredentialArgsBuilder::new(RP, &challenge).without_pin_and_uv(),
    }
    .build();
    key.make_credential_with_args(&args)
        .expect("make_credential")
}

fn assert_with(
    key: &FidoKeyHid,
    credential_id: &[u8],
    challenge: &[u8],
    pin: Option<&str>,
) -> CtapResult<Assertion> {
    let builder = GetAssertionArgsBuilder::new(RP, challenge).credential_id(credential_id);
    let args = match pin {
        Some(pin) => builder.pin(pin),
        None => builder.without_pin_and_uv(),
    }
    .build();
    let mut assertions = key
        .get_assertion_with_args(&args)
        .map_err(|e| format!("{e:#}"))?;
    assert_eq!(assertions.len(), 1);
    Ok(assertions.remove(0))
}

fn assertion(key: &FidoKeyHid, credential_id: &[u8], pin: Option<&str>) -> (Vec<u8>, Assertion) {
    let challenge = challenge();
    let a = assert_with(key, credential_id, &challenge, pin).expect("get_assertion");
    (challenge, a)
}

fn expect_status(result: CtapResult<Assertion>, code: &str) {
    match result {
        Ok(a) => panic!(
            "expected {code}, got an assertion with count {}",
            a.sign_count
        ),
        Err(e) => assert!(e.contains(code), "expected {code}, got {e:?}"),
    }
}

#[test]
fn es256_register_and_authenticate() {
    let fake = FakeKey::start(&[]);
    let key = fake.open();

    let info = key.get_info().unwrap();
    assert!(
        info.versions.iter().any(|v| v == "FIDO_2_0"),
        "{:?}",
        info.versions
    );
    assert_eq!(info.aaguid, b"mfa-fakekey-test");
    let options: Vec<(&str, bool)> = info.options.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        options,
        [
            ("rk", true),
            ("up", true),
            ("plat", false),
            ("alwaysUv", false),
            ("credMgmt", true),
            ("clientPin", false), // supported, not set
            ("pinUvAuthToken", true),
            ("makeCredUvNotRqd", false),
        ]
    );
    assert_eq!(info.transports, ["usb"]);
    assert_eq!(info.pin_uv_auth_protocols, vec![2]);

    let att = register(&key, None);
    assert_eq!(cose_alg(&att), -7);
    assert!(att.flags.user_present_result);
    assert!(!att.flags.user_verified_result);
    assert_eq!(att.credential_publickey.der, p256_point(&att));

    let (c1, a1) = assertion(&key, &att.credential_descriptor.id, None);
    let (c2, a2) = assertion(&key, &att.credential_descriptor.id, None);
    assert_ne!(c1, c2);
    assert!(a1.sign_count >= 1);
    assert!(
        a2.sign_count > a1.sign_count,
        "{} then {}",
        a1.sign_count,
        a2.sign_count
    );
    assert_eq!(a1.credential_id, att.credential_descriptor.id);
    assert!(a1.flags.user_present_result);
    assert!(!a1.flags.user_verified_result);
    assert_eq!(a1.rpid_hash, Sha256::digest(RP.as_bytes()).to_vec());

    let point = p256_point(&att);
    assert!(verify_es256(&point, &a1, &c1));
    assert!(verify_es256(&point, &a2, &c2));
    // Wrong challenge, wrong data: the check is not vacuous.
    assert!(!verify_es256(&point, &a1, &c2));
    // ctap-hid-fido2's own verifier agrees.
    assert!(verifier::verify_assertion(
        RP,
        &att.credential_publickey,
        &c2,
        &a2
    ));
    assert_eq!(fake.status("up_requests"), "3");
    assert_eq!(fake.status("credentials"), "1");
    drop(key);
    fake.stop();
}

#[test]
fn eddsa_register_and_authenticate() {
    let fake = FakeKey::start(&["--alg", "eddsa"]);
    let key = fake.open();
    let info = key.get_info().unwrap();
    // ctap-hid-fido2 flattens getInfo's algorithms into (key, value) pairs.
    let algs: Vec<&str> = info
        .algorithms
        .iter()
        .filter(|(k, _)| k == "alg")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(algs, ["-8"], "{:?}", info.algorithms);

    let challenge0 = challenge();
    let args = MakeCredentialArgsBuilder::new(RP, &challenge0)
        .without_pin_and_uv()
        .key_type(CredentialSupportedKeyType::Ed25519)
        .build();
    let att = key.make_credential_with_args(&args).unwrap();
    assert_eq!(cose_alg(&att), -8);
    let cose = cose_key(&att);
    assert_eq!(i128::from(cose_get(&cose, 1).as_integer().unwrap()), 1); // OKP
    assert_eq!(i128::from(cose_get(&cose, -1).as_integer().unwrap()), 6); // Ed25519
    let public = cose_get(&cose, -2).as_bytes().unwrap().clone();
    assert_eq!(att.credential_publickey.der, public);

    let (c1, a1) = assertion(&key, &att.credential_descriptor.id, None);
    let (c2, a2) = assertion(&key, &att.credential_descriptor.id, None);
    assert!(a2.sign_count > a1.sign_count);
    assert!(verify_ed25519(&public, &a1, &c1));
    assert!(verify_ed25519(&public, &a2, &c2));
    assert!(!verify_ed25519(&public, &a2, &c1));

    // This key offers EdDSA only: an ES256-only request is refused.
    let args = MakeCredentialArgsBuilder::new(RP, &challenge0)
        .without_pin_and_uv()
        .build();
    let e = key.make_credential_with_args(&args).unwrap_err();
    assert!(format!("{e:#}").contains("0x26"), "{e:#}"); // UNSUPPORTED_ALGORITHM
}

#[test]
fn es256_only_key_refuses_eddsa() {
    let fake = FakeKey::start(&["--alg", "es256"]);
    let key = fake.open();
    let challenge = challenge();
    let args = MakeCredentialArgsBuilder::new(RP, &challenge)
        .without_pin_and_uv()
        .key_type(CredentialSupportedKeyType::Ed25519)
        .build();
    let e = key.make_credential_with_args(&args).unwrap_err();
    assert!(format!("{e:#}").contains("0x26"), "{e:#}");
}

#[test]
fn presence_deny_timeout_accept() {
    let fake = FakeKey::start(&[]);
    let key = fake.open();
    let att = register(&key, None);
    let id = &att.credential_descriptor.id;
    let (_, first) = assertion(&key, id, None);

    fake.ctl("presence deny");
    expect_status(assert_with(&key, id, &challenge(), None), "0x27"); // OPERATION_DENIED
    fake.ctl("presence timeout");
    expect_status(assert_with(&key, id, &challenge(), None), "0x2F"); // USER_ACTION_TIMEOUT
    fake.ctl("presence accept");
    let (_, next) = assertion(&key, id, None);
    // Refused touches do not advance the counter.
    assert_eq!(next.sign_count, first.sign_count + 1);

    // A denied registration is refused as well.
    fake.ctl("presence deny");
    let challenge = challenge();
    let args = MakeCredentialArgsBuilder::new(RP, &challenge)
        .without_pin_and_uv()
        .build();
    let e = key.make_credential_with_args(&args).unwrap_err();
    assert!(format!("{e:#}").contains("0x27"), "{e:#}");
    assert_eq!(fake.status("credentials"), "1");
}

#[test]
fn delayed_touch_sends_keepalives() {
    let fake = FakeKey::start(&["--presence", "delay:300"]);
    let key = fake.open();
    let started = Instant::now();
    let att = register(&key, None);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let keepalives: u32 = fake.status("keepalives").parse().unwrap();
    assert!(keepalives >= 3, "{keepalives} keepalives in 300 ms");

    fake.ctl("presence delay 200 deny");
    let started = Instant::now();
    expect_status(
        assert_with(&key, &att.credential_descriptor.id, &challenge(), None),
        "0x27",
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn pin_right_and_wrong() {
    let fake = FakeKey::start(&["--pin", "1234"]);
    // ctap-hid-fido2's default PIN/UV auth protocol is 1, which the key
    // does not offer: a PIN operation fails with INVALID_PARAMETER.
    let v1 = fake.open_default();
    let challenge0 = challenge();
    let args = MakeCredentialArgsBuilder::new(RP, &challenge0)
        .pin("1234")
        .build();
    let e = v1.make_credential_with_args(&args).unwrap_err();
    assert!(format!("{e:#}").contains("0x02"), "{e:#}");
    assert_eq!(v1.get_pin_retries().unwrap(), 8);
    drop(v1);

    let key = fake.open();
    let info = key.get_info().unwrap();
    assert!(info.options.contains(&("clientPin".to_string(), true)));
    assert_eq!(key.get_pin_retries().unwrap(), 8);

    // A key with a PIN refuses to register without it (CTAP 2.0 rules).
    let args = MakeCredentialArgsBuilder::new(RP, &challenge0)
        .without_pin_and_uv()
        .build();
    let e = key.make_credential_with_args(&args).unwrap_err();
    assert!(format!("{e:#}").contains("0x36"), "{e:#}"); // PIN_REQUIRED

    let att = register(&key, Some("1234"));
    assert!(att.flags.user_verified_result);
    let id = &att.credential_descriptor.id;

    let (c, a) = assertion(&key, id, Some("1234"));
    assert!(a.flags.user_verified_result && a.flags.user_present_result);
    assert!(verify_es256(&p256_point(&att), &a, &c));

    expect_status(assert_with(&key, id, &challenge(), Some("9999")), "0x31"); // PIN_INVALID
    assert_eq!(fake.status("pin_retries"), "7");
    assert_eq!(key.get_pin_retries().unwrap(), 7);

    // Without PIN the key still gives an up-only assertion (no alwaysUv).
    let (_, plain) = assertion(&key, id, None);
    assert!(!plain.flags.user_verified_result);

    // The right PIN resets the retries.
    let (c, a) = assertion(&key, id, Some("1234"));
    assert!(a.flags.user_verified_result);
    assert!(verify_es256(&p256_point(&att), &a, &c));
    assert_eq!(fake.status("pin_retries"), "8");
}

#[test]
fn three_wrong_pins_need_a_power_cycle() {
    let fake = FakeKey::start(&["--pin", "1234"]);
    let key = fake.open();
    let att = register(&key, Some("1234"));
    let id = &att.credential_descriptor.id;
    expect_status(assert_with(&key, id, &challenge(), Some("0000")), "0x31");
    expect_status(assert_with(&key, id, &challenge(), Some("0000")), "0x31");
    expect_status(assert_with(&key, id, &challenge(), Some("0000")), "0x34"); // PIN_AUTH_BLOCKED
                                                                              // Until a power cycle even the right PIN is refused, and not counted.
    expect_status(assert_with(&key, id, &challenge(), Some("1234")), "0x34");
    assert_eq!(fake.status("pin_retries"), "5");
    assert_eq!(fake.status("pin_auth_blocked"), "yes");
    // Presence alone still works.
    assertion(&key, id, None);

    fake.ctl("unplug");
    fake.ctl("plug");
    assert_eq!(fake.status("pin_auth_blocked"), "no");
    let key = fake.open();
    assertion(&key, id, Some("1234"));
    assert_eq!(fake.status("pin_retries"), "8");
}

#[test]
fn cred_protect_is_level_1_unless_asked() {
    use ctap_hid_fido2::fidokey::credential_management::credential_management_params::CredentialProtectionPolicy;
    use ctap_hid_fido2::fidokey::CredentialExtension;
    let fake = FakeKey::start(&["--pin", "1234"]);
    let key = fake.open();
    // Registered with the PIN, no credProtect asked: presence is enough later.
    let plain = register(&key, Some("1234"));
    assertion(&key, &plain.credential_descriptor.id, None);

    // Registered asking for userVerificationRequired: the PIN is needed.
    let challenge0 = challenge();
    let args = MakeCredentialArgsBuilder::new(RP, &challenge0)
        .pin("1234")
        .extensions(&[CredentialExtension::CredProtect(Some(
            CredentialProtectionPolicy::UserVerificationRequired,
        ))])
        .build();
    let strict = key.make_credential_with_args(&args).unwrap();
    let id = &strict.credential_descriptor.id;
    expect_status(assert_with(&key, id, &challenge(), None), "0x2E"); // NO_CREDENTIALS
    assertion(&key, id, Some("1234"));
}

#[test]
fn pin_blocks_after_max_retries_and_stays_blocked() {
    let fake = FakeKey::start(&["--pin", "1234", "--max-pin-retries", "2"]);
    let key = fake.open();
    let att = register(&key, Some("1234"));
    let id = att.credential_descriptor.id.clone();
    expect_status(assert_with(&key, &id, &challenge(), Some("0000")), "0x31");
    expect_status(assert_with(&key, &id, &challenge(), Some("0000")), "0x32"); // PIN_BLOCKED
    expect_status(assert_with(&key, &id, &challenge(), Some("1234")), "0x32");
    assert_eq!(fake.status("pin_retries"), "0");
    drop(key);
    let kept = tempfile::tempdir().unwrap();
    let keep = kept.path().join("kept.json");
    fs::copy(&fake.state, &keep).unwrap();
    fake.stop();

    // The block is in the state: a restarted key is still blocked.
    let again = FakeKey::start_with_state(&keep, &["--pin", "1234", "--max-pin-retries", "2"]);
    let key = again.open();
    expect_status(assert_with(&key, &id, &challenge(), Some("1234")), "0x32");
    // Presence alone still works (a PIN-less assertion is not UV).
    assertion(&key, &id, None);
}

#[test]
fn state_survives_restart_and_clones_share_a_counter() {
    let fake = FakeKey::start(&[]);
    let state = fake.state.clone();
    let key = fake.open();
    let att = register(&key, None);
    let id = att.credential_descriptor.id.clone();
    let point = p256_point(&att);
    let (_, a1) = assertion(&key, &id, None);
    drop(key);
    let keep = tempfile::tempdir().unwrap();
    let saved = keep.path().join("state.json");
    // The state holds private keys: 0600.
    assert_eq!(
        fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::copy(&state, &saved).unwrap();
    fake.stop();

    // Restart: same credential, counter goes on.
    let restarted = FakeKey::start_with_state(&saved, &[]);
    let key = restarted.open();
    let (c2, a2) = assertion(&key, &id, None);
    assert_eq!(a2.sign_count, a1.sign_count + 1);
    assert!(verify_es256(&point, &a2, &c2));

    // A clone: a copy of the state taken now, served by a second key.
    let clone_state = keep.path().join("clone.json");
    fs::copy(&saved, &clone_state).unwrap();
    let clone = FakeKey::start_with_state(&clone_state, &[]);
    let clone_key = clone.open();
    let (c3, from_clone) = assertion(&clone_key, &id, None);
    let (_, from_original) = assertion(&key, &id, None);
    assert!(verify_es256(&point, &from_clone, &c3));
    // Both keys report the same next count: what a relying party sees
    // when a key has been cloned.
    assert_eq!(from_clone.sign_count, a2.sign_count + 1);
    assert_eq!(from_original.sign_count, from_clone.sign_count);
}

#[test]
fn counter_modes() {
    let fake = FakeKey::start(&[]);
    let key = fake.open();
    let att = register(&key, None);
    let id = &att.credential_descriptor.id;
    let point = p256_point(&att);
    let (_, first) = assertion(&key, id, None);

    fake.ctl("counter constant");
    let (c, a) = assertion(&key, id, None);
    assert_eq!(a.sign_count, 0);
    assert!(verify_es256(&point, &a, &c));
    assert_eq!(assertion(&key, id, None).1.sign_count, 0);

    fake.ctl("counter freeze");
    let frozen = assertion(&key, id, None).1.sign_count;
    assert_eq!(frozen, first.sign_count + 1);
    assert_eq!(assertion(&key, id, None).1.sign_count, frozen);

    fake.ctl("counter normal");
    assert_eq!(assertion(&key, id, None).1.sign_count, frozen);
    assert_eq!(assertion(&key, id, None).1.sign_count, frozen + 1);

    fake.ctl("counter set 100");
    assert_eq!(assertion(&key, id, None).1.sign_count, 101);
    assert!(fake.control("counter sideways").starts_with("err "));
    assert!(fake.control("counter set -1").starts_with("err "));
    assert!(fake.control("jump").starts_with("err "));
}

#[test]
fn unplug_fails_a_waiting_read_and_plug_brings_the_key_back() {
    let fake = FakeKey::start(&[]);
    let key = fake.open();
    let att = register(&key, None);
    let id = att.credential_descriptor.id.clone();
    assert!(fake.sysfs_node().join("uevent").exists());

    // A raw reader blocked in read(), as hidapi's blocking hid_read is.
    let mut raw = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fake.node)
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        raw.read(&mut buf)
    });
    fake.await_status("readers", "1");
    fake.ctl("unplug");
    let err = reader.join().unwrap().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));

    // The node and its sysfs entry are gone; the open key fails.
    assert_eq!(
        fs::metadata(&fake.node).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    assert!(!fake.sysfs_node().exists());
    assert!(assert_with(&key, &id, &challenge(), None).is_err());
    assert_eq!(fake.status("plugged"), "no");

    fake.ctl("plug");
    assert!(fake.sysfs_node().join("uevent").exists());
    // The old handle stays dead, as a file of a removed hidraw device.
    assert!(assert_with(&key, &id, &challenge(), None).is_err());
    let key = fake.open();
    assertion(&key, &id, None);
    drop(key);
    fake.stop();
}

#[test]
fn raw_hidraw_behaviour_and_sysfs() {
    let fake = FakeKey::start(&[]);
    let meta = fs::metadata(&fake.node).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // Sysfs: DEVNAME and the report descriptor hidraw would expose.
    let node = fake.sysfs_node();
    assert_eq!(
        fs::read_to_string(node.join("uevent")).unwrap(),
        "DEVNAME=hidraw0\n"
    );
    let desc = fs::read(node.join("device/report_descriptor")).unwrap();
    assert_eq!(&desc[..5], &[0x06, 0xD0, 0xF1, 0x09, 0x01]);
    let uevent = fs::read_to_string(node.join("device/uevent")).unwrap();
    assert!(
        uevent.contains("HID_ID=0003:00001209:00000001\n"),
        "{uevent}"
    );

    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fake.node)
        .unwrap();
    let fd = file.as_raw_fd();

    // HIDIOCGRDESCSIZE / HIDIOCGRDESC agree with sysfs.
    let mut size: libc::c_int = 0;
    assert_eq!(unsafe { libc::ioctl(fd, 0x8004_4801, &mut size) }, 0);
    assert_eq!(size as usize, desc.len());
    let mut rdesc = vec![0u8; 4100];
    rdesc[..4].copy_from_slice(&(size as u32).to_ne_bytes());
    assert_eq!(
        unsafe { libc::ioctl(fd, 0x9004_4802, rdesc.as_mut_ptr()) },
        0
    );
    assert_eq!(&rdesc[4..4 + desc.len()], &desc[..]);
    // An ioctl hidraw does not have.
    assert_eq!(unsafe { libc::ioctl(fd, 0x5401, rdesc.as_mut_ptr()) }, -1);

    // Nothing to read yet: poll says so, a non-blocking read says EAGAIN.
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
    let mut buf = [0u8; 64];
    let err = file.read(&mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));

    // CTAPHID_INIT on the broadcast channel, report ID 0 first.
    let nonce = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let mut out = [0u8; 65];
    out[1..5].copy_from_slice(&[0xFF; 4]);
    out[5] = 0x86;
    out[7] = 8;
    out[8..16].copy_from_slice(&nonce);
    assert_eq!(file.write(&out).unwrap(), 65);
    // A report ID other than 0 is refused (the descriptor declares none).
    let mut bad = out;
    bad[0] = 1;
    assert_eq!(
        file.write(&bad).unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );

    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 10_000) }, 1);
    assert!(pfd.revents & libc::POLLIN != 0);
    assert_eq!(file.read(&mut buf).unwrap(), 64);
    assert_eq!(&buf[..5], &[0xFF, 0xFF, 0xFF, 0xFF, 0x86]);
    assert_eq!(&buf[7..15], &nonce);

    // Unplugged: poll reports the hang-up, as hidapi checks for.
    fake.ctl("unplug");
    pfd.revents = 0;
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 10_000) }, 1);
    assert!(pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0);
    assert_eq!(
        file.write(&out).unwrap_err().raw_os_error(),
        Some(libc::ENODEV)
    );
    drop(file);
    fake.stop();
}

#[test]
fn a_killed_reader_does_not_hang() {
    let fake = FakeKey::start(&[]);
    // cat blocks in read() on the node: nothing is there to read.
    let mut cat = Command::new("cat")
        .arg(&fake.node)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    fake.await_status("readers", "1");
    cat.kill().unwrap(); // SIGKILL
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(cat.wait().unwrap());
    });
    let status = waited
        .recv_timeout(Duration::from_secs(10))
        .expect("a reader killed in read() still hangs");
    assert!(!status.success());
    fake.await_status("readers", "0");
    fake.stop();
}

/// Raw CTAPHID on the node: one 64-byte report, written with report ID 0.
fn write_report(file: &mut fs::File, cid: [u8; 4], cmd: u8, payload: &[u8]) {
    let mut out = [0u8; 65];
    out[1..5].copy_from_slice(&cid);
    out[5] = cmd;
    out[6..8].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    out[8..8 + payload.len()].copy_from_slice(payload);
    assert_eq!(file.write(&out).unwrap(), 65);
}

fn read_report(file: &mut fs::File) -> [u8; 64] {
    let mut buf = [0u8; 64];
    assert_eq!(file.read(&mut buf).unwrap(), 64);
    buf
}

#[test]
fn cancel_ends_a_delayed_touch() {
    let fake = FakeKey::start(&["--presence", "delay:60000"]);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fake.node)
        .unwrap();
    write_report(&mut file, [0xFF; 4], 0x86, &[9; 8]); // INIT
    let init = read_report(&mut file);
    let cid = [init[15], init[16], init[17], init[18]];

    // authenticatorReset needs a touch, which is 60 s away.
    write_report(&mut file, cid, 0x90, &[0x07]);
    let keepalive = read_report(&mut file);
    assert_eq!(&keepalive[..5], &[cid[0], cid[1], cid[2], cid[3], 0xBB]);
    assert_eq!(keepalive[7], 0x02); // UPNEEDED

    write_report(&mut file, cid, 0x91, &[]); // CANCEL
    let answer = loop {
        let r = read_report(&mut file);
        if r[4] != 0xBB {
            break r;
        }
    };
    assert_eq!(
        &answer[..8],
        &[cid[0], cid[1], cid[2], cid[3], 0x90, 0, 1, 0x2D]
    );
    drop(file);
    fake.stop();
}

#[test]
fn replayed_and_other_rp_assertions() {
    let fake = FakeKey::start(&[]);
    let key = fake.open();
    let att = register(&key, None);
    let point = p256_point(&att);
    let (c1, a1) = assertion(&key, &att.credential_descriptor.id, None);

    // replay: the last assertion again, byte for byte, without a touch.
    fake.ctl("assertion replay");
    assert!(fake.control("status").contains(" assertion=replay "));
    let touches = fake.status("up_requests");
    let (c2, a2) = assertion(&key, &att.credential_descriptor.id, None);
    assert_ne!(c1, c2);
    assert_eq!(a2.auth_data, a1.auth_data);
    assert_eq!(a2.signature, a1.signature);
    assert_eq!(fake.status("up_requests"), touches);
    assert!(
        verify_es256(&point, &a2, &c1),
        "valid for the old challenge"
    );
    assert!(!verify_es256(&point, &a2, &c2), "not for the new one");

    // other-rp: a touch, a higher counter, a valid signature, and the hash
    // of another relying party.
    fake.ctl("assertion other-rp");
    let (c3, a3) = assertion(&key, &att.credential_descriptor.id, None);
    assert_eq!(a3.rpid_hash, Sha256::digest(b"evil.example").to_vec());
    assert!(a3.sign_count > a1.sign_count);
    assert!(
        verify_es256(&point, &a3, &c3),
        "validly signed, for evil.example"
    );

    fake.ctl("assertion normal");
    let (c4, a4) = assertion(&key, &att.credential_descriptor.id, None);
    assert_eq!(a4.rpid_hash, Sha256::digest(RP.as_bytes()).to_vec());
    assert!(verify_es256(&point, &a4, &c4));
    assert!(fake.control("assertion sideways").starts_with("err "));
}
