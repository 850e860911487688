//! `mfactl import`: read another tool's file here (as the user who runs
//! mfactl, so a user imports only what they can read), let mfad import it,
//! and show its report.

use crate::cli::ImportArgs;
use crate::client::Client;
use crate::error::Error;
use crate::output;
use crate::table::printable;
use mfa_dbus::{ImportOptions, ImportReport};
use std::io::Read;
use std::path::Path;

/// The largest file mfad takes.
const MAX_FILE: u64 = 1 << 20;

/// FILE as text; a file that is too large or not UTF-8 is refused here.
pub fn read_file(path: &Path) -> Result<String, Error> {
    let input = |source| Error::Input {
        what: format!("{}", path.display()),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(input)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(Error::Usage(format!(
            "{} is larger than {MAX_FILE} bytes: not a key file",
            path.display()
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::Usage(format!(
            "{}: not text (byte {} is not UTF-8): not a key file",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

pub async fn run(client: &Client, args: &ImportArgs, text: &str) -> Result<ImportReport, Error> {
    let user = match (&args.user, args.all) {
        (Some(user), _) => user.as_str(),
        (None, true) => "*",
        (None, false) => "",
    };
    let options = ImportOptions {
        origin: args.origin.clone().unwrap_or_default(),
        appid: args.appid.clone().unwrap_or_default(),
    };
    client
        .import(user, args.format.wire(), text, &options, args.dry_run)
        .await
}

pub fn report_text(report: &ImportReport, json: bool) -> String {
    if json {
        return output::json_line(report);
    }
    let mut out = String::new();
    for e in &report.entries {
        let outcome = match e.outcome.as_str() {
            "would-add" => "would be added",
            "exists" => "already there",
            other => other,
        };
        out.push_str(&format!(
            "line {:<4} {:<16} {:<6} {:<18} {outcome}{}\n",
            e.line,
            printable(&e.user),
            printable(&e.kind),
            printable(&e.label),
            if e.id.is_empty() {
                String::new()
            } else {
                format!(" ({})", printable(&e.id))
            }
        ));
    }
    if report.entries.is_empty() {
        out.push_str("Nothing to import.\n");
    }
    for note in &report.notes {
        out.push_str(&format!("note: {}\n", printable(note)));
    }
    out
}
