//! Which of the groups the policy names a user is in, looked up before the
//! decision so that [`decide`](super::decide) stays pure and every failed
//! lookup is in hand, by name, when it decides.

use super::directory::{Directory, LookupError};
use super::{Policy, RuleOrigin};

/// What the directory said about the user and one group a rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    Member,
    NotMember,
    /// NSS answered that the group does not exist.
    Missing,
    /// No trustworthy answer: the user may or may not be a member.
    Failed(LookupError),
}

/// The user's membership of every group a rule of the policy names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships {
    groups: Vec<(String, Membership)>,
}

impl Memberships {
    /// Look up `user` and each group `policy` names. Blocks on NSS, which
    /// may go to a network directory: call it off the async runtime.
    pub fn look_up(directory: &dyn Directory, policy: &Policy, user: &str) -> Memberships {
        let names = group_names(policy);
        if names.is_empty() {
            return Memberships::default();
        }
        let entry = match directory.user(user) {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                let e = LookupError::new(format!("user {user:?}"), "not known to NSS");
                return Memberships::all(&names, Membership::Failed(e));
            }
            Err(e) => return Memberships::all(&names, Membership::Failed(e)),
        };
        let groups = names
            .into_iter()
            .map(|name| {
                let membership = match directory.group(&name) {
                    Err(e) => Membership::Failed(e),
                    Ok(None) => Membership::Missing,
                    Ok(Some(g))
                        if g.gid == entry.gid
                            || entry.gids.contains(&g.gid)
                            || g.members.contains(&entry.name) =>
                    {
                        Membership::Member
                    }
                    Ok(Some(_)) => Membership::NotMember,
                };
                (name, membership)
            })
            .collect();
        Memberships { groups }
    }

    /// Every group the policy names, with the same `membership`: for a
    /// lookup that never came back.
    pub fn failed(policy: &Policy, error: LookupError) -> Memberships {
        Memberships::all(&group_names(policy), Membership::Failed(error))
    }

    fn all(names: &[String], membership: Membership) -> Memberships {
        Memberships {
            groups: names
                .iter()
                .map(|n| (n.clone(), membership.clone()))
                .collect(),
        }
    }

    /// What was found for `group`; a group not looked up is a failure too.
    pub fn of(&self, group: &str) -> Membership {
        self.groups
            .iter()
            .find(|(name, _)| name == group)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| {
                Membership::Failed(LookupError::new(
                    format!("group {group:?}"),
                    "it was not looked up",
                ))
            })
    }

    /// Groups the user is in, in the order the policy names them.
    pub fn member_of(&self) -> Vec<&str> {
        self.groups
            .iter()
            .filter(|(_, m)| *m == Membership::Member)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Each group a `[[policy.group]]` rule names, once, in file order.
pub fn group_names(policy: &Policy) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for rule in &policy.groups {
        if let RuleOrigin::Group { group, .. } = &rule.origin {
            if !names.contains(group) {
                names.push(group.clone());
            }
        }
    }
    names
}
