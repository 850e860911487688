use super::*;
use crate::policy::{BypassRule, BypassScope, Directory, GroupEntry, Network, UserEntry};
use std::collections::HashMap;

/// Users and the groups they are in. Every user's primary group has gid
/// 1000; other groups get 2000 and up. A group named `down-*` cannot be
/// looked up (its directory is unavailable); `missing-*` does not exist.
struct Groups(HashMap<&'static str, Vec<&'static str>>);

impl Directory for Groups {
    fn user(&self, name: &str) -> Result<Option<UserEntry>, LookupError> {
        Ok(self.0.get(name).map(|_| UserEntry {
            name: name.into(),
            gid: 1000,
            gids: vec![1000],
        }))
    }
    fn group(&self, name: &str) -> Result<Option<GroupEntry>, LookupError> {
        if name.starts_with("down-") {
            return Err(LookupError::new(format!("group {name:?}"), "unavailable"));
        }
        let members: Vec<String> = self
            .0
            .iter()
            .filter(|(_, g)| g.contains(&name))
            .map(|(u, _)| u.to_string())
            .collect();
        Ok((!name.starts_with("missing-")).then(|| GroupEntry {
            name: name.into(),
            gid: 2000,
            members,
        }))
    }
}

fn decide_with(p: &Policy, s: Subject<'_>, state: &UserState) -> Decision {
    let memberships = Memberships::look_up(&directory(), p, s.user);
    decide(p, &memberships, s, state, NOW)
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

const ENROLABLE: &[FactorKind] = &[FactorKind::Totp, FactorKind::Hotp];

fn subject<'a>(user: &'a str, service: &'a str, rhost: &'a str) -> Subject<'a> {
    Subject {
        user,
        service,
        rhost,
        auth_info: "",
        unavailable: &[],
        offered: &[],
        enrolable: ENROLABLE,
        unlock: false,
    }
}

const NOW: u64 = 1_800_000_000;

fn outcome(p: &Policy, s: Subject<'_>, state: &UserState) -> Outcome {
    decide_with(p, s, state).outcome
}

#[test]
fn off_asks_nobody_not_even_enrolled_users() {
    let p = Policy {
        enabled: false,
        ..policy()
    };
    let d = decide_with(&p, subject("alice", "sshd", ""), &enrolled(&["a"]));
    assert_eq!(d.outcome, Outcome::Skip(Skip::Disabled));
    assert_eq!(d.rule, None);
}

#[test]
fn the_strictest_rule_decides_and_the_first_of_equals() {
    let p = policy();
    let none = UserState::default();
    let d = decide_with(&p, subject("alice", "sshd", ""), &none);
    assert_eq!(
        d.outcome,
        Outcome::Enrol {
            kind: FactorKind::Totp
        }
    );
    assert!(matches!(&d.rule, Some(RuleOrigin::Group { group, .. }) if group == "wheel"));
    let d = decide_with(&p, subject("bob", "sshd", ""), &none);
    assert_eq!(
        d.outcome,
        Outcome::Offer {
            kind: FactorKind::Totp
        }
    );
    let d = decide_with(&p, subject("carol", "sshd", ""), &none);
    assert_eq!(d.outcome, Outcome::Skip(Skip::NotRequired));
    assert_eq!(d.rule, Some(RuleOrigin::Default));

    let mut two = policy();
    two.groups.push(group_rule("staff", 30, Requirement::Force));
    two.groups[1].methods = vec![FactorKind::Hotp];
    let d = decide_with(&two, subject("alice", "sshd", ""), &none);
    assert_eq!(
        d.outcome,
        Outcome::Enrol {
            kind: FactorKind::Hotp
        },
        "line 20 wins over line 30"
    );
}

