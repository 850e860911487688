//! Where a pam_mfa login's time goes: the calls `pam_mfa.so` makes
//! (`src/transport.rs` there: a current-thread runtime per login, a fresh
//! connection to mfad's login socket, Login1.Start, Login1.Answer,
//! disconnect), made directly from
//! the benchmark with mfa_dbus and timed one by one. The difference to a
//! PAM login is libpam plus the module's own work.

use mfa_dbus::{LoginProxy, LoginRequest, StepKind, BUS_NAME, OBJECT_PATH};
use std::time::{Duration, Instant};

const CALL_LIMIT: Duration = Duration::from_secs(5);

/// Stage names, in order.
pub const STAGES: [(&str, &str); 7] = [
    ("total", "the same calls as pam_mfa.so, without libpam"),
    ("runtime", "build the current-thread tokio runtime"),
    (
        "connect",
        "connect to the login socket, check it and its server (SO_PEERCRED)",
    ),
    ("start", "Login1.Start (mfad: policy, store read)"),
    (
        "answer",
        "Login1.Answer (mfad: verify, store write + fsync)",
    ),
    ("teardown", "drop the connection, shut the runtime down"),
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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let mut mark = Instant::now();
        stages.push(("runtime", lap(&mut mark)));
        let (result, ping) = runtime
            .block_on(async {
                let conn = mfa_dbus::socket::connect(&self.socket, CALL_LIMIT)
                    .await
                    .map_err(|e| e.to_string())?;
                stages.push(("connect", lap(&mut mark)));
                let proxy = LoginProxy::builder(&conn)
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await
                    .map_err(|e| format!("proxy: {e}"))?;
                let (handle, step) = proxy
                    .start(&request)
                    .await
                    .map_err(|e| format!("Start: {e}"))?;
                stages.push(("start", lap(&mut mark)));
                if step.kind != StepKind::PromptEchoOff {
                    return Err(format!("Start returned {step:?}"));
                }
                let step = proxy
                    .answer(&handle, code, 0)
                    .await
                    .map_err(|e| format!("Answer: {e}"))?;
                stages.push(("answer", lap(&mut mark)));
                let allowed = step.kind == StepKind::Allow;
                let ping_started = Instant::now();
                conn.call_method(
                    Some(BUS_NAME),
                    OBJECT_PATH,
                    Some("org.freedesktop.DBus.Peer"),
                    "Ping",
                    &(),
                )
                .await
                .map_err(|e| format!("Ping: {e}"))?;
                let ping = elapsed(ping_started);
                mark = Instant::now();
                drop(conn);
                Ok::<_, String>((allowed, ping))
            })
            .map(|(allowed, ping)| {
                (
                    if allowed {
                        Ok(())
                    } else {
                        Err("denied".to_string())
                    },
                    ping,
                )
            })?;
        runtime.shutdown_timeout(Duration::from_secs(1));
        stages.push(("teardown", lap(&mut mark)));
        // The ping is not part of a login.
        stages.push(("total", elapsed(started).saturating_sub(ping)));
        stages.push(("ping", ping));
        result.map(|()| stages)
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
