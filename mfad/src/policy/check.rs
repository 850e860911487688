//! `mfactl policy check`: a policy that would keep root, or every admin,
//! from logging in is refused before it is used.

use super::decide::{decide, Outcome, Subject, UserState};
use super::groups::Directory;
use super::Policy;

/// What checking a policy against the admins found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AdminCheck {
    /// Reasons to refuse the policy.
    pub errors: Vec<String>,
    /// Worth knowing, not fatal.
    pub warnings: Vec<String>,
}

/// Would root and the members of `admin_group` still get in, at a console
/// login (`login`) and with `sudo`? `state` gives each one's factors.
pub fn check_admins(
    policy: &Policy,
    directory: &dyn Directory,
    admin_group: Option<&str>,
    state: &dyn Fn(&str) -> UserState,
    now: u64,
) -> AdminCheck {
    let mut check = AdminCheck::default();
    for rule in &policy.groups {
        if let super::RuleOrigin::Group { group, line } = &rule.origin {
            if let Err(e) = directory.members_of(group) {
                check.warnings.push(format!(
                    "group rule {group:?} (line {line}) names a group NSS does not know: {e}"
                ));
            }
        }
    }
    if let Some(reason) = locked_out(policy, directory, "root", state, now) {
        check
            .errors
            .push(format!("root could not log in: {reason}"));
    }
    let Some(group) = admin_group else {
        return check;
    };
    let members = match directory.members_of(group) {
        Ok(m) => m,
        Err(e) => {
            check
                .warnings
                .push(format!("admin group {group:?} cannot be read: {e}"));
            return check;
        }
    };
    let locked: Vec<(String, String)> = members
        .iter()
        .filter_map(|m| locked_out(policy, directory, m, state, now).map(|r| (m.clone(), r)))
        .collect();
    for (member, reason) in &locked {
        check
            .warnings
            .push(format!("admin {member} could not log in: {reason}"));
    }
    if !members.is_empty() && locked.len() == members.len() {
        check.errors.push(format!(
            "no member of the admin group {group:?} could log in"
        ));
    }
    check
}

/// Why `user` could not get in at a console or with sudo, if so.
fn locked_out(
    policy: &Policy,
    directory: &dyn Directory,
    user: &str,
    state: &dyn Fn(&str) -> UserState,
    now: u64,
) -> Option<String> {
    let user_state = state(user);
    let sudo = policy
        .privileged_services
        .first()
        .map(String::as_str)
        .unwrap_or("sudo");
    for service in ["login", sudo] {
        let subject = Subject {
            user,
            service,
            rhost: "",
            auth_info: "",
        };
        let decision = decide(policy, directory, subject, &user_state, now);
        if let Outcome::Refuse(refusal) = decision.outcome {
            let because = decision.explanation.last().cloned().unwrap_or_default();
            return Some(format!(
                "{service} is refused ({}): {because}",
                refusal.reason()
            ));
        }
    }
    None
}
