//! Every D-Bus argument: arbitrary bytes as the body of each method mfad
//! serves, in either byte order. What decodes goes through the checks and
//! the Service call the bus layer makes. The replies pam_mfa.so and mfactl
//! decode are fuzzed the same way.
//!
//! Input: a method byte, a flags byte (bit 0: big-endian), then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_dbus::{
    AuditEntry, DeviceInfo, EnrolOptions, EnrolmentOffer, Explanation, FactorInfo, LoginRequest,
    PolicyCheck, Step, UserSettings, UserSummary,
};
use mfad::service::{validate_request, validate_user};
use pam_mfa_fuzz::{World, ALICE, OWNER};
use serde::de::DeserializeOwned;
use zbus::zvariant::serialized::{Context, Data};
use zbus::zvariant::{Type, BE, LE};

thread_local! {
    static WORLD: World = World::new();
}

fuzz_target!(|data: &[u8]| {
    let [method, flags, body @ ..] = data else {
        return;
    };
    let endian = if flags & 1 == 0 { LE } else { BE };
    let body = Data::new(body, Context::new_dbus(endian, 0));
    WORLD.with(|world| {
        world.reset();
        call(world, *method, &body);
        world.service.list_users().expect("list users");
    });
});

/// A method's arguments, decoded as zbus decodes a body of that signature.
fn args<T: DeserializeOwned + Type>(body: &Data<'_, '_>) -> Option<T> {
    body.deserialize().ok().map(|(value, _)| value)
}

fn call(world: &World, method: u8, body: &Data<'_, '_>) {
    let s = &world.service;
    match method % 24 {
        // org.pam_mfa.Login1 (the caller is root; its connection is OWNER).
        0 => {
            if let Some((request,)) = args::<(LoginRequest,)>(body) {
                let valid = validate_request(&request).is_ok();
                if let Ok((handle, _)) = s.start_login(OWNER, request) {
                    assert!(valid, "start accepted an invalid request");
                    s.cancel(OWNER, &handle);
                }
            }
        }
        1 => {
            if let Some((handle, answer, deadline)) = args::<(String, String, u64)>(body) {
                let _ = s.answer(OWNER, &handle, &answer, deadline);
                // Handles are unguessable: the answer also goes to a live login.
                let (live, _) = s.start_login(OWNER, request(ALICE)).expect("start");
                let _ = s.answer(OWNER, &live, &answer, deadline);
                s.cancel(OWNER, &live);
            }
        }
        2 => {
            if let Some((handle,)) = args::<(String,)>(body) {
                s.cancel(OWNER, &handle);
            }
        }
        // org.pam_mfa.Factors1 (the user is the caller's own, not an argument).
        3 => {
            if let Some((kind, label, options)) = args::<(String, String, EnrolOptions)>(body) {
                if let Ok(offer) = s.begin_enrolment(0, ALICE, &kind, &label, &options) {
                    let _ = s.confirm_enrolment(0, ALICE, &offer.id, "000000");
                    let _ = s.remove_factor(0, ALICE, &offer.id);
                }
            }
        }
        4 => {
            if let Some((id, code)) = args::<(String, String)>(body) {
                let _ = s.confirm_enrolment(0, ALICE, &id, &code);
            }
        }
        5 => {
            if let Some((id,)) = args::<(String,)>(body) {
                let _ = s.remove_factor(0, ALICE, &id);
            }
        }
        // org.pam_mfa.Admin1
        6 => {
            if let Some((user,)) = args::<(String,)>(body) {
                if validate_user(&user).is_ok() {
                    let _ = s.list_factors(&user);
                }
            }
        }
        7 => {
            if let Some((user,)) = args::<(String,)>(body) {
                let valid = validate_user(&user).is_ok();
                assert!(s.reset_user(0, &user).is_ok() || !valid);
            }
        }
        8 => {
            if let Some((user,)) = args::<(String,)>(body) {
                let valid = validate_user(&user).is_ok();
                assert!(s.unlock_user(0, &user).is_ok() || !valid);
            }
        }
        // Factors1: settings, devices, resync (of the caller's own account).
        14 => {
            if let Some((id,)) = args::<(String,)>(body) {
                let _ = s.set_preferred(0, ALICE, &id);
                let _ = s.revoke_devices(0, ALICE, &id);
            }
        }
        15 => {
            if let Some((level,)) = args::<(String,)>(body) {
                let _ = s.set_level(0, ALICE, &level);
                s.settings(ALICE).expect("settings");
            }
        }
        16 => {
            if let Some((id, first, second)) = args::<(String, String, String)>(body) {
                let _ = s.resync(0, ALICE, &id, &first, &second);
            }
        }
        // Admin1: approval, devices, explain, check, audit.
        17 => {
            if let Some((user, id, approved)) = args::<(String, String, bool)>(body) {
                let _ = s.approve_factor(0, &user, &id, approved);
            }
        }
        18 => {
            if let Some((user, service, rhost, auth_info)) =
                args::<(String, String, String, String)>(body)
            {
                let request = LoginRequest {
                    user,
                    service,
                    rhost,
                    auth_info,
                    ..Default::default()
                };
                let valid = validate_request(&request).is_ok();
                assert!(s.explain(&request).is_ok() || !valid);
            }
        }
        19 => {
            if let Some((config,)) = args::<(String,)>(body) {
                let _ = s.check_policy(&config);
            }
        }
        20 => {
            if let Some((user, since, limit)) = args::<(String, u64, u32)>(body) {
                if user.is_empty() || validate_user(&user).is_ok() {
                    let _ = s.audit_history(&user, since, limit);
                }
            }
        }
        21 => {
            let _ = args::<(Vec<DeviceInfo>,)>(body);
            let _ = args::<(UserSettings,)>(body);
        }
        22 => {
            let _ = args::<(Explanation,)>(body);
            let _ = args::<(PolicyCheck,)>(body);
            let _ = args::<(Vec<AuditEntry>,)>(body);
        }
        // Replies: Start, Answer, BeginEnrolment, the lists, the scalars.
        9 => {
            let _ = args::<(String, Step)>(body);
        }
        10 => {
            if let Some((step,)) = args::<(Step,)>(body) {
                let _ = step.is_terminal();
            }
        }
        11 => {
            let _ = args::<(EnrolmentOffer,)>(body);
        }
        12 => {
            let _ = args::<(Vec<FactorInfo>,)>(body);
            let _ = args::<(FactorInfo,)>(body);
        }
        13 | 23 => {
            let _ = args::<(Vec<UserSummary>,)>(body);
            let _ = args::<(Vec<String>,)>(body);
            let _ = args::<(u32,)>(body);
            let _ = args::<(bool,)>(body);
        }
        _ => unreachable!("method % 24"),
    }
}

fn request(user: &str) -> LoginRequest {
    LoginRequest {
        user: user.into(),
        service: "sshd".into(),
        ..Default::default()
    }
}
