//! Group membership through NSS (`getgrouplist`), so groups from LDAP or
//! SSSD count like local ones. A lookup that fails is an error, never an
//! empty list: a broken directory must not exempt anyone.

use nix::unistd::{Gid, Group, User};
use std::ffi::CString;

/// Where users' groups and groups' members come from.
pub trait Directory: Send + Sync {
    /// Names of every group `user` is in, primary group included.
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String>;
    /// Members of `group`: its member list and the users whose primary
    /// group it is are not enumerable through NSS, so only the member list.
    fn members_of(&self, group: &str) -> Result<Vec<String>, String>;
}

/// The system's NSS.
pub struct Nss;

impl Directory for Nss {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        let entry = User::from_name(user)
            .map_err(|e| format!("looking up user {user:?}: {e}"))?
            .ok_or_else(|| format!("no user {user:?}"))?;
        let name = CString::new(user).map_err(|_| format!("user {user:?} contains NUL"))?;
        let gids = nix::unistd::getgrouplist(&name, entry.gid)
            .map_err(|e| format!("groups of {user:?}: {e}"))?;
        gids.into_iter().map(group_name).collect()
    }

    fn members_of(&self, group: &str) -> Result<Vec<String>, String> {
        Ok(Group::from_name(group)
            .map_err(|e| format!("looking up group {group:?}: {e}"))?
            .ok_or_else(|| format!("no group {group:?}"))?
            .mem)
    }
}

fn group_name(gid: Gid) -> Result<String, String> {
    Group::from_gid(gid)
        .map_err(|e| format!("looking up gid {gid}: {e}"))?
        .map(|g| g.name)
        .ok_or_else(|| format!("gid {gid} has no name"))
}
