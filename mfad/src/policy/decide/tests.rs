use super::*;
use crate::policy::{BypassRule, Network};
use std::collections::HashMap;

struct Groups(HashMap<&'static str, Vec<&'static str>>);

impl Directory for Groups {
    fn groups_of(&self, user: &str) -> Result<Vec<String>, String> {
        self.0
            .get(user)
            .map(|g| g.iter().map(|s| s.to_string()).collect())
            .ok_or_else(|| format!("no user {user:?}"))
    }
    fn members_of(&self, group: &str) -> Result<Vec<String>, String> {
        Ok(self
            .0
            .iter()
            .filter(|(_, g)| g.contains(&group))
            .map(|(u, _)| u.to_string())
            .collect())
    }
}

fn directory() -> Groups {
    Groups(HashMap::from([
        ("alice", vec!["alice", "wheel", "staff"]),
        ("bob", vec!["bob", "staff"]),
        ("carol", vec!["carol"]),
        ("backup", vec!["backup", "wheel"]),
    ]))
}

fn group_rule(group: &str, line: usize, require: Requirement) -> Rule {
    Rule {
        origin: RuleOrigin::Group {
            group: group.into(),
            line,
        },
        require,
        ..Rule::default_rule()
    }
}

fn policy() -> Policy {
    Policy {
        enabled: true,
        groups: vec![
            group_rule("staff", 10, Requirement::Encourage),
            group_rule("wheel", 20, Requirement::Force),
        ],
        ..Policy::default()
    }
}

fn totp(id: &str) -> FactorState {
    FactorState {
        id: id.into(),
        kind: FactorKind::Totp,
        label: format!("phone-{id}"),
        approved: false,
    }
}

fn enrolled(ids: &[&str]) -> UserState {
    UserState {
        factors: ids.iter().map(|id| totp(id)).collect(),
        ..UserState::default()
    }
}

fn subject<'a>(user: &'a str, service: &'a str, rhost: &'a str) -> Subject<'a> {
    Subject {
        user,
        service,
        rhost,
        auth_info: "",
    }
}

const NOW: u64 = 1_800_000_000;

fn outcome(p: &Policy, s: Subject<'_>, state: &UserState) -> Outcome {
    decide(p, &directory(), s, state, NOW).outcome
}

#[test]
fn off_asks_nobody_not_even_enrolled_users() {
    let p = Policy {
        enabled: false,
        ..policy()
    };
    let d = decide(
        &p,
        &directory(),
        subject("alice", "sshd", ""),
        &enrolled(&["a"]),
        NOW,
    );
    assert_eq!(d.outcome, Outcome::Skip(Skip::Disabled));
    assert_eq!(d.rule, None);
}

#[test]
fn the_strictest_rule_decides_and_the_first_of_equals() {
    let p = policy();
    let none = UserState::default();
    let d = decide(&p, &directory(), subject("alice", "sshd", ""), &none, NOW);
    assert_eq!(
        d.outcome,
        Outcome::Enrol {
            kind: FactorKind::Totp
        }
    );
    assert!(matches!(&d.rule, Some(RuleOrigin::Group { group, .. }) if group == "wheel"));
    let d = decide(&p, &directory(), subject("bob", "sshd", ""), &none, NOW);
    assert_eq!(
        d.outcome,
        Outcome::Offer {
            kind: FactorKind::Totp
        }
    );
    let d = decide(&p, &directory(), subject("carol", "sshd", ""), &none, NOW);
    assert_eq!(d.outcome, Outcome::Skip(Skip::NotRequired));
    assert_eq!(d.rule, Some(RuleOrigin::Default));

    let mut two = policy();
    two.groups.push(group_rule("staff", 30, Requirement::Force));
    two.groups[1].methods = vec![FactorKind::Hotp];
    let d = decide(&two, &directory(), subject("alice", "sshd", ""), &none, NOW);
    assert_eq!(
        d.outcome,
        Outcome::Enrol {
            kind: FactorKind::Hotp
        },
        "line 20 wins over line 30"
    );
}

#[test]
fn a_failed_group_lookup_refuses_and_never_exempts() {
    let d = decide(
        &policy(),
        &directory(),
        subject("mallory", "sshd", ""),
        &enrolled(&["a"]),
        NOW,
    );
    assert!(
        matches!(d.outcome, Outcome::Refuse(Refusal::Lookup(_))),
        "{d:?}"
    );
}

#[test]
fn exempt_accounts_of_the_deciding_rule_are_not_asked() {
    let mut p = policy();
    p.groups[1].exempt = vec!["backup".into()];
    assert_eq!(
        outcome(&p, subject("backup", "sshd", ""), &enrolled(&["a"])),
        Outcome::Skip(Skip::Exempt)
    );
    assert!(matches!(
        outcome(&p, subject("alice", "sshd", ""), &enrolled(&["a"])),
        Outcome::Ask { .. }
    ));
}

#[test]
fn enrolled_users_are_asked_for_their_preferred_factor_first() {
    let mut state = enrolled(&["a", "b", "c"]);
    state.preferred = Some("b".into());
    let Outcome::Ask { factors, remember } =
        outcome(&policy(), subject("carol", "sshd", ""), &state)
    else {
        panic!("expected ask");
    };
    let ids: Vec<&str> = factors.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["b", "a", "c"]);
    assert_eq!(remember, None, "remember_days = 0");
}

