//! Where a pam_mfa login's time goes: the calls `pam_mfa.so` makes
//! (mfa_dbus's synchronous client: a fresh connection to mfad's login
//! socket, Login1.Start, Login1.Answer, disconnect), made directly from
//! the benchmark with the same client and timed one by one. The difference to a
//! PAM login is libpam plus the module's own work.

use mfa_dbus::wire::login::{step_from, LoginLink, StepFields};
use mfa_dbus::{LoginRequest, Step, StepKind};
use std::time::{Duration, Instant};

const CALL_LIMIT: Duration = Duration::from_secs(5);

/// Stage names, in order.
pub const STAGES: [(&str, &str); 6] = [
    ("total", "the same calls as pam_mfa.so, without libpam"),
    (
        "connect",
        "connect to the login socket, check it and its server (SO_PEERCRED)",
    ),
    ("start", "Login1.Start (mfad: policy, store read)"),
    (
        "answer",
        "Login1.Answer (mfad: verify, store write + fsync)",
    ),
    ("teardown", "close the connection"),
    (
        "ping",
        "for scale: Peer.Ping to mfad on the open connection",
    ),
];

pub struct Direct {
    socket: std::path::PathBuf,
}

impl Direct {
    /// The mfad on the bus at `address`, through its login socket.
    pub fn new(address: &str) -> Result<Direct, String> {
        Ok(Direct {
            socket: mfa_tests::bus::login_socket_for(address),
        })
    }

    /// One login; the duration of each stage in nanoseconds.
    pub fn login(&self, user: &str, code: &str) -> Result<Vec<(&'static str, u64)>, String> {
        let request = LoginRequest {
            user: user.into(),
            service: "bench".into(),
            ..LoginRequest::default()
        };
        let mut stages = Vec::with_capacity(STAGES.len());
        let started = Instant::now();
        let mut mark = Instant::now();
        let mut link = LoginLink::socket(&self.socket, CALL_LIMIT).map_err(|e| e.to_string())?;
        stages.push(("connect", lap(&mut mark)));
        let (handle, step): (String, Step) = link
            .call("Start", &(&request,))
            .map_err(|e| format!("Start: {e}"))?;
        stages.push(("start", lap(&mut mark)));
        if step.kind != StepKind::PromptEchoOff {
            return Err(format!("Start returned {step:?}"));
        }
        let fields: StepFields = link
            .call("Answer", &(handle.as_str(), code, 0u64))
            .map_err(|e| format!("Answer: {e}"))?;
        let step = step_from(fields);
        stages.push(("answer", lap(&mut mark)));
        let ping_started = Instant::now();
        link.ping().map_err(|e| format!("Ping: {e}"))?;
        let ping = elapsed(ping_started);
        mark = Instant::now();
        drop(link);
        stages.push(("teardown", lap(&mut mark)));
        // The ping is not part of a login.
        stages.push(("total", elapsed(started).saturating_sub(ping)));
        stages.push(("ping", ping));
        if step.kind != StepKind::Allow {
            return Err("denied".to_string());
        }
        Ok(stages)
    }
}

fn elapsed(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Time since `mark`, and move `mark` to now.
fn lap(mark: &mut Instant) -> u64 {
    let ns = elapsed(*mark);
    *mark = Instant::now();
    ns
}
