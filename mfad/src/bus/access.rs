//! Who may do what, from the caller's uid alone.

use crate::error::DaemonError;
use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;

pub struct Access {
    admin_group: Option<String>,
}

/// Who started a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCaller {
    Root,
    /// The user themself, not root: an unlock.
    Own {
        uid: u32,
    },
}

impl Access {
    pub fn new(admin_group: Option<String>) -> Access {
        Access { admin_group }
    }

    /// Who may start a login of `user`: root (pam_mfa.so in sshd, login,
    /// sudo, su, a display manager), or the user's own uid (a screen
    /// locker running as the user), which is then an unlock.
    pub fn check_login(&self, uid: u32, user: &str) -> Result<LoginCaller, DaemonError> {
        if uid == 0 {
            return Ok(LoginCaller::Root);
        }
        let own = self.own_user(uid)?;
        if own == user {
            Ok(LoginCaller::Own { uid })
        } else {
            Err(DaemonError::AccessDenied(format!(
                "uid {uid} may start a login only for its own account ({own}), not for {user:?}"
            )))
        }
    }

    /// The account a caller manages its own factors as.
    pub fn own_user(&self, uid: u32) -> Result<String, DaemonError> {
        match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(user)) => Ok(user.name),
            Ok(None) => Err(DaemonError::AccessDenied(format!(
                "uid {uid} has no user account"
            ))),
            Err(e) => Err(DaemonError::AccessDenied(format!(
                "cannot look up uid {uid}: {e}"
            ))),
        }
    }

    /// Root, or a member of the configured admin group. A lookup failure
    /// grants nothing.
    pub fn check_admin(&self, uid: u32) -> Result<(), DaemonError> {
        if uid == 0 {
            return Ok(());
        }
        let denied = || DaemonError::AccessDenied(format!("uid {uid} is not an mfa administrator"));
        let Some(group) = &self.admin_group else {
            return Err(denied());
        };
        let Ok(Some(group)) = Group::from_name(group) else {
            return Err(denied());
        };
        let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
            return Err(denied());
        };
        let Ok(name) = CString::new(user.name) else {
            return Err(denied());
        };
        let groups: Vec<Gid> = nix::unistd::getgrouplist(&name, user.gid).map_err(|_| denied())?;
        if groups.contains(&group.gid) {
            Ok(())
        } else {
            Err(denied())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_logs_in_anyone_and_others_only_themselves() {
        let access = Access::new(None);
        assert_eq!(access.check_login(0, "alice").ok(), Some(LoginCaller::Root));
        for uid in [4_000_000_000, u32::MAX, 1u32 << 31] {
            assert!(access.check_login(uid, "alice").is_err(), "uid {uid}");
        }
        // nobody (65534) is "nobody", not root.
        if let Ok(nobody) = access.own_user(65534) {
            assert_eq!(
                access.check_login(65534, &nobody).ok(),
                Some(LoginCaller::Own { uid: 65534 })
            );
            assert!(access.check_login(65534, "root").is_err());
        }
    }

    #[test]
    fn admin_is_root_or_group_member() {
        assert!(Access::new(None).check_admin(0).is_ok());
        assert!(Access::new(None).check_admin(65534).is_err());
        // nobody (65534) is not in group root on any sane system
        assert!(Access::new(Some("root".into())).check_admin(65534).is_err());
        assert!(Access::new(Some("no-such-group-xyz".into()))
            .check_admin(65534)
            .is_err());
    }

    #[test]
    fn unknown_uid_has_no_own_user() {
        assert!(Access::new(None).own_user(4_000_000_000).is_err());
        assert_eq!(Access::new(None).own_user(0).ok().as_deref(), Some("root"));
    }
}
