//! `mfactl import`: read another tool's file here (as the user who runs
//! mfactl, so a user imports only what they can read), let mfad import it,
//! and show its report.

use crate::cli::ImportArgs;
use crate::client::Client;
use crate::error::Error;
use crate::output;
use crate::table::printable;
use mfa_dbus::{ImportOptions, ImportReport};
use std::ffi::CStr;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
            "{} is larger than {MAX_FILE} bytes: not a file to import",
            path.display()
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        Error::Usage(format!(
            "{}: line {line}: not text (byte {at} is not UTF-8): not a file to import",
            path.display()
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

/// mfad's refusal of `file`'s contents ("line 3: …"), naming the file.
pub fn naming(file: &Path, error: Error) -> Error {
    match error {
        Error::Refused(m) => Error::Refused(format!("{}: {m}", file.display())),
        other => other,
    }
}

/// google-authenticator's file in a home directory.
const GA_FILE: &str = ".google_authenticator";

/// Every user in the user database with a home directory, as (name, uid,
/// home).
fn every_user() -> Vec<(String, u32, PathBuf)> {
    let mut users = Vec::new();
    // SAFETY: getpwent's entries are copied out before the next call; no
    // other thread of mfactl reads the user database meanwhile.
    unsafe {
        libc::setpwent();
        loop {
            let entry = libc::getpwent();
            if entry.is_null() {
                break;
            }
            let (name, dir) = ((*entry).pw_name, (*entry).pw_dir);
            if name.is_null() || dir.is_null() {
                continue;
            }
            let name = CStr::from_ptr(name).to_string_lossy().into_owned();
            let home = PathBuf::from(CStr::from_ptr(dir).to_string_lossy().into_owned());
            users.push((name, (*entry).pw_uid, home));
        }
        libc::endpwent();
    }
    users.sort();
    users.dedup_by(|a, b| a.0 == b.0);
    users
}

/// `path` as google-authenticator would read it for `uid`: a regular file
/// of theirs (never through a symlink) that no one else can read or write;
/// `None` when there is no such file; `Err` why not.
fn read_users_file(path: &Path, uid: u32) -> Result<Option<String>, String> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err("a symbolic link: skipped".into())
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() || meta.uid() != uid || meta.mode() & 0o177 != 0 {
        return Err(
            "not a file of its user's alone (google-authenticator would refuse it too): skipped"
                .into(),
        );
    }
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("not text: {e}"))?;
    Ok(Some(text))
}

/// `mfactl import google-authenticator --all`: every user's file, through
/// mfad's admin import, all or none (each is tried as a dry run first).
pub async fn every_home(client: &Client, dry_run: bool) -> Result<ImportReport, Error> {
    let mut found = Vec::new();
    let mut report = ImportReport::default();
    for (user, uid, home) in every_user() {
        let path = home.join(GA_FILE);
        match read_users_file(&path, uid) {
            Ok(Some(text)) => found.push((user, path, text)),
            Ok(None) => {}
            Err(why) => report
                .notes
                .push(format!("{user}: {}: {why}", path.display())),
        }
    }
    let options = ImportOptions::default();
    let mut refused = Vec::new();
    for (user, path, text) in &found {
        if let Err(e) = client
            .import(user, "google-authenticator", text, &options, true)
            .await
        {
            refused.push(naming(path, e).to_string());
        }
    }
    if !refused.is_empty() {
        return Err(Error::Refused(format!(
            "{}\nnothing was imported for anyone",
            refused.join("\n")
        )));
    }
    for (user, _, text) in &found {
        let one = client
            .import(user, "google-authenticator", text, &options, dry_run)
            .await?;
        report.entries.extend(one.entries);
        report
            .notes
            .extend(one.notes.into_iter().map(|n| format!("{user}: {n}")));
    }
    if found.is_empty() {
        report
            .notes
            .push(format!("no home directory holds a {GA_FILE} of its user's"));
    }
    Ok(report)
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
