//! A user's `~/.google_authenticator` brought over whole: the TOTP or HOTP
//! factor where it stands (the next counter, the steps already used), and
//! the scratch codes as recovery codes, each usable once — in one store
//! transaction. What mfad does its own way (rate limits, the window) is
//! reported, not copied. The file itself is never touched: mfactl reads
//! it and sends its text.

use super::Importer;
use crate::error::DaemonError;
use crate::import::google_authenticator::{self as ga, GaKind};
use crate::mechanism::{recovery, Algorithm, FactorData, FactorKind, OtpParams};
use crate::service::{new_id, Service};
use crate::store::FactorRecord;
use mfa_dbus::{ImportEntry, ImportReport};

const FORMAT: &str = "google-authenticator";
const LABEL: &str = "google-authenticator";

impl Service {
    pub(super) fn import_google_authenticator(
        &self,
        importer: Importer<'_>,
        text: &str,
        dry_run: bool,
    ) -> Result<ImportReport, DaemonError> {
        let file = ga::parse(text).map_err(|e| DaemonError::InvalidArgument(e.to_string()))?;
        let (by_uid, user) = match importer {
            Importer::Own { uid, user } => (uid, user.to_string()),
            Importer::Admin {
                uid,
                only: Some(user),
            } => (uid, user.to_string()),
            Importer::Admin { only: None, .. } => {
                return Err(DaemonError::InvalidArgument(
                    "a google-authenticator file is one user's and does not name them: \
                     say whose it is (mfactl import google-authenticator --user USER FILE)"
                        .into(),
                ))
            }
        };
        self.known_user(&user)?;
        let (kind, counter, period) = match file.kind {
            GaKind::Totp { period, next_step } => (FactorKind::Totp, next_step, period),
            GaKind::Hotp { counter } => (FactorKind::Hotp, counter, 0),
        };
        let mut report = ImportReport {
            notes: self.not_carried_over(&file, kind),
            ..ImportReport::default()
        };
        if self.mechanisms.get(kind).is_none() || !self.policy().methods.contains(&kind) {
            report.notes.push(format!(
                "{kind} is not among the methods mfad.toml allows: this factor is not asked until it is"
            ));
        }
        let now = self.clock.now();
        let existing = self.store.factors(&user, now)?;
        let entry = |line: usize, kind: &str, label: &str, outcome: &str, id: &str| ImportEntry {
            line: line as u32,
            user: user.clone(),
            kind: kind.into(),
            label: label.into(),
            outcome: outcome.into(),
            id: id.into(),
        };
        // Imported already (a second run): the factor and its scratch codes
        // are left as they are, used or not.
        if let Some(f) = existing
            .iter()
            .find(|f| matches!(&f.data, FactorData::Otp(p) if p.secret == file.secret))
        {
            report
                .entries
                .push(entry(1, f.kind.name(), &f.label, "exists", &f.id));
            for (line, _) in &file.scratch {
                report
                    .entries
                    .push(entry(*line, "recovery-code", "scratch code", "exists", ""));
            }
            return Ok(report);
        }
        let confirmed = existing.iter().filter(|f| f.confirmed).count();
        let limit = self.config.limits.max_factors as usize;
        if confirmed >= limit {
            return Err(DaemonError::LimitReached(format!(
                "{user} has {confirmed} factors; [limits] max_factors allows {limit}: nothing was imported"
            )));
        }
        let factor = FactorRecord {
            id: new_id()?,
            user: user.clone(),
            kind,
            label: LABEL.into(),
            counter,
            data: FactorData::Otp(OtpParams {
                secret: file.secret.clone(),
                algorithm: Algorithm::Sha1,
                digits: ga::DIGITS,
                period,
                drift: 0,
            }),
            confirmed: true,
            approved: false,
            created: now,
            last_used: 0,
            expires: 0,
        };
        let outcome = if dry_run { "would-add" } else { "added" };
        let id = if dry_run { "" } else { factor.id.as_str() };
        report
            .entries
            .push(entry(1, kind.name(), LABEL, outcome, id));
        for (line, _) in &file.scratch {
            report
                .entries
                .push(entry(*line, "recovery-code", "scratch code", outcome, ""));
        }
        if dry_run {
            return Ok(report);
        }
        let codes = file
            .scratch
            .iter()
            .map(|(_, code)| recovery::scratch_hash(code).map(|h| (user.clone(), h)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(DaemonError::Internal)?;
        self.store
            .insert_imported(std::slice::from_ref(&factor), &codes, now)?;
        let scratch = codes.len().to_string();
        self.audit.change(
            "import",
            by_uid,
            &user,
            &[
                ("factor", &factor.id),
                ("method", kind.name()),
                ("from", FORMAT),
                ("scratch_codes", &scratch),
            ],
        );
        Ok(report)
    }

    /// What of `file` mfad does its own way, in words for the report.
    fn not_carried_over(&self, file: &ga::GaFile, kind: FactorKind) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some((logins, seconds)) = file.rate_limit {
            notes.push(format!(
                "RATE_LIMIT {logins} logins per {seconds} s is not carried over: mfad locks the \
                 account after [lockout] max_failures = {} wrong codes instead",
                self.config.lockout.max_failures
            ));
        }
        if let Some(window) = file.window {
            notes.push(match kind {
                FactorKind::Hotp => format!(
                    "WINDOW_SIZE {window} is not carried over: mfad looks [hotp] window = {} codes ahead",
                    self.config.hotp.window
                ),
                _ => format!(
                    "WINDOW_SIZE {window} is not carried over: mfad accepts codes [totp] skew = {} steps either side",
                    self.config.totp.skew
                ),
            });
        }
        if kind == FactorKind::Totp && !file.disallow_reuse {
            notes.push(
                "without DISALLOW_REUSE google-authenticator let a code log in twice; mfad never does"
                    .into(),
            );
        }
        if !file.scratch.is_empty() {
            notes.push(format!(
                "{} scratch codes become recovery codes, each usable once; they are 8 digits \
                 (27 bits): replace them soon with `mfactl recovery-codes`",
                file.scratch.len()
            ));
        }
        notes
    }
}