/// A rule whose group cannot be looked up refuses exactly the logins it
/// could have decided, and names the lookup that failed.
#[test]
fn a_group_that_cannot_be_looked_up_refuses_when_its_rule_could_decide() {
    let none = UserState::default();
    let mut p = policy();
    // Stricter than anything else: whoever it might hold must be refused.
    p.groups
        .push(group_rule("down-ldapadmins", 30, Requirement::Force));
    p.groups[1].require = Requirement::Encourage; // wheel
    for user in ["alice", "bob", "carol"] {
        let d = decide_with(&p, subject(user, "sshd", ""), &none);
        let Outcome::Refuse(Refusal::Lookup(e)) = &d.outcome else {
            panic!("{user}: {d:?}");
        };
        assert_eq!(e.what, "group \"down-ldapadmins\"");
        assert!(
            d.explanation
                .iter()
                .any(|l| l.contains("down-ldapadmins") && l.contains("never exempted")),
            "{:?}",
            d.explanation
        );
    }
    // Less strict than the rule that decides anyway: it cannot matter.
    let mut weak = policy();
    weak.groups
        .push(group_rule("down-devs", 5, Requirement::No));
    let d = decide_with(&weak, subject("alice", "sshd", ""), &none);
    assert!(matches!(d.outcome, Outcome::Enrol { .. }), "{d:?}");
    assert!(d
        .explanation
        .iter()
        .any(|l| l.contains("down-devs") && l.contains("could not change the decision")));
    // As strict and earlier in the file than the deciding rule: it would
    // win the tie, so it must be known.
    let mut tie = policy();
    tie.groups
        .insert(0, group_rule("down-ops", 5, Requirement::Force));
    assert!(matches!(
        decide_with(&tie, subject("alice", "sshd", ""), &none).outcome,
        Outcome::Refuse(Refusal::Lookup(_))
    ));
    // As strict but later: the earlier rule wins the tie whatever it says.
    let mut later = policy();
    later
        .groups
        .push(group_rule("down-ops", 50, Requirement::Force));
    assert!(matches!(
        decide_with(&later, subject("alice", "sshd", ""), &none).outcome,
        Outcome::Enrol { .. }
    ));
}

#[test]
fn a_group_nss_does_not_know_refuses_unless_its_rule_allows_it() {
    let none = UserState::default();
    let mut p = policy();
    p.groups
        .push(group_rule("missing-admins", 30, Requirement::Force));
    let d = decide_with(&p, subject("carol", "sshd", ""), &none);
    let Outcome::Refuse(Refusal::Lookup(e)) = &d.outcome else {
        panic!("{d:?}");
    };
    assert!(e.why.contains("allow_missing"), "{e}");
    p.groups[2].allow_missing = true;
    let d = decide_with(&p, subject("carol", "sshd", ""), &none);
    assert_eq!(d.outcome, Outcome::Skip(Skip::NotRequired), "{d:?}");
}

