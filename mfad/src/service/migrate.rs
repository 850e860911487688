//! `mfactl store migrate`: this host's store copied whole into an empty
//! PostgreSQL database, sealed there with this host's key. The copy happens
//! with the store locked; from then on this mfad refuses every call (a
//! change made here would be lost, a code used here accepted again there)
//! until it is restarted with the new `[store]`.

use super::Service;
use crate::config::{Config, StoreConfig};
use crate::error::DaemonError;
use crate::store::{FactorStore, PgStore, Snapshot, StoreError};
use mfa_dbus::StoreMigration;
use std::path::Path;

impl Service {
    pub fn migrate_store(
        &self,
        caller_uid: u32,
        config_text: &str,
        dry_run: bool,
    ) -> Result<StoreMigration, DaemonError> {
        let invalid = |m: String| DaemonError::InvalidArgument(m);
        let target = match config_text {
            "" => {
                let path = self.config_path.as_ref().ok_or_else(|| {
                    invalid("mfad was started without a config file: give one".into())
                })?;
                Config::load(path)
            }
            text => Config::parse(text, Path::new("(the given file)")),
        }
        .map_err(|e| invalid(e.to_string()))?;
        let StoreConfig::Postgres(pg) = &target.store else {
            return Err(invalid(
                "its [store] names no PostgreSQL database (backend = \"postgresql\")".into(),
            ));
        };
        let state_dir = &self.config.daemon.state_dir;
        if target.daemon.state_dir != *state_dir {
            return Err(invalid(format!(
                "its [daemon] state_dir is {}, this mfad's is {}: the key that seals the \
                 copy is in this one",
                target.daemon.state_dir.display(),
                state_dir.display()
            )));
        }
        if self.config.store == target.store {
            return Err(invalid(format!("mfad uses {} already", pg.describe())));
        }
        let destination = PgStore::open(pg, state_dir).map_err(DaemonError::Unmigrated)?;
        let to = pg.describe();
        let report = |snapshot: &Snapshot, notes: Vec<String>| StoreMigration {
            target: to.clone(),
            factors: count(snapshot.factors.len()),
            recovery_codes: count(snapshot.recovery_codes.len()),
            lockouts: count(snapshot.lockouts.len()),
            settings: count(snapshot.settings.len()),
            trusted_devices: count(snapshot.devices.len()),
            invitations: count(snapshot.invitations.len()),
            notes,
        };
        if dry_run {
            if destination.export().map_err(DaemonError::Unmigrated)? != Snapshot::default() {
                return Err(DaemonError::Unmigrated(StoreError::NotEmpty));
            }
            let snapshot = self.store.export().map_err(DaemonError::Unmigrated)?;
            return Ok(report(
                &snapshot,
                vec!["a dry run: nothing was copied".into()],
            ));
        }
        let snapshot = self
            .store
            .move_to(&to, &mut |snapshot| destination.import(snapshot))
            .map_err(DaemonError::Unmigrated)?;
        self.audit.change(
            "migrate-store",
            caller_uid,
            "",
            &[("to", &to), ("copied", &snapshot.describe())],
        );
        Ok(report(
            &snapshot,
            vec![
                "this mfad refuses logins until it is restarted: restart it now, with the \
                 new [store] in mfad.toml"
                    .into(),
                format!(
                    "every other host of the fleet needs this host's {} and the same [store]",
                    state_dir.join(crate::store::KEY_FILE).display()
                ),
            ],
        ))
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
