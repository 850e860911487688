//! Importing factors from another tool's file: parsed whole first (a bad
//! line names itself and nothing changes), checked against the users and
//! their limits, then added in one store transaction. Keys already there are
//! left alone, so running an import twice changes nothing.

mod google_authenticator;

use super::{new_id, Service};
use crate::error::DaemonError;
use crate::import::{pam_u2f, Format, MAX_FILE};
use crate::mechanism::{FactorData, FactorKind};
use crate::store::FactorRecord;
use mfa_dbus::{ImportEntry, ImportOptions, ImportReport};

/// Whose factors an import may add.
pub enum Importer<'a> {
    /// A user importing their own file: every line must be theirs.
    Own { uid: u32, user: &'a str },
    /// An admin: every user of the file, or only `only`.
    Admin { uid: u32, only: Option<&'a str> },
}

impl Service {
    pub fn import(
        &self,
        importer: Importer<'_>,
        format: &str,
        text: &str,
        options: &ImportOptions,
        dry_run: bool,
    ) -> Result<ImportReport, DaemonError> {
        let invalid = |m: String| Err(DaemonError::InvalidArgument(m));
        let Some(kind) = Format::from_name(format) else {
            return invalid(format!(
                "unknown import format {format:?}; use {}",
                Format::NAMES
            ));
        };
        if text.len() > MAX_FILE {
            return invalid(format!("the file is over {MAX_FILE} bytes"));
        }
        match kind {
            Format::PamU2f => self.import_pam_u2f(importer, text, options, dry_run),
            Format::GoogleAuthenticator => {
                self.import_google_authenticator(importer, text, dry_run)
            }
        }
    }

    fn import_pam_u2f(
        &self,
        importer: Importer<'_>,
        text: &str,
        options: &ImportOptions,
        dry_run: bool,
    ) -> Result<ImportReport, DaemonError> {
        let format = "pam-u2f";
        let invalid = |m: String| Err(DaemonError::InvalidArgument(m));
        let origin = match options.origin.as_str() {
            "" => self.config.fido2.rp_id_on(&self.hostname),
            o => o.to_string(),
        };
        let appid = match options.appid.as_str() {
            "" => origin.clone(),
            a => a.to_string(),
        };
        let entries = pam_u2f::parse(text, &pam_u2f::Origins { origin, appid })
            .map_err(|e| DaemonError::InvalidArgument(e.to_string()))?;
        let mut report = ImportReport::default();
        let (by_uid, entries) = match importer {
            Importer::Own { uid, user } => {
                if let Some(other) = entries.iter().find(|e| e.user != user) {
                    return invalid(format!(
                        "line {}: the key is for {:?}; you can import only your own keys",
                        other.line, other.user
                    ));
                }
                (uid, entries)
            }
            Importer::Admin { uid, only } => (
                uid,
                entries
                    .into_iter()
                    .filter(|e| only.is_none_or(|u| u == e.user))
                    .collect(),
            ),
        };
        if self.mechanisms.get(FactorKind::Fido2).is_none() && !entries.is_empty() {
            report.notes.push(
                "[fido2] is not enabled in mfad.toml: these keys are not asked until it is".into(),
            );
        }
        let now = self.clock.now();
        let mut adding: Vec<(FactorRecord, usize)> = Vec::new();
        let mut users: Vec<&str> = entries.iter().map(|e| e.user.as_str()).collect();
        users.dedup();
        for user in users {
            match self.directory.user(user) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    report
                        .notes
                        .push(format!("no user {user:?} here: their keys were skipped"));
                    continue;
                }
                Err(e) => return Err(DaemonError::Internal(e.to_string())),
            }
            let existing = self.store.factors(user, now)?;
            let confirmed = existing.iter().filter(|f| f.confirmed).count();
            let mut added = 0;
            for (n, entry) in entries.iter().filter(|e| e.user == user).enumerate() {
                let label = format!("pam_u2f key {}", n + 1);
                let already = existing.iter().find(|f| {
                    matches!(&f.data, FactorData::Fido2(c) if c.id == entry.credential.id
                        && c.public_key == entry.credential.public_key)
                });
                if let Some(f) = already {
                    report.entries.push(ImportEntry {
                        line: entry.line as u32,
                        user: user.into(),
                        kind: FactorKind::Fido2.name().into(),
                        label: f.label.clone(),
                        outcome: "exists".into(),
                        id: f.id.clone(),
                    });
                    continue;
                }
                added += 1;
                let factor = FactorRecord {
                    id: new_id()?,
                    user: user.into(),
                    kind: FactorKind::Fido2,
                    label,
                    counter: 0,
                    data: FactorData::Fido2(entry.credential.clone()),
                    confirmed: true,
                    approved: false,
                    created: now,
                    last_used: 0,
                    expires: 0,
                };
                adding.push((factor, entry.line));
            }
            let limit = self.config.limits.max_factors as usize;
            if confirmed + added > limit {
                return Err(DaemonError::LimitReached(format!(
                    "{user} would have {} factors; [limits] max_factors allows {limit}: nothing was imported",
                    confirmed + added
                )));
            }
        }
        let outcome = if dry_run { "would-add" } else { "added" };
        for (factor, line) in &adding {
            report.entries.push(ImportEntry {
                line: *line as u32,
                user: factor.user.clone(),
                kind: factor.kind.name().into(),
                label: factor.label.clone(),
                outcome: outcome.into(),
                id: if dry_run {
                    String::new()
                } else {
                    factor.id.clone()
                },
            });
        }
        report.entries.sort_by_key(|e| e.line);
        if dry_run || adding.is_empty() {
            return Ok(report);
        }
        let factors: Vec<FactorRecord> = adding.into_iter().map(|(f, _)| f).collect();
        self.store.insert_confirmed(&factors)?;
        for factor in &factors {
            self.audit.change(
                "import",
                by_uid,
                &factor.user,
                &[
                    ("factor", &factor.id),
                    ("method", factor.kind.name()),
                    ("from", format),
                ],
            );
        }
        Ok(report)
    }
}
