//! A USB security key for the tests: `mfa-fakekey` (tests/fakekey), a
//! software FIDO2 authenticator someone else wrote (soft-fido2) served as a
//! FUSE file that hidapi opens like `/dev/hidraw0`, with a fake sysfs entry
//! mfad finds it by. mfad drives it through the real, unmodified
//! ctap-hid-fido2. What stays untested — the kernel's hidraw driver, USB,
//! udev, a physical touch — is listed in tests/fakekey/README.md.

use crate::process::Running;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use tempfile::TempDir;

pub struct FakeKey {
    dir: TempDir,
    /// The node's name (`hidraw0`).
    node: String,
    /// Where its sysfs entry is kept (its own tree, or a [`KeyRing`]'s).
    sysfs: PathBuf,
    running: Option<Running>,
}

impl FakeKey {
    /// A key with no PIN, touched at once.
    pub fn start() -> FakeKey {
        FakeKey::start_with(&[])
    }

    /// A key started with these extra flags (`--pin 1234`, …).
    pub fn start_with(flags: &[&str]) -> FakeKey {
        let dir = crate::shared_tempdir("mfa-fakekey-");
        let sysfs = dir.path().join("sys");
        let mut key = FakeKey {
            dir,
            node: "hidraw0".into(),
            sysfs,
            running: None,
        };
        key.launch(flags);
        key
    }

    fn launch(&mut self, flags: &[&str]) {
        let mut cmd = Command::new(crate::bins::fakekey());
        cmd.arg("--mount")
            .arg(self.dev())
            .arg("--node")
            .arg(&self.node)
            .arg("--sysfs")
            .arg(self.sysfs())
            .arg("--state")
            .arg(self.state())
            .arg("--control")
            .arg(self.control_path())
            .args(flags);
        crate::process::die_with_parent(&mut cmd);
        let mut running = Running::spawn("mfa-fakekey", &mut cmd);
        let ready = running
            .next_line(crate::QUICK)
            .unwrap_or_else(|| panic!("mfa-fakekey never said ready"));
        assert!(ready.starts_with("ready "), "mfa-fakekey said {ready:?}");
        self.running = Some(running);
    }

    /// Where the `hidraw0` node is (mfad's `[fido2] dev`).
    pub fn dev(&self) -> PathBuf {
        self.dir.path().join("dev")
    }

    /// The fake sysfs root (mfad's `[fido2] sysfs`).
    pub fn sysfs(&self) -> PathBuf {
        self.sysfs.clone()
    }

    /// The key's credentials and counters; a copy is a cloned key.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("key.json")
    }

    fn control_path(&self) -> PathBuf {
        self.dir.path().join("control")
    }

    /// Send a control command (`presence deny`, `unplug`, …); its answer,
    /// which comes once the command has taken effect.
    pub fn control(&self, command: &str) -> String {
        let mut stream = UnixStream::connect(self.control_path())
            .unwrap_or_else(|e| panic!("cannot reach mfa-fakekey's control socket: {e}"));
        stream
            .set_read_timeout(Some(crate::QUICK))
            .expect("read timeout");
        stream
            .write_all(format!("{command}\n").as_bytes())
            .expect("send a control command");
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .expect("read the control answer");
        let answer = answer.trim_end().to_string();
        assert!(answer.starts_with("ok"), "{command:?}: {answer}");
        answer
    }

    /// The `status` line's value of `field` (`up_requests`, `credentials`, …).
    pub fn status(&self, field: &str) -> String {
        let status = self.control("status");
        status
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
            .unwrap_or_else(|| panic!("no {field} in {status}"))
            .to_string()
    }

    /// Make a credential for `rp_id` on the key from this process, as
    /// pamu2fcfg does (through ctap-hid-fido2 too): its id and its public
    /// key (ES256: the uncompressed P-256 point; `eddsa`: Ed25519, 32 bytes).
    pub fn make_credential(&self, rp_id: &str, eddsa: bool) -> (Vec<u8>, Vec<u8>) {
        let mut cfg = ctap_hid_fido2::LibCfg::init();
        cfg.enable_keep_alive_msg = false;
        let node = self.dev().join(&self.node);
        let key = ctap_hid_fido2::FidoKeyHidFactory::create_by_params(
            &[ctap_hid_fido2::HidParam::Path(node.display().to_string())],
            &cfg,
        )
        .expect("open the fake key")
        .with_pin_protocol_version(2);
        let challenge = [7u8; 32];
        let mut args = ctap_hid_fido2::fidokey::MakeCredentialArgsBuilder::new(rp_id, &challenge)
            .without_pin_and_uv();
        if eddsa {
            args = args.key_type(ctap_hid_fido2::fidokey::CredentialSupportedKeyType::Ed25519);
        }
        let args = args.build();
        let made = key
            .make_credential_with_args(&args)
            .expect("make a credential");
        (made.credential_descriptor.id, made.credential_publickey.der)
    }

    /// The `[fido2]` table of an mfad.toml that uses this key.
    pub fn mfad_table(&self, rp_id: &str) -> String {
        format!(
            "[fido2]\nenabled = true\nrp_id = \"{rp_id}\"\nsysfs = \"{}\"\ndev = \"{}\"\n",
            self.sysfs().display(),
            self.dev().display()
        )
    }
}

/// Several keys plugged into one machine: each fake key in its own FUSE
/// mount under its own node name (`hidraw0`, `hidraw1`, …), their sysfs
/// entries in one shared tree, and a plain directory of links to their
/// nodes as mfad's `dev` (one FUSE mount cannot hold two keys' nodes).
pub struct KeyRing {
    /// Dropped (stopped) before the shared tree goes.
    pub keys: Vec<FakeKey>,
    dir: TempDir,
}

impl KeyRing {
    /// `count` keys with no PIN, touched at once, all plugged in.
    pub fn start(count: usize) -> KeyRing {
        KeyRing::start_with(&vec![&[][..]; count])
    }

    /// One key per entry of `flags`, started with those flags.
    pub fn start_with(flags: &[&[&str]]) -> KeyRing {
        let dir = crate::shared_tempdir("mfa-keyring-");
        let (sysfs, dev) = (dir.path().join("sys"), dir.path().join("dev"));
        std::fs::create_dir_all(&dev).expect("the ring's dev directory");
        let keys = flags
            .iter()
            .enumerate()
            .map(|(i, flags)| {
                let mut key = FakeKey {
                    dir: crate::shared_tempdir("mfa-fakekey-"),
                    node: format!("hidraw{i}"),
                    sysfs: sysfs.clone(),
                    running: None,
                };
                key.launch(flags);
                std::os::unix::fs::symlink(key.dev().join(&key.node), dev.join(&key.node))
                    .expect("link the key's node");
                key
            })
            .collect();
        KeyRing { keys, dir }
    }

    /// The `[fido2]` table of an mfad.toml that sees every key of the ring.
    pub fn mfad_table(&self, rp_id: &str) -> String {
        format!(
            "[fido2]\nenabled = true\nrp_id = \"{rp_id}\"\nsysfs = \"{}\"\ndev = \"{}\"\n",
            self.dir.path().join("sys").display(),
            self.dir.path().join("dev").display()
        )
    }
}

impl Drop for FakeKey {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let pid = running.id() as libc::pid_t;
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let _ = running.finish(crate::QUICK);
        }
    }
}
