//! One decision per login: which rule applies, what the user will be asked,
//! and every reason, in words, for `mfactl policy explain` and the log.

use super::device::Device;
use super::directory::LookupError;
use super::membership::{Membership, Memberships};
use super::network::literal_address;
use super::{BypassScope, Level, Policy, Requirement, Rule, RuleOrigin, ServiceClass, Unlock};
use crate::mechanism::FactorKind;

/// What the PAM module said about the login, and what the mechanisms make
/// of where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user: &'a str,
    pub service: &'a str,
    pub rhost: &'a str,
    pub auth_info: &'a str,
    /// Kinds of factor that cannot be used in this login, and why (a
    /// security key over SSH).
    pub unavailable: &'a [(FactorKind, String)],
    /// Kinds of factor offered, with why, where that is worth saying (a
    /// security key: the login runs at this machine).
    pub offered: &'a [(FactorKind, String)],
    /// Kinds of factor a user can set up during a login, in no order.
    pub enrolable: &'a [FactorKind],
    /// A screen locker's unlock, from a caller that is not root: only the
    /// user is known.
    pub unlock: bool,
}

/// One confirmed factor, as the policy sees it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorState {
    pub id: String,
    pub kind: FactorKind,
    pub label: String,
    pub approved: bool,
}

/// What the store knows about the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserState {
    /// Confirmed factors, oldest first.
    pub factors: Vec<FactorState>,
    /// The level the user chose, if any.
    pub level: Option<Level>,
    /// Id of the factor the user wants asked first.
    pub preferred: Option<String>,
    /// Device keys trusted now (not expired).
    pub trusted_devices: Vec<String>,
}

/// Why nobody needs to ask this user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Disabled,
    Exempt,
    NotRequired,
    PrivilegedOnly,
    Bypass(String),
    TrustedDevice,
    /// `[policy] unlock = "never"`.
    Unlock,
}

impl Skip {
    /// The reason as the audit log and `mfactl audit` spell it.
    pub fn reason(&self) -> String {
        match self {
            Skip::Disabled => "mfa-disabled".into(),
            Skip::Exempt => "exempt".into(),
            Skip::NotRequired => "not-required".into(),
            Skip::PrivilegedOnly => "level-privileged-only".into(),
            Skip::Bypass(name) => format!("bypass:{name}"),
            Skip::TrustedDevice => "trusted-device".into(),
            Skip::Unlock => "unlock-not-asked".into(),
        }
    }
}

/// Why the login is refused before any code is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Force, no usable factor, and enrolment at login is off.
    NotEnrolled,
    /// A privileged service that accepts only approved factors, and none is.
    NotApproved,
    /// The deciding rule allows no method that is allowed system-wide.
    NoMethod,
    /// The user has factors, but none this login can use (a key over SSH,
    /// a method the rule does not allow): setting up another one here would
    /// let the first factor alone add a second.
    NoUsableFactor,
    /// A group a rule names could not be looked up, and its rule could
    /// have decided.
    Lookup(LookupError),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotEnrolled => "not-enrolled",
            Refusal::NotApproved => "not-approved",
            Refusal::NoMethod => "no-method-allowed",
            Refusal::NoUsableFactor => "no-usable-factor",
            Refusal::Lookup(_) => "group-lookup-failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Let the user in without asking.
    Skip(Skip),
    /// Ask for a code of one of these factors, the first one first.
    /// `remember`: trust this device after a successful answer.
    Ask {
        factors: Vec<FactorState>,
        remember: Option<Device>,
    },
    /// Encourage: offer to set up a factor of `kind` now; declining lets in.
    Offer {
        kind: FactorKind,
    },
    /// Force: set up a factor of `kind` now, or be refused.
    Enrol {
        kind: FactorKind,
    },
    Refuse(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The rule that decided; `None` when MFA is off or groups could not be read.
    pub rule: Option<RuleOrigin>,
    pub class: ServiceClass,
    /// The user's effective level, when a rule decided.
    pub level: Option<Level>,
    /// Every step of the reasoning, in words.
    pub explanation: Vec<String>,
}

