//! The policy engine: who is asked for a second factor, for which service,
//! from where. Admins write it in `mfad.toml` (`[policy]`, `[[policy.group]]`,
//! `[bypass]`, `[devices]`); [`decide`] turns it, with what the store knows
//! about the user, into one [`Decision`] that both the login and
//! `mfactl policy explain` use, so the two can never disagree.
//!
//! Precedence: of the rules that apply to a user (each `[[policy.group]]`
//! whose group the user is in, and always `[policy.default]`), the strictest
//! `require` decides (force > encourage > no); among equally strict rules the
//! first group rule in the file, and the default rule last.

mod check;
mod decide;
mod device;
mod directory;
mod membership;
mod network;

pub use check::{check_admins, check_groups, AdminCheck};
pub use decide::{decide, Decision, FactorState, Outcome, Refusal, Skip, Subject, UserState};
pub use device::Device;
pub use directory::{Directory, GroupEntry, LookupError, Nss, UserEntry};
pub use membership::{group_names, Membership, Memberships};
pub use network::Network;

use crate::mechanism::FactorKind;
use std::fmt;

/// Whether users a rule applies to must have a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Requirement {
    /// Users who set up a factor are asked for it; others are not.
    No,
    /// Users without a factor are told how to set one up, and may do so at login.
    Encourage,
    /// Users without a factor set one up at login, or are refused.
    Force,
}

impl Requirement {
    pub const CHOICES: &'static [(&'static str, Requirement)] = &[
        ("no", Requirement::No),
        ("encourage", Requirement::Encourage),
        ("force", Requirement::Force),
    ];
    pub fn name(self) -> &'static str {
        name_of(Self::CHOICES, self)
    }
}

/// When a user is asked, from least to most often. Chosen by the user,
/// bounded below by the rule's `min_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only for privileged services (sudo, su, pkexec, …).
    Privileged,
    /// Every service, except from a bypass network or a trusted device.
    Appropriate,
    /// Every login; nothing bypasses.
    Always,
}

impl Level {
    pub const CHOICES: &'static [(&'static str, Level)] = &[
        ("privileged", Level::Privileged),
        ("appropriate", Level::Appropriate),
        ("always", Level::Always),
    ];
    /// The level of a user who never chose one.
    pub const DEFAULT: Level = Level::Appropriate;
    pub fn name(self) -> &'static str {
        name_of(Self::CHOICES, self)
    }
    pub fn from_name(name: &str) -> Option<Level> {
        Self::CHOICES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
    }
}

fn name_of<T: PartialEq + Copy>(choices: &[(&'static str, T)], value: T) -> &'static str {
    choices
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(n, _)| *n)
        .unwrap_or("?")
}

/// Where a rule was written, for `explain` and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// `[policy.default]`.
    Default,
    /// A `[[policy.group]]` table for `group`, at `line` of mfad.toml.
    Group { group: String, line: usize },
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleOrigin::Default => f.write_str("default rule"),
            RuleOrigin::Group { group, line } => write!(f, "group rule {group:?} (line {line})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub origin: RuleOrigin,
    pub require: Requirement,
    /// Methods this rule accepts; empty = every method allowed system-wide.
    pub methods: Vec<FactorKind>,
    /// The least level its users may choose.
    pub min_level: Level,
    /// Privileged services accept only factors an admin approved.
    pub elevation_approval: bool,
    /// Accounts (service accounts, break-glass) this rule never asks when it decides.
    pub exempt: Vec<String>,
    /// A group rule whose group may not exist: it then applies to nobody.
    /// Off, a group NSS does not know refuses the logins it could decide
    /// (a typo must not turn a rule off).
    pub allow_missing: bool,
}

impl Rule {
    pub fn default_rule() -> Rule {
        Rule {
            origin: RuleOrigin::Default,
            require: Requirement::No,
            methods: Vec::new(),
            min_level: Level::Appropriate,
            elevation_approval: false,
            exempt: Vec::new(),
            allow_missing: false,
        }
    }
}

/// Which services a bypass rule lets skip the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassScope {
    /// Login services only: never sudo, su or another privileged service.
    Login,
    /// Every service, privileged ones included.
    All,
}

impl BypassScope {
    pub const CHOICES: &'static [(&'static str, BypassScope)] =
        &[("login", BypassScope::Login), ("all", BypassScope::All)];
    pub fn name(self) -> &'static str {
        name_of(Self::CHOICES, self)
    }
}

/// A network whose logins skip the second factor, until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BypassRule {
    pub name: String,
    pub network: Network,
    pub scope: BypassScope,
    /// Seconds since the epoch from which the rule no longer applies.
    pub expires: Option<u64>,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The global switch: off, nobody is asked.
    pub enabled: bool,
    /// Methods allowed system-wide.
    pub methods: Vec<FactorKind>,
    /// PAM service names that count as privileged (elevation).
    pub privileged_services: Vec<String>,
    /// Users who must or may set up a factor can do it during the login.
    pub enrol_at_login: bool,
    /// Seconds the group lookups of one login may take; past that the
    /// directory counts as down.
    pub lookup_timeout: u64,
    pub default_rule: Rule,
    /// `[[policy.group]]` rules in file order.
    pub groups: Vec<Rule>,
    /// The bypass master switch.
    pub bypass_enabled: bool,
    pub bypass: Vec<BypassRule>,
    /// Days a device is trusted after a successful second factor; 0 = never.
    pub remember_days: u32,
    /// Whether a screen locker's unlock is asked for a second factor.
    pub unlock: Unlock,
    /// Whether a user who has a factor must prove one before adding,
    /// removing or replacing factors or recovery codes, or changing their
    /// level (an admin never has to).
    pub step_up: bool,
}

/// `[policy] unlock`: unlocking a screen (a PAM client running as the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlock {
    /// As the user's rule says for a login at the machine — without a
    /// bypass, a trusted device or an enrolment.
    Ask,
    /// Never: the lock screen asks for the password alone.
    Never,
}

impl Unlock {
    pub const CHOICES: &'static [(&'static str, Unlock)] =
        &[("ask", Unlock::Ask), ("never", Unlock::Never)];
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: false,
            methods: FactorKind::ALL.to_vec(),
            privileged_services: [
                "sudo",
                "sudo-i",
                "su",
                "su-l",
                "pkexec",
                "polkit-1",
                "systemd-run0",
                "doas",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            enrol_at_login: true,
            lookup_timeout: 3,
            default_rule: Rule::default_rule(),
            groups: Vec::new(),
            bypass_enabled: false,
            bypass: Vec::new(),
            remember_days: 0,
            unlock: Unlock::Ask,
            step_up: true,
        }
    }
}

/// Logins to a shell or desktop versus gaining privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceClass {
    Login,
    Privileged,
    /// A screen locker running as the user: everything it says about the
    /// login but the user is untrusted.
    Unlock,
}

impl ServiceClass {
    pub fn name(self) -> &'static str {
        match self {
            ServiceClass::Login => "login",
            ServiceClass::Privileged => "privileged",
            ServiceClass::Unlock => "unlock",
        }
    }
}

impl Policy {
    pub fn class_of(&self, service: &str) -> ServiceClass {
        if self.privileged_services.iter().any(|s| s == service) {
            ServiceClass::Privileged
        } else {
            ServiceClass::Login
        }
    }
}
