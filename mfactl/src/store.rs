//! `mfactl store migrate`: what mfad copied, or would copy.

use crate::output;
use crate::table::printable;
use mfa_dbus::StoreMigration;

pub fn migration_text(m: &StoreMigration, dry_run: bool, json: bool) -> String {
    if json {
        return output::json_line(m);
    }
    let verb = if dry_run { "Would copy" } else { "Copied" };
    let mut out = format!(
        "{verb} to {}: {} factors, {} recovery codes, {} lockouts, {} users' settings, {} trusted devices, {} invitations.\n",
        printable(&m.target),
        m.factors,
        m.recovery_codes,
        m.lockouts,
        m.settings,
        m.trusted_devices,
        m.invitations
    );
    for note in &m.notes {
        out.push_str(&format!("Note: {}\n", printable(note)));
    }
    out
}