/// Decide what `subject` is asked, at time `now`. `memberships` holds what
/// the directory said about the groups the policy names
/// ([`Memberships::look_up`]).
pub fn decide(
    policy: &Policy,
    memberships: &Memberships,
    subject: Subject<'_>,
    state: &UserState,
    now: u64,
) -> Decision {
    let class = match subject.unlock {
        true => ServiceClass::Unlock,
        false => policy.class_of(subject.service),
    };
    let mut why = Vec::new();
    let done = |outcome, rule, level, why| Decision {
        outcome,
        rule,
        class,
        level,
        explanation: why,
    };
    if !policy.enabled {
        why.push("MFA is off ([policy] enabled = false): nobody is asked".into());
        return done(Outcome::Skip(Skip::Disabled), None, None, why);
    }

    let rule = match deciding_rule(policy, memberships, subject.user, &mut why) {
        Ok(rule) => rule,
        Err(e) => return done(Outcome::Refuse(Refusal::Lookup(e)), None, None, why),
    };
    let origin = Some(rule.origin.clone());
    if rule.exempt.iter().any(|u| u == subject.user) {
        why.push(format!("{} is exempt in the {}", subject.user, rule.origin));
        return done(Outcome::Skip(Skip::Exempt), origin, None, why);
    }
    if class == ServiceClass::Unlock {
        why.push("a screen locker's unlock: no bypass, no trusted device, no enrolment".into());
        if policy.unlock == Unlock::Never {
            why.push("unlocking asks for no second factor ([policy] unlock = \"never\")".into());
            return done(Outcome::Skip(Skip::Unlock), origin, None, why);
        }
    } else {
        why.push(format!(
            "service {:?} is a {} service",
            subject.service,
            class.name()
        ));
    }

    let methods = allowed_methods(policy, rule);
    if methods.is_empty() {
        why.push(format!(
            "the {} allows no method that [policy] methods allows",
            rule.origin
        ));
        return done(Outcome::Refuse(Refusal::NoMethod), origin, None, why);
    }
    why.push(format!("methods allowed: {}", names(&methods)));

    let level = state.level.unwrap_or(Level::DEFAULT).max(rule.min_level);
    match state.level {
        Some(chosen) if chosen < rule.min_level => why.push(format!(
            "level: {} (chose {}, raised to the rule's min_level)",
            level.name(),
            chosen.name()
        )),
        Some(_) => why.push(format!("level: {} (chosen by the user)", level.name())),
        None => why.push(format!("level: {} (not chosen)", level.name())),
    }

    let mut usable: Vec<FactorState> = state
        .factors
        .iter()
        .filter(|f| methods.contains(&f.kind))
        .cloned()
        .collect();
    for (kind, reason) in subject.unavailable {
        if usable.iter().any(|f| f.kind == *kind) {
            why.push(format!("{kind} factors are not offered: {reason}"));
            usable.retain(|f| f.kind != *kind);
        }
    }
    for (kind, reason) in subject.offered {
        if usable.iter().any(|f| f.kind == *kind) {
            why.push(format!("{kind} factors are offered: {reason}"));
        }
    }
    let had_usable = !usable.is_empty();
    if class == ServiceClass::Privileged && rule.elevation_approval {
        usable.retain(|f| f.approved);
        why.push(format!(
            "privileged services accept only factors an admin approved: {} of {} approved",
            usable.len(),
            state.factors.len()
        ));
        if usable.is_empty() && had_usable {
            return done(
                Outcome::Refuse(Refusal::NotApproved),
                origin,
                Some(level),
                why,
            );
        }
    }
    // The preferred factor first, then the order of enrolment.
    if let Some(preferred) = &state.preferred {
        if let Some(i) = usable.iter().position(|f| &f.id == preferred) {
            let f = usable.remove(i);
            usable.insert(0, f);
        }
    }
    let enrolled = !usable.is_empty();
    if enrolled {
        why.push(format!("usable factors: {}", labels(&usable)));
        if level == Level::Privileged && class != ServiceClass::Privileged {
            why.push("asked only by privileged services at this level".into());
            return done(
                Outcome::Skip(Skip::PrivilegedOnly),
                origin,
                Some(level),
                why,
            );
        }
    } else {
        why.push(format!(
            "no usable factor; the rule requires: {}",
            rule.require.name()
        ));
        if rule.require == Requirement::No {
            return done(Outcome::Skip(Skip::NotRequired), origin, Some(level), why);
        }
        if !state.factors.is_empty() && rule.require == Requirement::Encourage {
            why.push(format!(
                "{} has {} factor(s), none usable here; not required, and another one is never set up at a login of someone who has one: not asked",
                subject.user,
                state.factors.len()
            ));
            return done(Outcome::Skip(Skip::NotRequired), origin, Some(level), why);
        }
        if !state.factors.is_empty() {
            why.push(format!(
                "{} has {} factor(s), none usable here: refused (another one is never set up at a login of someone who has one)",
                subject.user,
                state.factors.len()
            ));
            return done(
                Outcome::Refuse(Refusal::NoUsableFactor),
                origin,
                Some(level),
                why,
            );
        }
    }

    let device = Device::identify(subject.auth_info, subject.rhost)
        .filter(|_| class != ServiceClass::Unlock);
    if class == ServiceClass::Unlock {
        // Nothing a locker sends about where it runs is believed.
    } else if level == Level::Always {
        why.push("level always: no bypass and no trusted device apply".into());
    } else {
        if let Some(name) = bypass_rule(policy, class, subject.rhost, now, &mut why) {
            return done(Outcome::Skip(Skip::Bypass(name)), origin, Some(level), why);
        }
        if let Some(d) = device.as_ref().filter(|_| enrolled) {
            if state.trusted_devices.contains(&d.key) {
                why.push(format!("{} is a trusted device", Device::describe(&d.key)));
                return done(Outcome::Skip(Skip::TrustedDevice), origin, Some(level), why);
            }
        }
    }

    let outcome = if enrolled {
        let remember = device.filter(|_| {
            policy.remember_days > 0 && level != Level::Always && class == ServiceClass::Login
        });
        match &remember {
            Some(d) => why.push(format!(
                "after a right code, {} is trusted for {} days",
                Device::describe(&d.key),
                policy.remember_days
            )),
            None if policy.remember_days > 0 => {
                why.push("this login's device will not be remembered".into())
            }
            None => {}
        }
        why.push(match usable.len() {
            1 => format!("asks for a code of {}", labels(&usable)),
            _ => format!(
                "asks for a code of {} first; an empty answer lists the others",
                labels(&usable[..1])
            ),
        });
        Outcome::Ask {
            factors: usable,
            remember,
        }
    } else {
        // The first allowed method that can be set up in a terminal.
        let kind = methods
            .iter()
            .copied()
            .find(|m| subject.enrolable.contains(m) && class != ServiceClass::Unlock);
        match kind {
            _ if class == ServiceClass::Unlock && rule.require == Requirement::Encourage => {
                why.push("nothing is set up at a lock screen: not asked".into());
                Outcome::Skip(Skip::NotRequired)
            }
            _ if class == ServiceClass::Unlock => {
                why.push(
                    "refused: nothing is set up at a lock screen; set a factor up with mfactl first"
                        .into(),
                );
                Outcome::Refuse(Refusal::NotEnrolled)
            }
            Some(kind) if rule.require == Requirement::Encourage => {
                why.push(format!(
                    "offers to set up a {kind} factor; declining lets in"
                ));
                Outcome::Offer { kind }
            }
            None if rule.require == Requirement::Encourage => {
                why.push(
                    "no allowed method can be set up at a login: tells how to set one up, lets in"
                        .into(),
                );
                Outcome::Skip(Skip::NotRequired)
            }
            _ if class == ServiceClass::Privileged && rule.elevation_approval => {
                why.push("a factor set up now would not be approved yet: refused".into());
                Outcome::Refuse(Refusal::NotApproved)
            }
            Some(kind) if policy.enrol_at_login => {
                why.push(format!("sets up a {kind} factor now, or refuses"));
                Outcome::Enrol { kind }
            }
            Some(_) => {
                why.push("refused: enrolment at login is off ([policy] enrol_at_login)".into());
                Outcome::Refuse(Refusal::NotEnrolled)
            }
            None => {
                why.push("refused: no allowed method can be set up at a login".into());
                Outcome::Refuse(Refusal::NotEnrolled)
            }
        }
    };
    done(outcome, origin, Some(level), why)
}

