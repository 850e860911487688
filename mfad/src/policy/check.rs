//! Checks of a policy before it is used: every group a rule names exists
//! (`mfad --check-config`, reloads, `mfactl policy check`), and root or
//! every admin is not kept from logging in (`mfactl policy check`).

use super::decide::{decide, Outcome, Subject, UserState};
use super::directory::Directory;
use super::membership::Memberships;
use super::{Policy, RuleOrigin};
use crate::mechanism::FactorKind;

/// What checking a policy found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AdminCheck {
    /// Reasons to refuse the policy.
    pub errors: Vec<String>,
    /// Worth knowing, not fatal.
    pub warnings: Vec<String>,
}

/// Every group a rule names must be known to NSS, unless the rule says
/// `allow_missing = true`: a misspelt group would silently turn its rule
/// off. A group that cannot be looked up now is an error too.
pub fn check_groups(policy: &Policy, directory: &dyn Directory) -> AdminCheck {
    let mut check = AdminCheck::default();
    for (i, rule) in policy.groups.iter().enumerate() {
        let RuleOrigin::Group { group, line } = &rule.origin else {
            continue;
        };
        let at = format!("line {line}: policy.group[{}].group", i + 1);
        match directory.group(group) {
            Ok(Some(_)) => {}
            Ok(None) if rule.allow_missing => check.warnings.push(format!(
                "{at}: NSS knows no group {group:?}; the rule applies to nobody until it exists (allow_missing = true)"
            )),
            Ok(None) => check.errors.push(format!(
                "{at}: NSS knows no group {group:?}, so the rule would apply to nobody and the logins it could decide are refused; fix the name, or set allow_missing = true if the group is yet to be created"
            )),
            Err(e) => check.errors.push(format!(
                "{at}: the group cannot be checked now ({e}); logins the rule could decide are refused while it cannot be looked up"
            )),
        }
    }
    check
}

/// [`check_groups`], then: would root and the members of `admin_group`
/// still get in, at a console login (`login`) and with `sudo`? `state`
/// gives each one's factors.
pub fn check_admins(
    policy: &Policy,
    directory: &dyn Directory,
    admin_group: Option<&str>,
    state: &dyn Fn(&str) -> UserState,
    now: u64,
) -> AdminCheck {
    let mut check = check_groups(policy, directory);
    if let Some(reason) = locked_out(policy, directory, "root", state, now) {
        check
            .errors
            .push(format!("root could not log in: {reason}"));
    }
    let Some(group) = admin_group else {
        return check;
    };
    let members = match directory.group(group) {
        Ok(Some(g)) => g.members,
        Ok(None) => {
            check
                .warnings
                .push(format!("admin group {group:?} is not known to NSS"));
            return check;
        }
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
    let memberships = Memberships::look_up(directory, policy, user);
    let sudo = policy
        .privileged_services
        .first()
        .map(String::as_str)
        .unwrap_or("sudo");
    for service in ["login", sudo] {
        // A console login or sudo at it: every kind can be used there, and
        // whether one can be set up is not a question of the policy.
        let subject = Subject {
            user,
            service,
            rhost: "",
            auth_info: "",
            unavailable: &[],
            offered: &[],
            enrolable: &FactorKind::ALL,
            unlock: false,
        };
        let decision = decide(policy, &memberships, subject, &user_state, now);
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