#[test]
fn methods_the_rule_does_not_allow_do_not_count() {
    let mut p = policy();
    p.groups[1].methods = vec![FactorKind::Hotp];
    assert_eq!(
        outcome(&p, subject("alice", "sshd", ""), &enrolled(&["a"])),
        Outcome::Enrol {
            kind: FactorKind::Hotp
        }
    );
    p.methods = vec![FactorKind::Totp];
    assert_eq!(
        outcome(&p, subject("alice", "sshd", ""), &enrolled(&["a"])),
        Outcome::Refuse(Refusal::NoMethod)
    );
}

#[test]
fn levels_choose_when_users_are_asked_within_the_rule_minimum() {
    let mut p = policy();
    p.default_rule.min_level = Level::Privileged;
    let mut state = enrolled(&["a"]);
    state.level = Some(Level::Privileged);
    assert_eq!(
        outcome(&p, subject("carol", "sshd", ""), &state),
        Outcome::Skip(Skip::PrivilegedOnly)
    );
    assert!(matches!(
        outcome(&p, subject("carol", "sudo", ""), &state),
        Outcome::Ask { .. }
    ));
    // wheel's min_level is appropriate: alice's choice is raised.
    let d = decide(&p, &directory(), subject("alice", "sshd", ""), &state, NOW);
    assert!(matches!(d.outcome, Outcome::Ask { .. }));
    assert_eq!(d.level, Some(Level::Appropriate));
}

fn bypass_policy(expires: Option<u64>) -> Policy {
    Policy {
        bypass_enabled: true,
        bypass: vec![BypassRule {
            name: "office".into(),
            network: Network::parse("127.0.0.0/30").expect("net"),
            expires,
            line: 40,
        }],
        ..policy()
    }
}

#[test]
fn bypass_needs_the_switch_a_literal_address_in_a_live_rule_and_a_level_below_always() {
    let p = bypass_policy(None);
    let state = enrolled(&["a"]);
    assert_eq!(
        outcome(&p, subject("alice", "sshd", "127.0.0.2"), &state),
        Outcome::Skip(Skip::Bypass("office".into()))
    );
    assert!(matches!(
        outcome(&p, subject("alice", "sshd", "127.0.0.5"), &state),
        Outcome::Ask { .. }
    ));
    assert!(matches!(
        outcome(&p, subject("alice", "sshd", "localhost"), &state),
        Outcome::Ask { .. }
    ));
    let off = Policy {
        bypass_enabled: false,
        ..bypass_policy(None)
    };
    assert!(matches!(
        outcome(&off, subject("alice", "sshd", "127.0.0.2"), &state),
        Outcome::Ask { .. }
    ));
    let expired = bypass_policy(Some(NOW));
    assert!(matches!(
        outcome(&expired, subject("alice", "sshd", "127.0.0.2"), &state),
        Outcome::Ask { .. }
    ));
    let live = bypass_policy(Some(NOW + 1));
    assert_eq!(
        outcome(&live, subject("alice", "sshd", "127.0.0.2"), &state),
        Outcome::Skip(Skip::Bypass("office".into()))
    );
    let always = UserState {
        level: Some(Level::Always),
        ..enrolled(&["a"])
    };
    let d = decide(
        &p,
        &directory(),
        subject("alice", "sshd", "127.0.0.2"),
        &always,
        NOW,
    );
    assert!(matches!(d.outcome, Outcome::Ask { .. }), "{d:?}");
    assert!(d.explanation.iter().any(|l| l.contains("level always")));
}

#[test]
fn trusted_devices_skip_the_code_and_new_ones_are_remembered() {
    let p = Policy {
        remember_days: 7,
        ..policy()
    };
    let mut state = enrolled(&["a"]);
    let Outcome::Ask { remember, .. } = outcome(&p, subject("alice", "sshd", "192.0.2.1"), &state)
    else {
        panic!("expected ask");
    };
    let device = remember.expect("a device to remember");
    assert_eq!(device.key, "address:192.0.2.1");
    state.trusted_devices.push(device.key);
    assert_eq!(
        outcome(&p, subject("alice", "sshd", "192.0.2.1"), &state),
        Outcome::Skip(Skip::TrustedDevice)
    );
    assert!(matches!(
        outcome(&p, subject("alice", "sshd", "192.0.2.2"), &state),
        Outcome::Ask { .. }
    ));
    // sudo is never remembered.
    let Outcome::Ask { remember, .. } = outcome(&p, subject("alice", "sudo", "192.0.2.9"), &state)
    else {
        panic!("expected ask");
    };
    assert_eq!(remember, None);
}

#[test]
fn privileged_services_with_approval_accept_only_approved_factors() {
    let mut p = policy();
    p.groups[1].elevation_approval = true;
    let mut state = enrolled(&["a", "b"]);
    assert_eq!(
        outcome(&p, subject("alice", "sudo", ""), &state),
        Outcome::Refuse(Refusal::NotApproved)
    );
    assert!(matches!(
        outcome(&p, subject("alice", "sshd", ""), &state),
        Outcome::Ask { .. }
    ));
    state.factors[1].approved = true;
    let Outcome::Ask { factors, .. } = outcome(&p, subject("alice", "sudo", ""), &state) else {
        panic!("expected ask");
    };
    assert_eq!(factors.len(), 1);
    assert_eq!(factors[0].id, "b");
}

#[test]
fn force_without_enrolment_at_login_refuses() {
    let p = Policy {
        enrol_at_login: false,
        ..policy()
    };
    assert_eq!(
        outcome(&p, subject("alice", "sshd", ""), &UserState::default()),
        Outcome::Refuse(Refusal::NotEnrolled)
    );
}