/// The strictest rule that applies to `user`. A rule whose group could not
/// be looked up refuses the login if it could have decided: if it is
/// stricter than the rule that decides without it, or as strict and first.
fn deciding_rule<'p>(
    policy: &'p Policy,
    memberships: &Memberships,
    user: &str,
    why: &mut Vec<String>,
) -> Result<&'p Rule, LookupError> {
    // (position in the file, rule); the default rule comes last.
    let mut applicable: Vec<(usize, &Rule)> = Vec::new();
    let mut unknown: Vec<(usize, &Rule, LookupError)> = Vec::new();
    if !policy.groups.is_empty() {
        let member_of = memberships.member_of();
        why.push(match member_of.is_empty() {
            true => format!("{user} is in none of the groups the rules name"),
            false => format!("{user} is in the groups: {}", member_of.join(", ")),
        });
    }
    for (i, rule) in policy.groups.iter().enumerate() {
        let RuleOrigin::Group { group, .. } = &rule.origin else {
            continue;
        };
        match memberships.of(group) {
            Membership::Member => applicable.push((i, rule)),
            Membership::NotMember => {}
            Membership::Missing if rule.allow_missing => why.push(format!(
                "group {group:?} does not exist; the {} allows that (allow_missing)",
                rule.origin
            )),
            Membership::Missing => unknown.push((
                i,
                rule,
                LookupError::new(
                    format!("group {group:?}"),
                    "NSS knows no such group, and its rule does not allow that (allow_missing = false)",
                ),
            )),
            Membership::Failed(e) => unknown.push((i, rule, e)),
        }
    }
    applicable.push((policy.groups.len(), &policy.default_rule));
    let listed: Vec<String> = applicable
        .iter()
        .map(|(_, r)| format!("{} (require {})", r.origin, r.require.name()))
        .collect();
    why.push(format!("rules that apply: {}", listed.join("; ")));
    let (at, rule) = strictest(&applicable).unwrap_or((policy.groups.len(), &policy.default_rule));
    for (i, other, e) in unknown {
        if other.require > rule.require || (other.require == rule.require && i < at) {
            why.push(format!(
                "{e}: the {} (require {}) would decide if {user} is a member: refused, never exempted",
                other.origin,
                other.require.name()
            ));
            return Err(e);
        }
        why.push(format!(
            "{e}; the {} (require {}) could not change the decision",
            other.origin,
            other.require.name()
        ));
    }
    why.push(format!("deciding: {} (the strictest)", rule.origin));
    Ok(rule)
}

