//! Each system under test, set up for a set of enrolled users: a PAM
//! service file in a private directory (read through `pam_start_confdir`)
//! and whatever the module keeps its secrets in.
//!
//! | system | PAM line | secrets |
//! |---|---|---|
//! | pam_mfa | `libpam_mfa.so bus=<private bus> socket=<its login socket> timeout=5` (root: the socket) | mfad's store, seeded before mfad starts |
//! | google-authenticator | `pam_google_authenticator.so secret=<dir>/${USER} user=root` | one file per user: secret, `" TOTP_AUTH`, `" DISALLOW_REUSE` |
//! | pam_oath | `pam_oath.so usersfile=<dir>/users.oath window=1 digits=6` | one file, `HOTP/T30 <user> - <hex>` per user |
//!
//! No module looks the user up in the passwd database (google-authenticator
//! does not with `user=`), so the users exist nowhere but here. (pam_oath
//! with a `${USER}` usersfile would: it looks the user up to drop
//! privileges, so that layout is not benchmarked.)

use super::codes::{base32, hex, now, user_name, Secrets, DIGITS, PERIOD};
use super::daemon::{Mfad, Options};
use mfad::mechanism::{Algorithm, FactorData, FactorKind, OtpParams};
use mfad::store::FactorRecord;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The service name in every fixture's PAM directory.
pub const SERVICE: &str = "bench";

/// Debian's `/etc/pam.d/other`, reduced to denying.
const OTHER: &str = "auth required pam_deny.so\naccount required pam_deny.so\n\
                     password required pam_deny.so\nsession required pam_deny.so\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    PamMfa,
    GoogleAuthenticator,
    Oath,
}

impl System {
    pub const ALL: [System; 3] = [System::PamMfa, System::GoogleAuthenticator, System::Oath];

    pub fn label(self) -> &'static str {
        match self {
            System::PamMfa => "pam_mfa (mfad over D-Bus)",
            System::GoogleAuthenticator => "google-authenticator, DISALLOW_REUSE",
            System::Oath => "pam_oath",
        }
    }

    /// Short name for command lines and file names.
    pub fn slug(self) -> &'static str {
        match self {
            System::PamMfa => "pam_mfa",
            System::GoogleAuthenticator => "google-authenticator",
            System::Oath => "pam_oath",
        }
    }
}

/// The binaries the fixtures name.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub mfad: PathBuf,
    pub pam_mfa: PathBuf,
    pub google_authenticator: PathBuf,
    pub oath: PathBuf,
}

impl Binaries {
    /// Whether `system` can run here; `Err` says what is missing.
    pub fn check(&self, system: System) -> Result<(), String> {
        let needed: &[&Path] = match system {
            System::PamMfa => &[&self.mfad, &self.pam_mfa],
            System::GoogleAuthenticator => &[&self.google_authenticator],
            System::Oath => &[&self.oath],
        };
        match needed.iter().find(|p| !p.exists()) {
            Some(missing) => Err(format!("{} is missing", missing.display())),
            None => Ok(()),
        }
    }
}

/// Who is enrolled: TOTP users by index, and for pam_mfa optionally one
/// HOTP user (its counter can move on forever, so one user can log in as
/// often as needed).
#[derive(Clone, Debug, Default)]
pub struct Enrolled {
    pub totp: Vec<u64>,
    pub hotp: Option<u64>,
}

impl Enrolled {
    pub fn totp(users: impl IntoIterator<Item = u64>) -> Enrolled {
        Enrolled {
            totp: users.into_iter().collect(),
            hotp: None,
        }
    }

    pub fn count(&self) -> usize {
        self.totp.len() + usize::from(self.hotp.is_some())
    }
}

/// One system, configured and ready for logins.
pub struct Fixture {
    pub system: System,
    dir: PathBuf,
    // Dropped (stopped) before the directory is removed.
    mfad: Option<Mfad>,
}

impl Fixture {
    /// Set `system` up in a new directory below `root` with `enrolled`.
    pub fn create(
        system: System,
        root: &Path,
        binaries: &Binaries,
        secrets: &Secrets,
        enrolled: &Enrolled,
    ) -> Result<Fixture, String> {
        Fixture::create_with(
            system,
            root,
            binaries,
            secrets,
            enrolled,
            &Options::default(),
        )
    }

    /// As [`Fixture::create`]; pam_mfa's mfad started with `options` (its
    /// store, key and host name; see [`Options`]).
    pub fn create_with(
        system: System,
        root: &Path,
        binaries: &Binaries,
        secrets: &Secrets,
        enrolled: &Enrolled,
        options: &Options,
    ) -> Result<Fixture, String> {
        binaries.check(system)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", system.slug()))
            .tempdir_in(root)
            .map_err(|e| format!("cannot create a directory in {}: {e}", root.display()))?
            .keep();
        let mut fixture = Fixture {
            system,
            dir,
            mfad: None,
        };
        fixture.populate(binaries, secrets, enrolled, options)?;
        Ok(fixture)
    }