#[test]
fn a_failed_group_lookup_refuses_and_never_exempts() {
    let d = decide_with(&policy(), subject("mallory", "sshd", ""), &enrolled(&["a"]));
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

/// A factor the rule does not allow does not count — and its owner is not
/// offered another one at the login: the password alone must never add a
/// second factor to an account that has one.
#[test]
fn methods_the_rule_does_not_allow_do_not_count() {
    let mut p = policy();
    p.groups[1].methods = vec![FactorKind::Hotp];
    let d = decide_with(&p, subject("alice", "sshd", ""), &enrolled(&["a"]));
    assert_eq!(d.outcome, Outcome::Refuse(Refusal::NoUsableFactor));
    assert!(
        d.explanation.iter().any(|l| l.contains("none usable here")),
        "{d:?}"
    );
    assert_eq!(
        outcome(&p, subject("alice", "sshd", ""), &UserState::default()),
        Outcome::Enrol {
            kind: FactorKind::Hotp
        },
        "without any factor, one is set up"
    );
    p.methods = vec![FactorKind::Totp];
    assert_eq!(
        outcome(&p, subject("alice", "sshd", ""), &enrolled(&["a"])),
        Outcome::Refuse(Refusal::NoMethod)
    );
    // Under encourage, an owner of unusable factors goes on without one.
    let mut soft = policy();
    for rule in &mut soft.groups {
        rule.methods = vec![FactorKind::Hotp];
        rule.require = Requirement::Encourage;
    }
    assert_eq!(
        outcome(&soft, subject("alice", "sshd", ""), &enrolled(&["a"])),
        Outcome::Skip(Skip::NotRequired)
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
    let d = decide_with(&p, subject("alice", "sshd", ""), &state);
    assert!(matches!(d.outcome, Outcome::Ask { .. }));
    assert_eq!(d.level, Some(Level::Appropriate));
}

fn bypass_policy(expires: Option<u64>) -> Policy {
    Policy {
        bypass_enabled: true,
        bypass: vec![BypassRule {
            name: "office".into(),
            network: Network::parse("127.0.0.0/30").expect("net"),
            scope: BypassScope::Login,
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
    let d = decide_with(&p, subject("alice", "sshd", "127.0.0.2"), &always);
    assert!(matches!(d.outcome, Outcome::Ask { .. }), "{d:?}");
    assert!(d.explanation.iter().any(|l| l.contains("level always")));
}

#[test]
fn bypass_reaches_privileged_services_only_when_its_scope_says_so() {
    let p = bypass_policy(None);
    let state = enrolled(&["a"]);
    // The default privileged services: sudo's, su's, pkexec's, run0's, doas's.
    for service in ["sudo", "su-l", "pkexec", "systemd-run0", "doas"] {
        let d = decide_with(&p, subject("alice", service, "127.0.0.2"), &state);
        assert!(matches!(d.outcome, Outcome::Ask { .. }), "{service}: {d:?}");
        assert!(
            d.explanation
                .iter()
                .any(|l| l.contains("applies to logins only")),
            "{service}: {:?}",
            d.explanation
        );
    }
    // Any service not listed is a login, and is bypassed.
    assert_eq!(
        outcome(&p, subject("alice", "sshd", "127.0.0.2"), &state),
        Outcome::Skip(Skip::Bypass("office".into()))
    );
    let mut all = bypass_policy(None);
    all.bypass[0].scope = BypassScope::All;
    for service in ["sudo", "systemd-run0", "doas"] {
        assert_eq!(
            outcome(&all, subject("alice", service, "127.0.0.2"), &state),
            Outcome::Skip(Skip::Bypass("office".into())),
            "{service}"
        );
    }
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

#[test]
fn explain_says_why_a_key_was_or_was_not_offered() {
    let p = policy();
    let key = UserState {
        factors: vec![FactorState {
            id: "k".into(),
            kind: FactorKind::Fido2,
            label: "yubi".into(),
            approved: false,
        }],
        ..UserState::default()
    };
    let offered = [(FactorKind::Fido2, "the login runs at this machine".into())];
    let here = decide_with(
        &p,
        Subject {
            offered: &offered,
            ..subject("alice", "login", "")
        },
        &key,
    );
    assert!(matches!(here.outcome, Outcome::Ask { .. }), "{here:?}");
    assert!(
        here.explanation
            .iter()
            .any(|l| l == "fido2 factors are offered: the login runs at this machine"),
        "{:?}",
        here.explanation
    );
    let withheld = [(
        FactorKind::Fido2,
        "the login's client process is not known".into(),
    )];
    let unknown = decide_with(
        &p,
        Subject {
            unavailable: &withheld,
            ..subject("alice", "login", "")
        },
        &key,
    );
    assert_eq!(
        unknown.outcome,
        Outcome::Refuse(Refusal::NoUsableFactor),
        "{unknown:?}"
    );
    assert!(
        unknown
            .explanation
            .iter()
            .any(|l| l == "fido2 factors are not offered: the login's client process is not known"),
        "{:?}",
        unknown.explanation
    );
    assert!(!unknown
        .explanation
        .iter()
        .any(|l| l.contains("are offered")));
}
