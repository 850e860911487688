//! What users choose within the policy (level, preferred factor, trusted
//! devices), what admins approve, and `policy explain` / `policy check`.

use super::Service;
use crate::config::Config;
use crate::error::DaemonError;
use crate::policy::{check_admins, check_groups, AdminCheck, Device, Level, Outcome, Policy};
use mfa_dbus::{AuditEntry, DeviceInfo, Explanation, LoginRequest, PolicyCheck, UserSettings};
use std::path::Path;
use std::sync::Arc;

impl Service {
    pub fn set_preferred(&self, caller_uid: u32, user: &str, id: &str) -> Result<(), DaemonError> {
        if !self.store.set_preferred(user, id)? {
            return Err(DaemonError::NotFound(format!(
                "{user} has no confirmed factor {id:?}"
            )));
        }
        self.audit
            .change("prefer", caller_uid, user, &[("factor", id)]);
        Ok(())
    }

    /// The level `user` chooses; refused below what their rule allows.
    pub fn set_level(&self, caller_uid: u32, user: &str, level: &str) -> Result<(), DaemonError> {
        let chosen = match level {
            "" => None,
            name => Some(Level::from_name(name).ok_or_else(|| {
                DaemonError::InvalidArgument(format!(
                    "unknown level {name:?}; use privileged, appropriate or always"
                ))
            })?),
        };
        let min = self.min_level(user)?;
        if let Some(chosen) = chosen.filter(|c| *c < min) {
            return Err(DaemonError::PolicyDenied(format!(
                "policy allows no level below {} for {user} (asked for {})",
                min.name(),
                chosen.name()
            )));
        }
        self.store.set_level(user, chosen)?;
        self.audit.change(
            "level",
            caller_uid,
            user,
            &[("level", chosen.map(Level::name).unwrap_or("default"))],
        );
        Ok(())
    }

    pub fn settings(&self, user: &str) -> Result<UserSettings, DaemonError> {
        let (chosen, preferred) = self.store.settings(user)?;
        let chosen_level = chosen.and_then(|c| Level::from_name(&c));
        let min = self.min_level(user)?;
        Ok(UserSettings {
            level: chosen_level
                .unwrap_or(Level::DEFAULT)
                .max(min)
                .name()
                .into(),
            chosen_level: chosen_level.map(Level::name).unwrap_or("").into(),
            min_level: min.name().into(),
            preferred: preferred.unwrap_or_default(),
        })
    }

    /// The least level the rule deciding for `user` allows.
    fn min_level(&self, user: &str) -> Result<Level, DaemonError> {
        let request = LoginRequest {
            user: user.into(),
            service: "login".into(),
            ..Default::default()
        };
        let decision = self.decide(&request)?;
        if let Outcome::Refuse(crate::policy::Refusal::Lookup(e)) = decision.outcome {
            return Err(DaemonError::Internal(e.to_string()));
        }
        let policy = self.policy();
        let rule = match &decision.rule {
            None => &policy.default_rule,
            Some(origin) => policy
                .groups
                .iter()
                .find(|r| &r.origin == origin)
                .unwrap_or(&policy.default_rule),
        };
        Ok(rule.min_level)
    }

    pub fn list_devices(&self, user: &str) -> Result<Vec<DeviceInfo>, DaemonError> {
        Ok(self
            .store
            .devices(user, self.clock.now())?
            .into_iter()
            .map(|d| DeviceInfo {
                id: d.id,
                device: Device::describe(&d.device),
                created: d.created,
                expires: d.expires,
                last_used: d.last_used,
            })
            .collect())
    }

    /// Forget device `id`, or every device with an empty `id`.
    pub fn revoke_devices(
        &self,
        caller_uid: u32,
        user: &str,
        id: &str,
    ) -> Result<u32, DaemonError> {
        let which = (!id.is_empty()).then_some(id);
        let n = self.store.revoke_devices(user, which)?;
        if n == 0 && which.is_some() {
            return Err(DaemonError::NotFound(format!(
                "{user} has no trusted device {id:?}"
            )));
        }
        self.audit.change(
            "revoke-devices",
            caller_uid,
            user,
            &[
                ("device", which.unwrap_or("all")),
                ("count", &n.to_string()),
            ],
        );
        Ok(n)
    }

    pub fn approve_factor(
        &self,
        caller_uid: u32,
        user: &str,
        id: &str,
        approved: bool,
    ) -> Result<(), DaemonError> {
        crate::login::validate_user(user)?;
        if !self.store.set_approved(user, id, approved)? {
            return Err(DaemonError::NotFound(format!(
                "{user} has no confirmed factor {id:?}"
            )));
        }
        let action = if approved { "approve" } else { "unapprove" };
        self.audit
            .change(action, caller_uid, user, &[("factor", id)]);
        Ok(())
    }