    fn populate(
        &mut self,
        binaries: &Binaries,
        secrets: &Secrets,
        enrolled: &Enrolled,
        options: &Options,
    ) -> Result<(), String> {
        if enrolled.hotp.is_some() && self.system != System::PamMfa {
            return Err("only the pam_mfa fixture enrols HOTP users".into());
        }
        let secrets_dir = self.dir.join("secrets");
        mkdir(&secrets_dir)?;
        let line = match self.system {
            System::PamMfa => {
                let mfad = Mfad::start(
                    &binaries.mfad,
                    &self.dir,
                    &mfad_factors(secrets, enrolled),
                    options,
                )?;
                let line = format!(
                    "auth required {} bus={} socket={} timeout=5",
                    binaries.pam_mfa.display(),
                    mfad.bus_address(),
                    mfad.login_socket().display()
                );
                self.mfad = Some(mfad);
                line
            }
            System::GoogleAuthenticator => {
                for &index in &enrolled.totp {
                    let text = format!(
                        "{}\n\" TOTP_AUTH\n\" DISALLOW_REUSE\n",
                        base32(&secrets.secret(index))
                    );
                    write_private(&secrets_dir.join(user_name(index)), &text)?;
                }
                format!(
                    "auth required {} secret={}/${{USER}} user=root",
                    binaries.google_authenticator.display(),
                    secrets_dir.display()
                )
            }
            System::Oath => {
                let mut text = String::new();
                for &index in &enrolled.totp {
                    text.push_str(&oath_line(secrets, index));
                }
                let file = secrets_dir.join("users.oath");
                write_private(&file, &text)?;
                format!(
                    "auth required {} usersfile={} window=1 digits={DIGITS}",
                    binaries.oath.display(),
                    file.display()
                )
            }
        };
        let pam_d = self.confdir();
        mkdir(&pam_d)?;
        std::fs::write(pam_d.join(SERVICE), format!("{line}\n"))
            .map_err(|e| format!("cannot write the PAM service: {e}"))?;
        // As on a real system: without `other`, libpam logs a complaint on
        // every pam_start.
        std::fs::write(pam_d.join("other"), OTHER)
            .map_err(|e| format!("cannot write pam.d/other: {e}"))?;
        Ok(())
    }

    /// The directory `pam_start_confdir` reads [`SERVICE`] from.
    pub fn confdir(&self) -> PathBuf {
        self.dir.join("pam.d")
    }

    /// The bus mfad serves on (pam_mfa only).
    pub fn bus_address(&self) -> Option<&str> {
        self.mfad.as_ref().map(Mfad::bus_address)
    }

    /// CPU time used so far by the system's server side (mfad and its
    /// dbus-daemon); `None` for modules that do everything in the client.
    pub fn server_cpu_ns(&self) -> Option<u64> {
        self.mfad.as_ref().and_then(Mfad::server_cpu_ns)
    }

    /// The key sealing mfad's store (pam_mfa only), for another host of
    /// the same fleet.
    pub fn key_file(&self) -> Option<PathBuf> {
        self.mfad.as_ref().map(Mfad::key_file)
    }

    /// mfad's log, for failure reports (empty for the other systems).
    pub fn daemon_log(&self) -> String {
        self.mfad.as_ref().map(Mfad::log).unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.mfad = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Confirmed factors as mfad stores them: SHA1, 6 digits, 30 s, never used.
fn mfad_factors(secrets: &Secrets, enrolled: &Enrolled) -> Vec<FactorRecord> {
    let created = now();
    let record = |index: u64, kind: FactorKind| FactorRecord {
        id: format!("{}{index:015x}", &kind.name()[..1]),
        user: user_name(index),
        kind,
        label: "bench".into(),
        counter: 0,
        data: FactorData::Otp(OtpParams {
            secret: secrets.secret(index).to_vec(),
            algorithm: Algorithm::Sha1,
            digits: DIGITS,
            period: if kind == FactorKind::Totp {
                PERIOD as u32
            } else {
                0
            },
            drift: 0,
        }),
        confirmed: true,
        approved: false,
        created,
        last_used: 0,
        expires: 0,
    };
    let mut factors: Vec<FactorRecord> = enrolled
        .totp
        .iter()
        .map(|&i| record(i, FactorKind::Totp))
        .collect();
    factors.extend(enrolled.hotp.map(|i| record(i, FactorKind::Hotp)));
    factors
}

/// A usersfile line: TOTP with a 30 s step, no PIN.
fn oath_line(secrets: &Secrets, index: u64) -> String {
    format!(
        "HOTP/T{PERIOD} {} - {}\n",
        user_name(index),
        hex(&secrets.secret(index))
    )
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// A root-owned file only root may read and write (what both modules expect).
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