/// The strictest of `rules`, the first of equals.
fn strictest<'p>(rules: &[(usize, &'p Rule)]) -> Option<(usize, &'p Rule)> {
    rules.iter().copied().reduce(|best, next| {
        if next.1.require > best.1.require {
            next
        } else {
            best
        }
    })
}

fn allowed_methods(policy: &Policy, rule: &Rule) -> Vec<FactorKind> {
    policy
        .methods
        .iter()
        .copied()
        .filter(|m| rule.methods.is_empty() || rule.methods.contains(m))
        .collect()
}

/// The bypass rule the login's literal source address is in, if any applies.
fn bypass_rule(
    policy: &Policy,
    class: ServiceClass,
    rhost: &str,
    now: u64,
    why: &mut Vec<String>,
) -> Option<String> {
    if !policy.bypass_enabled {
        if !policy.bypass.is_empty() {
            why.push("network bypass is off ([bypass] enabled = false)".into());
        }
        return None;
    }
    let Some(addr) = literal_address(rhost) else {
        why.push(match rhost {
            "" => "no remote address: no bypass".into(),
            _ => format!("remote host {rhost:?} is not a literal address: no bypass"),
        });
        return None;
    };
    for rule in policy.bypass.iter().filter(|r| r.network.contains(addr)) {
        match rule.expires {
            Some(expires) if expires <= now => why.push(format!(
                "{addr} is in bypass rule {:?} ({}), but it expired",
                rule.name, rule.network
            )),
            _ if rule.scope == BypassScope::Login && class == ServiceClass::Privileged => {
                why.push(format!(
                    "{addr} is in bypass rule {:?} ({}), but it applies to logins only (scope = \"login\"), not to privileged services",
                    rule.name, rule.network
                ))
            }
            _ => {
                why.push(format!(
                    "{addr} is in bypass rule {:?} ({}): not asked",
                    rule.name, rule.network
                ));
                return Some(rule.name.clone());
            }
        }
    }
    why.push(format!("{addr} is in no bypass rule"));
    None
}

fn names(methods: &[FactorKind]) -> String {
    methods
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn labels(factors: &[FactorState]) -> String {
    factors
        .iter()
        .map(|f| format!("{} ({})", f.label, f.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