    /// What a login described by `request` would meet now.
    /// `service` "unlock" explains a screen locker's unlock (what a PAM
    /// client running as the user meets).
    pub fn explain(&self, request: &LoginRequest) -> Result<Explanation, DaemonError> {
        crate::login::validate_request(request)?;
        let mut context = self.login_context(request, None);
        context.unlock = request.service == crate::login::UNLOCK_SERVICE;
        // No process here: what its tree would tell is assumed, and said
        // (a real login whose process is not known is never local).
        if context.remote.as_deref() == Some(crate::login::NO_PROCESS) {
            context.remote = None;
            context.hypothetical = true;
        }
        let decision = self.decide_at(&context)?;
        let (outcome, reason) = match &decision.outcome {
            Outcome::Skip(skip) => ("skip", skip.reason()),
            Outcome::Ask { .. } => ("ask", String::new()),
            Outcome::Offer { .. } => ("offer", String::new()),
            Outcome::Enrol { .. } => ("enrol", String::new()),
            Outcome::Refuse(r) => ("refuse", r.reason().to_string()),
        };
        Ok(Explanation {
            outcome: outcome.into(),
            reason,
            rule: decision.rule.map(|r| r.to_string()).unwrap_or_default(),
            class: decision.class.name().into(),
            level: decision.level.map(Level::name).unwrap_or("").into(),
            lines: decision.explanation,
        })
    }

    /// Parse `text` as mfad.toml and check that root and the admins could
    /// still log in under its policy, with the factors they have now.
    pub fn check_policy(&self, text: &str) -> PolicyCheck {
        let config = match Config::parse(text, Path::new("(checked text)")) {
            Ok(c) => c,
            Err(e) => {
                return PolicyCheck {
                    errors: vec![e.to_string()],
                    warnings: Vec::new(),
                }
            }
        };
        let check = self.admin_check(&config.policy, config.daemon.admin_group.as_deref());
        PolicyCheck {
            errors: check.errors,
            warnings: check.warnings,
        }
    }

    /// At start: say loudly if the policy in force keeps root or every admin
    /// out (mfad still serves: refusing to would keep everyone out).
    pub fn warn_about_policy(&self) {
        let check = self.admin_check(&self.policy(), self.config.daemon.admin_group.as_deref());
        for error in &check.errors {
            self.audit
                .message(crate::audit::Severity::Error, &format!("policy: {error}"));
        }
        for warning in &check.warnings {
            self.audit.message(
                crate::audit::Severity::Warning,
                &format!("policy: {warning}"),
            );
        }
    }

    fn admin_check(&self, policy: &Policy, admin_group: Option<&str>) -> AdminCheck {
        let now = self.clock.now();
        let state = |user: &str| self.store.policy_state(user, now).unwrap_or_default();
        check_admins(policy, self.directory.as_ref(), admin_group, &state, now)
    }

    /// Read the config file again and put its policy (`[policy]`,
    /// `[[policy.group]]`, `[bypass]`, `[devices]`) in force for the logins
    /// that start from now on. A file with an error changes nothing. The
    /// other sections take effect at the next start: the notes say which
    /// differ.
    pub fn reload_policy(&self, caller_uid: u32) -> Result<Vec<String>, DaemonError> {
        let path = self.config_path.as_ref().ok_or_else(|| {
            DaemonError::Internal("mfad was started without a config file".into())
        })?;
        let new = Config::load(path).map_err(|e| DaemonError::InvalidArgument(e.to_string()))?;
        let groups = check_groups(&new.policy, self.directory.as_ref());
        if !groups.errors.is_empty() {
            return Err(DaemonError::InvalidArgument(format!(
                "{}: {}",
                path.display(),
                groups.errors.join("; ")
            )));
        }
        let mut notes = Vec::new();
        let old = &self.config;
        for (section, changed) in [
            (
                "[daemon]",
                new.daemon.state_dir != old.daemon.state_dir
                    || new.daemon.admin_group != old.daemon.admin_group,
            ),
            ("[login]", new.login != old.login),
            ("[lockout]", new.lockout != old.lockout),
            ("[enrolment]", new.enrolment != old.enrolment),
            ("[totp]", new.totp != old.totp),
            ("[hotp]", new.hotp != old.hotp),
            ("[notify]", new.notify != old.notify),
            ("[store]", new.store != old.store),
        ] {
            if changed {
                notes.push(format!("{section} changed: restart mfad to use it"));
            }
        }
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new.policy);
        self.audit.change(
            "reload-policy",
            caller_uid,
            "",
            &[("file", &path.display().to_string())],
        );
        self.warn_about_policy();
        Ok(notes)
    }

    /// Recorded decisions and changes, as `mfactl audit` shows them.
    pub fn audit_history(
        &self,
        user: &str,
        since: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, DaemonError> {
        let history = self
            .audit
            .history()
            .ok_or_else(|| DaemonError::Internal("the audit history is not available".into()))?;
        let user = (!user.is_empty()).then_some(user);
        Ok(history
            .query(user, since, limit.clamp(1, 100_000))?
            .into_iter()
            .map(|r| AuditEntry {
                host: r.host,
                time: r.time,
                event: r.event,
                user: r.user,
                service: r.service,
                rhost: r.rhost,
                outcome: r.outcome,
                reason: r.reason,
                detail: r.detail,
            })
            .collect())
    }
}
