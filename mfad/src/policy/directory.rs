//! Users and groups through NSS, so groups from LDAP or SSSD count like local
//! ones — and a directory that does not answer is an error, never an empty
//! answer.
//!
//! glibc hides most directory failures: `getgrouplist` skips a source that
//! answers "unavailable", and `getgrnam_r` reports such a source only through
//! `errno`, which a module may leave untouched. So every lookup here starts
//! with `errno` set to [`NO_ANSWER`]: a lookup that fails without saying why
//! returns that value instead of looking like "no such group". Only "0 and no
//! entry" counts as "not there"; every other result is a failed lookup.

use nix::errno::Errno;
use std::ffi::{c_char, CStr, CString};
use std::fmt;

/// One user, as NSS knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    /// The primary group.
    pub gid: u32,
    /// Every group `getgrouplist` reports (primary included). It may miss
    /// groups of a source that is down: only ever used to add memberships.
    pub gids: Vec<u32>,
}

/// One group, as NSS knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    /// Its member list (users whose primary group it is are not listed).
    pub members: Vec<String>,
}

/// A lookup that got no trustworthy answer: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError {
    /// What was looked up, e.g. `group "ldapadmins"`.
    pub what: String,
    pub why: String,
}

impl LookupError {
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> LookupError {
        LookupError {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lookup of {} failed: {}", self.what, self.why)
    }
}

impl std::error::Error for LookupError {}

/// Where users and groups come from: NSS, or a fake in tests.
pub trait Directory: Send + Sync {
    /// `Ok(None)`: NSS answered that there is no such user.
    fn user(&self, name: &str) -> Result<Option<UserEntry>, LookupError>;
    /// `Ok(None)`: NSS answered that there is no such group.
    fn group(&self, name: &str) -> Result<Option<GroupEntry>, LookupError>;
}

/// The system's NSS.
pub struct Nss;

/// What `errno` holds when a lookup starts. A source that fails without
/// setting `errno` makes glibc return this value, which no NSS module
/// reports of its own accord.
const NO_ANSWER: i32 = libc::ENOTRECOVERABLE;

/// Entries larger than this are refused rather than read.
const MAX_BUFFER: usize = 1 << 22;

impl Directory for Nss {
    fn user(&self, name: &str) -> Result<Option<UserEntry>, LookupError> {
        let what = || format!("user {name:?}");
        let cname = CString::new(name).map_err(|_| LookupError::new(what(), "contains NUL"))?;
        let found = lookup(
            &what,
            |entry: &mut libc::passwd, buf, len, out| {
                // SAFETY: every pointer is valid for the call; `buf` is `len` bytes.
                unsafe { libc::getpwnam_r(cname.as_ptr(), entry, buf, len, out) }
            },
            // SAFETY: the entry points into the buffer, alive during `read`.
            |p| (unsafe { c_string(p.pw_name) }, p.pw_gid),
        )?;
        let Some((name, gid)) = found else {
            return Ok(None);
        };
        let gids = nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(gid))
            .map_err(|e| LookupError::new(format!("the groups of user {name:?}"), e.desc()))?
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        Ok(Some(UserEntry { name, gid, gids }))
    }

    fn group(&self, name: &str) -> Result<Option<GroupEntry>, LookupError> {
        let what = || format!("group {name:?}");
        let cname = CString::new(name).map_err(|_| LookupError::new(what(), "contains NUL"))?;
        lookup(
            &what,
            |entry: &mut libc::group, buf, len, out| {
                // SAFETY: as for users.
                unsafe { libc::getgrnam_r(cname.as_ptr(), entry, buf, len, out) }
            },
            |g| GroupEntry {
                // SAFETY: the entry points into the buffer, alive during `read`.
                name: unsafe { c_string(g.gr_name) },
                gid: g.gr_gid,
                members: unsafe { c_strings(g.gr_mem) },
            },
        )
    }
}

/// Call a `get*_r` function, growing its buffer as asked, and tell an answer
/// ("there is none" included) from a failure. `read` copies what it needs
/// out of the entry while the buffer it points into still lives.
fn lookup<E, R>(
    what: &dyn Fn() -> String,
    call: impl Fn(&mut E, *mut c_char, usize, *mut *mut E) -> i32,
    read: impl FnOnce(&E) -> R,
) -> Result<Option<R>, LookupError> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: passwd and group are plain C structs; all-zero is valid.
        let mut entry: E = unsafe { std::mem::zeroed() };
        let mut out: *mut E = std::ptr::null_mut();
        Errno::set_raw(NO_ANSWER);
        let rc = call(&mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        match rc {
            0 if out.is_null() => return Ok(None),
            0 => return Ok(Some(read(&entry))),
            libc::ERANGE if buf.len() < MAX_BUFFER => buf.resize(buf.len() * 2, 0),
            e => return Err(LookupError::new(what(), describe(e))),
        }
    }
}

/// SAFETY: `p` is null or a NUL-terminated string.
unsafe fn c_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

/// SAFETY: `p` is null or a null-terminated array of NUL-terminated strings.
unsafe fn c_strings(mut p: *mut *mut c_char) -> Vec<String> {
    let mut out = Vec::new();
    if p.is_null() {
        return out;
    }
    while !(*p).is_null() {
        out.push(c_string(*p));
        p = p.add(1);
    }
    out
}

fn describe(errno: i32) -> String {
    match errno {
        NO_ANSWER => "the directory gave no answer (a source is unavailable)".into(),
        libc::ENOENT => {
            "no answer: the directory may be unavailable (ENOENT, which also means \"not found\" to some NSS sources)".into()
        }
        e => format!("{} ({})", Errno::from_raw(e).desc(), Errno::from_raw(e)),
    }
}
