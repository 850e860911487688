//! The authenticator: soft-fido2's CTAP2 core behind soft-fido2-transport's
//! CTAPHID framing, with the callbacks that make it a testable double
//! (presence knob, persistent store, counter modes, KEEPALIVE while a
//! touch is delayed).
//!
//! All CTAP processing runs on one worker thread, fed with output reports
//! (what the host wrote) through a channel, as a key's firmware handles one
//! transaction at a time.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use soft_fido2_ctap::authenticator::AuthenticatorOptions;
use soft_fido2_ctap::key_provider::{
    CredentialKey, CredentialKeyError, CredentialKeyProvider, CredentialKeyProviderId,
    GeneratedCredentialKey, SoftwareCredentialKeyProvider,
};
use soft_fido2_ctap::types::{Credential, PinState};
use soft_fido2_ctap::{
    Authenticator, AuthenticatorConfig, CommandDispatcher, CredentialStorageCallbacks,
    PinStorageCallbacks, SecPinHash, StatusCode, UpResult, UserInteractionCallbacks, UvResult,
};
use soft_fido2_transport::{Cmd, CommandHandler, CtapHidHandler, Packet};

use crate::device::{Device, Report};
use crate::hid::REPORT_LEN;
use crate::state::Store;

/// COSE algorithm identifiers.
pub const ES256: i32 = -7;
pub const EDDSA: i32 = -8;
/// The fully specified Ed25519 identifier; soft-fido2 treats it as EdDSA.
const ED25519: i32 = -19;

/// CTAPHID KEEPALIVE is sent every 100 ms while a touch is awaited.
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);
/// `CTAPHID_KEEPALIVE` status `UPNEEDED`.
const KEEPALIVE_UPNEEDED: u8 = 0x02;
/// credProtect levels.
const CRED_PROTECT_UV_OPTIONAL: u8 = 0x01;
const CRED_PROTECT_UV_REQUIRED: u8 = 0x03;
/// Longest presence delay accepted (one hour).
const MAX_DELAY_MS: u64 = 3_600_000;

/// What the simulated user does when the key asks for a touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accept,
    Deny,
    Timeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Answer at once.
    Now(Outcome),
    /// Answer after `ms`, sending KEEPALIVE(UPNEEDED) meanwhile.
    Delay { ms: u64, then: Outcome },
}

impl Outcome {
    fn parse(word: &str) -> Result<Self, String> {
        match word {
            "accept" => Ok(Outcome::Accept),
            "deny" => Ok(Outcome::Deny),
            "timeout" => Ok(Outcome::Timeout),
            other => Err(format!(
                "unknown presence answer {other:?} (accept, deny or timeout)"
            )),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Accept => "accept",
            Outcome::Deny => "deny",
            Outcome::Timeout => "timeout",
        })
    }
}

impl Presence {
    /// Like [`Presence::parse`], the words separated by blanks or colons
    /// (`delay 500 deny` = `delay:500:deny`).
    pub fn parse_str(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s
            .split(|c: char| c == ':' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        Self::parse(&words)
    }

    /// `accept` | `deny` | `timeout` | `delay MS [accept|deny|timeout]`.
    pub fn parse(words: &[&str]) -> Result<Self, String> {
        match words {
            [one] if *one != "delay" => Ok(Presence::Now(Outcome::parse(one)?)),
            ["delay", ms, rest @ ..] => {
                let ms: u64 = ms
                    .parse()
                    .map_err(|_| format!("delay needs milliseconds, got {ms:?}"))?;
                if ms > MAX_DELAY_MS {
                    return Err(format!("delay {ms} ms is over the {MAX_DELAY_MS} ms limit"));
                }
                let then = match rest {
                    [] => Outcome::Accept,
                    [word] => Outcome::parse(word)?,
                    _ => return Err("delay MS takes at most one answer after it".into()),
                };
                Ok(Presence::Delay { ms, then })
            }
            _ => Err("presence: accept | deny | timeout | delay MS [accept|deny|timeout]".into()),
        }
    }
}

impl fmt::Display for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Presence::Now(o) => write!(f, "{o}"),
            Presence::Delay { ms, then } => write!(f, "delay:{ms}:{then}"),
        }
    }
}

/// How the signature counter behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterMode {
    /// +1 per assertion, stored (soft-fido2's default).
    Normal,
    /// soft-fido2's `constant_sign_count`: every assertion reports 0 and
    /// nothing is stored.
    Constant,
    /// The store keeps the count it has: every assertion reports the same
    /// stored count + 1 (a key whose counter never advances).
    Freeze,
}

impl CounterMode {
    pub fn parse(word: &str) -> Result<Self, String> {
        match word {
            "normal" => Ok(CounterMode::Normal),
            "constant" => Ok(CounterMode::Constant),
            "freeze" => Ok(CounterMode::Freeze),
            other => Err(format!(
                "unknown counter mode {other:?} (normal, constant or freeze)"
            )),
        }
    }
}

impl fmt::Display for CounterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CounterMode::Normal => "normal",
            CounterMode::Constant => "constant",
            CounterMode::Freeze => "freeze",
        })
    }
}

/// What the key does to its assertions (a misbehaving or hostile key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertionMode {
    /// As soft-fido2 makes them.
    Normal,
    /// getAssertion answers with the last assertion it made, byte for byte
    /// (old challenge, old counter, no touch), once there is one.
    Replay,
    /// Assertions are made for another relying party: the RP ID hash in
    /// the authenticator data is [`OTHER_RP_ID`]'s, and the signature is
    /// made over that authenticator data (valid, for the wrong RP).
    OtherRp,
}

/// The relying party `assertion other-rp` signs for.
pub const OTHER_RP_ID: &str = "evil.example";

impl AssertionMode {
    pub fn parse(word: &str) -> Result<Self, String> {
        match word {
            "normal" => Ok(AssertionMode::Normal),
            "replay" => Ok(AssertionMode::Replay),
            "other-rp" => Ok(AssertionMode::OtherRp),
            other => Err(format!(
                "unknown assertion mode {other:?} (normal, replay or other-rp)"
            )),
        }
    }
}

impl fmt::Display for AssertionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AssertionMode::Normal => "normal",
            AssertionMode::Replay => "replay",
            AssertionMode::OtherRp => "other-rp",
        })
    }
}

/// Fixed properties of the simulated key.
pub struct KeyConfig {
    pub aaguid: [u8; 16],
    /// COSE algorithms offered, in preference order (ES256 / EdDSA).
    pub algorithms: Vec<i32>,
    /// PIN/UV auth protocols accepted, in getInfo order. Only 2 works with
    /// soft-fido2 0.17 (see `Dispatch`).
    pub pin_protocols: Vec<u8>,
    pub max_pin_retries: u8,
}

pub struct Knobs {
    pub presence: Presence,
    pub counter: CounterMode,
    pub assertion: AssertionMode,
}

/// The transaction the worker is in, for KEEPALIVE and CANCEL.
struct Busy {
    cid: Option<u32>,
    generation: u64,
    cancelled: bool,
}

/// What the worker thread is told.
pub enum Input {
    /// An output report the host wrote on a file of device generation `gen`.
    Packet {
        gen: u64,
        data: Report,
    },
    /// Build the authenticator anew from the store and knobs (a power
    /// cycle when `power_cycle`: CTAPHID channels are reset too).
    Rebuild {
        power_cycle: bool,
        done: mpsc::Sender<()>,
    },
    Shutdown,
}

/// State shared by the FUSE side, the worker and the control socket.
pub struct Shared {
    pub config: KeyConfig,
    knobs: Mutex<Knobs>,
    store: Mutex<Store>,
    pub device: Arc<Device>,
    busy: Mutex<Busy>,
    wake: Condvar,
    shutting_down: AtomicBool,
    pub up_requests: AtomicU64,
    pub keepalives: AtomicU64,
    /// Three wrong PINs in a row: PIN operations refused until power-cycled.
    pub pin_auth_blocked: AtomicBool,
    /// Whether the makeCredential being processed asked for credProtect.
    cred_protect_asked: AtomicBool,
    /// The last getAssertion answer (status byte and body), for `replay`.
    last_assertion: Mutex<Option<Vec<u8>>>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(config: KeyConfig, knobs: Knobs, store: Store, device: Arc<Device>) -> Arc<Self> {
        Arc::new(Shared {
            config,
            knobs: Mutex::new(knobs),
            store: Mutex::new(store),
            device,
            busy: Mutex::new(Busy {
                cid: None,
                generation: 0,
                cancelled: false,
            }),
            wake: Condvar::new(),
            shutting_down: AtomicBool::new(false),
            up_requests: AtomicU64::new(0),
            keepalives: AtomicU64::new(0),
            pin_auth_blocked: AtomicBool::new(false),
            cred_protect_asked: AtomicBool::new(false),
            last_assertion: Mutex::new(None),
        })
    }

    pub fn knobs(&self) -> MutexGuard<'_, Knobs> {
        relock(&self.knobs)
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        relock(&self.store)
    }

    /// Wakes a delayed touch so it notices an unplug, a cancel or shutdown.
    pub fn wake_waiters(&self) {
        let _busy = relock(&self.busy);
        self.wake.notify_all();
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.wake_waiters();
    }

    /// A CTAPHID_CANCEL written by the host: cancels the transaction in
    /// progress when it is on the same channel.
    pub fn cancel(&self, cid: u32) {
        let mut busy = relock(&self.busy);
        if busy.cid == Some(cid) {
            busy.cancelled = true;
            self.wake.notify_all();
        }
    }

    /// Sets the PIN given on the command line, unless the state already has
    /// one (which must then be the same PIN).
    pub fn preset_pin(&self, pin: &str) -> Result<(), String> {
        let hash: [u8; 32] = Sha256::digest(pin.as_bytes()).into();
        let mut store = self.store();
        let state = store.pin_state.get_or_insert_with(PinState::new);
        match &state.pin_hash {
            Some(existing) if existing.verify(&hash) => return Ok(()),
            Some(_) => {
                return Err("the state file already holds a different PIN".into());
            }
            None => {}
        }
        state.pin_hash = Some(SecPinHash::new(hash));
        state.retries = self.config.max_pin_retries;
        state.locked_until = None;
        state.force_pin_change = false;
        store.save()
    }

    /// Waits out a delayed touch, sending KEEPALIVE(UPNEEDED) on the
    /// transaction's channel every 100 ms.
    fn wait_for_touch(&self, delay: Duration) -> Result<(), StatusCode> {
        let deadline = Instant::now() + delay;
        let mut next_keepalive = Instant::now();
        let mut busy = relock(&self.busy);
        loop {
            if busy.cancelled {
                return Err(StatusCode::KeepaliveCancel);
            }
            if self.shutting_down.load(Ordering::SeqCst)
                || self.device.generation() != busy.generation
            {
                // Unplugged: nobody will read the answer.
                return Err(StatusCode::Other);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            if now >= next_keepalive {
                if let Some(cid) = busy.cid {
                    self.device
                        .deliver(busy.generation, &[keepalive(cid, KEEPALIVE_UPNEEDED)]);
                    self.keepalives.fetch_add(1, Ordering::SeqCst);
                }
                next_keepalive = now + KEEPALIVE_INTERVAL;
            }
            let until = next_keepalive.min(deadline);
            busy = self
                .wake
                .wait_timeout(busy, until.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn keepalive(cid: u32, status: u8) -> Report {
    let mut r = [0u8; REPORT_LEN];
    r[..4].copy_from_slice(&cid.to_be_bytes());
    r[4] = Cmd::Keepalive.to_u8_init();
    r[5] = 0;
    r[6] = 1;
    r[7] = status;
    r
}

/// soft-fido2's callbacks: the simulated user and the credential store.
pub struct KeyCallbacks {
    shared: Arc<Shared>,
}

impl KeyCallbacks {
    fn save(&self, store: &Store) -> Result<(), StatusCode> {
        store.save().map_err(|e| {
            eprintln!("mfa-fakekey: {e}");
            StatusCode::Other
        })
    }
}

impl soft_fido2_ctap::callbacks::PlatformCallbacks for KeyCallbacks {
    // A security key's own clock: the real time, as a real key has.
    #[allow(clippy::disallowed_methods)]
    fn get_timestamp_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

impl UserInteractionCallbacks for KeyCallbacks {
    fn request_up(
        &self,
        _info: &str,
        _user_name: Option<&str>,
        _rp_id: &str,
    ) -> Result<UpResult, StatusCode> {
        self.shared.up_requests.fetch_add(1, Ordering::SeqCst);
        let presence = self.shared.knobs().presence;
        let outcome = match presence {
            Presence::Now(o) => o,
            Presence::Delay { ms, then } => {
                self.shared.wait_for_touch(Duration::from_millis(ms))?;
                then
            }
        };
        Ok(match outcome {
            Outcome::Accept => UpResult::Accepted,
            Outcome::Deny => UpResult::Denied,
            Outcome::Timeout => UpResult::Timeout,
        })
    }

    fn request_uv(
        &self,
        _info: &str,
        _user_name: Option<&str>,
        _rp_id: &str,
    ) -> Result<UvResult, StatusCode> {
        // No built-in user verification (no fingerprint reader).
        Ok(UvResult::Denied)
    }

    fn select_credential(&self, _rp_id: &str, _user_names: &[String]) -> Result<usize, StatusCode> {
        Ok(0)
    }
}

impl CredentialStorageCallbacks for KeyCallbacks {
    fn write_credential(&self, credential: &Credential) -> Result<(), StatusCode> {
        let freeze = self.shared.knobs().counter == CounterMode::Freeze;
        let mut store = self.shared.store();
        let mut credential = credential.clone();
        if let Some(slot) = store.credentials.iter_mut().find(|c| c.id == credential.id) {
            if freeze {
                credential.sign_count = slot.sign_count;
            }
            *slot = credential;
        } else {
            // A new credential (see `Dispatch` on credProtect).
            if credential.cred_protect == CRED_PROTECT_UV_REQUIRED
                && !self.shared.cred_protect_asked.load(Ordering::SeqCst)
            {
                credential.cred_protect = CRED_PROTECT_UV_OPTIONAL;
            }
            store.credentials.push(credential);
        }
        self.save(&store)
    }

    fn delete_credential(&self, credential_id: &[u8]) -> Result<(), StatusCode> {
        let mut store = self.shared.store();
        store.credentials.retain(|c| c.id != credential_id);
        self.save(&store)
    }

    fn read_credentials(
        &self,
        rp_id: &str,
        user_id: Option<&[u8]>,
    ) -> Result<Vec<Credential>, StatusCode> {
        let store = self.shared.store();
        Ok(store
            .credentials
            .iter()
            .filter(|c| c.rp_id == rp_id && user_id.is_none_or(|u| c.user_id == u))
            .cloned()
            .collect())
    }

    fn credential_exists(&self, credential_id: &[u8]) -> Result<bool, StatusCode> {
        let store = self.shared.store();
        Ok(store.credentials.iter().any(|c| c.id == credential_id))
    }

    fn get_credential(&self, credential_id: &[u8]) -> Result<Credential, StatusCode> {
        let store = self.shared.store();
        store
            .credentials
            .iter()
            .find(|c| c.id == credential_id)
            .cloned()
            .ok_or(StatusCode::NoCredentials)
    }

    fn update_credential(&self, credential: &Credential) -> Result<(), StatusCode> {
        self.write_credential(credential)
    }

    fn enumerate_rps(&self) -> Result<Vec<(String, Option<String>, usize)>, StatusCode> {
        let store = self.shared.store();
        let mut rps: Vec<(String, Option<String>, usize)> = Vec::new();
        for c in store.credentials.iter().filter(|c| c.discoverable) {
            match rps.iter_mut().find(|(id, _, _)| *id == c.rp_id) {
                Some(rp) => rp.2 += 1,
                None => rps.push((c.rp_id.clone(), c.rp_name.clone(), 1)),
            }
        }
        Ok(rps)
    }

    fn credential_count(&self) -> Result<usize, StatusCode> {
        let store = self.shared.store();
        Ok(store.credentials.iter().filter(|c| c.discoverable).count())
    }
}

/// soft-fido2's PIN state, kept in the store (so retries survive restarts).
struct PinStore {
    shared: Arc<Shared>,
}

impl PinStorageCallbacks for PinStore {
    fn load_pin_state(&self) -> Result<PinState, StatusCode> {
        self.shared
            .store()
            .pin_state
            .clone()
            .ok_or(StatusCode::Other)
    }

    fn save_pin_state(&self, state: &PinState) -> Result<(), StatusCode> {
        let mut store = self.shared.store();
        store.pin_state = Some(state.clone());
        store.save().map_err(|e| {
            eprintln!("mfa-fakekey: {e}");
            StatusCode::Other
        })
    }
}

/// soft-fido2's software keys, limited to the algorithms the key offers
/// (soft-fido2 alone would accept EdDSA even when not configured).
pub struct AlgFilter {
    allowed: Vec<i32>,
    /// For `assertion other-rp`: signatures cover the other RP's hash.
    shared: Arc<Shared>,
}

impl CredentialKeyProvider for AlgFilter {
    fn provider_id(&self) -> CredentialKeyProviderId {
        SoftwareCredentialKeyProvider.provider_id()
    }

    fn supports_algorithm(&self, algorithm: i32) -> bool {
        let wanted = if algorithm == ED25519 {
            EDDSA
        } else {
            algorithm
        };
        self.allowed.contains(&wanted)
            && SoftwareCredentialKeyProvider.supports_algorithm(algorithm)
    }

    fn generate(&self, algorithm: i32) -> Result<GeneratedCredentialKey, CredentialKeyError> {
        if !self.supports_algorithm(algorithm) {
            return Err(CredentialKeyError::UnsupportedAlgorithm);
        }
        SoftwareCredentialKeyProvider.generate(algorithm)
    }

    fn sign(
        &self,
        key: &CredentialKey,
        algorithm: i32,
        message: &[u8],
    ) -> Result<Vec<u8>, CredentialKeyError> {
        // authenticatorData ‖ clientDataHash: the RP ID hash comes first.
        if self.shared.knobs().assertion == AssertionMode::OtherRp && message.len() >= 32 {
            let mut other = message.to_vec();
            other[..32].copy_from_slice(&Sha256::digest(OTHER_RP_ID.as_bytes()));
            return SoftwareCredentialKeyProvider.sign(key, algorithm, &other);
        }
        SoftwareCredentialKeyProvider.sign(key, algorithm, message)
    }
}

type Ctap = CommandDispatcher<KeyCallbacks, AlgFilter>;

fn build_authenticator(shared: &Arc<Shared>) -> Ctap {
    let constant = shared.knobs().counter == CounterMode::Constant;
    let cfg = &shared.config;
    let mut config = AuthenticatorConfig::new()
        .with_aaguid(cfg.aaguid)
        .with_algorithms(cfg.algorithms.clone())
        .with_max_pin_retries(cfg.max_pin_retries)
        .with_constant_sign_count(constant)
        // Every credential is stored, so that its counter can count (soft-fido2
        // reports 0 for ever for a credential it only wraps into its ID).
        .with_force_resident_keys(true)
        .with_options(AuthenticatorOptions {
            plat: false,
            rk: true,
            // Some(_): PIN supported; getInfo reports whether one is set.
            client_pin: Some(false),
            up: true,
            // No built-in UV (no biometrics): the PIN is the only UV.
            uv: None,
            always_uv: false,
            cred_mgmt: true,
            authnr_cfg: false,
            bio_enroll: None,
            ep: None,
            large_blobs: None,
            pin_uv_auth_token: true,
            set_min_pin_length: false,
            make_cred_uv_not_rqd: false,
        });
    config.pin_uv_auth_protocols = cfg.pin_protocols.clone();
    let provider = AlgFilter {
        allowed: cfg.algorithms.clone(),
        shared: shared.clone(),
    };
    let callbacks = KeyCallbacks {
        shared: shared.clone(),
    };
    let authenticator = Authenticator::new_with_key_provider(config, callbacks, provider)
        .with_pin_storage(PinStore {
            shared: shared.clone(),
        });
    CommandDispatcher::new(authenticator)
}

/// authenticatorMakeCredential, authenticatorGetAssertion, authenticatorClientPIN.
const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;
const CLIENT_PIN: u8 = 0x06;
/// clientPIN subcommands.
const GET_PIN_RETRIES: i128 = 0x01;
const CHANGE_PIN: i128 = 0x04;
const GET_PIN_TOKEN: i128 = 0x05;
const GET_PIN_UV_AUTH_TOKEN_USING_PIN: i128 = 0x09;

/// What the fake needs to know of a CTAP request before soft-fido2 runs it.
enum Request {
    MakeCredential {
        cred_protect_asked: bool,
    },
    ClientPin {
        protocol: Option<i128>,
        subcommand: Option<i128>,
    },
    Other,
}

impl Request {
    fn inspect(data: &[u8]) -> Request {
        use soft_fido2_ctap::cbor::{self, Value};
        let Some((&command, params)) = data.split_first() else {
            return Request::Other;
        };
        if command != MAKE_CREDENTIAL && command != CLIENT_PIN {
            return Request::Other;
        }
        let entries = match cbor::decode::<Value>(params) {
            Ok(Value::Map(entries)) => entries,
            _ => Vec::new(), // soft-fido2 will reject it
        };
        let field = |key: i128| {
            entries.iter().find_map(|(k, v)| match k {
                Value::Integer(k) if *k == key => Some(v),
                _ => None,
            })
        };
        let int = |key: i128| match field(key) {
            Some(Value::Integer(v)) => Some(*v),
            _ => None,
        };
        if command == MAKE_CREDENTIAL {
            let cred_protect_asked = match field(0x06) {
                Some(Value::Map(ext)) => ext
                    .iter()
                    .any(|(k, _)| matches!(k, Value::Text(t) if t == "credProtect")),
                _ => false,
            };
            Request::MakeCredential { cred_protect_asked }
        } else {
            Request::ClientPin {
                protocol: int(0x01),
                subcommand: int(0x02),
            }
        }
    }
}

/// CTAPHID CBOR/MSG payloads to soft-fido2, with three corrections that
/// make it behave like a real key where soft-fido2 0.17 does not:
///
/// * PIN/UV auth protocol 1: soft-fido2 takes it in clientPIN whatever its
///   config says, and its protocol 1 is broken (AES-CBC with PKCS#7
///   padding: a conforming client's pinHashEnc fails to decrypt, 0x33,
///   except by chance). The key offers protocol 2 only, so clientPIN
///   naming another protocol gets CTAP1_ERR_INVALID_PARAMETER, always
///   (getPINRetries is let through).
/// * PIN_AUTH_BLOCKED: soft-fido2 answers 0x34 to the third wrong PIN in
///   a row but lets the next right one through; a real key refuses PIN
///   operations until it is power-cycled (`unplug` + `plug` here).
/// * credProtect: soft-fido2 gives a credential made with PIN/UV level 3
///   (userVerificationRequired) when the client asked for none, so a
///   later presence-only assertion finds no credential; CTAP's default,
///   and real keys', is level 1 (userVerificationOptional).
struct Dispatch {
    ctap: Ctap,
    shared: Arc<Shared>,
}

impl Dispatch {
    fn new(shared: &Arc<Shared>) -> Self {
        Dispatch {
            ctap: build_authenticator(shared),
            shared: shared.clone(),
        }
    }

    fn cbor(&mut self, data: &[u8]) -> Vec<u8> {
        let request = Request::inspect(data);
        match request {
            Request::ClientPin {
                protocol: Some(protocol),
                subcommand,
            } if subcommand != Some(GET_PIN_RETRIES)
                && !self
                    .shared
                    .config
                    .pin_protocols
                    .iter()
                    .any(|p| i128::from(*p) == protocol) =>
            {
                return vec![StatusCode::InvalidParameter.to_u8()];
            }
            Request::ClientPin {
                subcommand: Some(CHANGE_PIN | GET_PIN_TOKEN | GET_PIN_UV_AUTH_TOKEN_USING_PIN),
                ..
            } if self.shared.pin_auth_blocked.load(Ordering::SeqCst) => {
                return vec![StatusCode::PinAuthBlocked.to_u8()];
            }
            Request::MakeCredential { cred_protect_asked } => {
                self.shared
                    .cred_protect_asked
                    .store(cred_protect_asked, Ordering::SeqCst);
            }
            _ => {}
        }
        let get_assertion = data.first() == Some(&GET_ASSERTION);
        let mode = self.shared.knobs().assertion;
        if get_assertion && mode == AssertionMode::Replay {
            if let Some(old) = relock(&self.shared.last_assertion).clone() {
                return old;
            }
        }
        match self.ctap.dispatch(data) {
            Ok(body) => {
                let body = match (get_assertion, mode) {
                    (true, AssertionMode::OtherRp) => other_rp(&body).unwrap_or(body),
                    _ => body,
                };
                let mut out = Vec::with_capacity(1 + body.len());
                out.push(0x00);
                out.extend_from_slice(&body);
                if get_assertion {
                    *relock(&self.shared.last_assertion) = Some(out.clone());
                }
                out
            }
            Err(status) => {
                if status == StatusCode::PinAuthBlocked {
                    self.shared.pin_auth_blocked.store(true, Ordering::SeqCst);
                }
                vec![status.to_u8()]
            }
        }
    }
}

/// A getAssertion response body with [`OTHER_RP_ID`]'s hash in its
/// authenticator data (key 0x02), which `AlgFilter::sign` signed.
fn other_rp(body: &[u8]) -> Option<Vec<u8>> {
    use soft_fido2_ctap::cbor::{self, Value};
    let Ok(Value::Map(mut entries)) = cbor::decode::<Value>(body) else {
        return None;
    };
    let auth_data = entries.iter_mut().find_map(|(k, v)| match (k, v) {
        (Value::Integer(2), Value::Bytes(b)) => Some(b),
        _ => None,
    })?;
    if auth_data.len() < 32 {
        return None;
    }
    auth_data[..32].copy_from_slice(&Sha256::digest(OTHER_RP_ID.as_bytes()));
    cbor::encode(&Value::Map(entries)).ok()
}

impl CommandHandler for Dispatch {
    fn handle_command(&mut self, cmd: Cmd, data: &[u8]) -> soft_fido2_transport::Result<Vec<u8>> {
        match cmd {
            Cmd::Cbor => Ok(self.cbor(data)),
            // No U2F (CTAP1) applet: ISO 7816 SW_INS_NOT_SUPPORTED.
            Cmd::Msg => Ok(vec![0x6D, 0x00]),
            _ => Err(soft_fido2_transport::Error::InvalidCommand),
        }
    }
}

/// Starts the worker thread that runs the authenticator.
pub fn spawn_worker(
    shared: Arc<Shared>,
) -> std::io::Result<(mpsc::Sender<Input>, thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Input>();
    let handle = thread::Builder::new()
        .name("ctap".into())
        .spawn(move || worker(shared, rx))?;
    Ok((tx, handle))
}

fn worker(shared: Arc<Shared>, rx: mpsc::Receiver<Input>) {
    let mut hid = CtapHidHandler::new(Dispatch::new(&shared));
    for input in rx {
        match input {
            Input::Packet { gen, data } => {
                if gen != shared.device.generation() {
                    continue; // written before an unplug
                }
                let packet = Packet::from_bytes(data);
                {
                    let mut busy = relock(&shared.busy);
                    busy.cid = Some(packet.cid());
                    busy.generation = gen;
                    busy.cancelled = false;
                }
                let result = hid.process_packet(packet);
                relock(&shared.busy).cid = None;
                match result {
                    Ok(packets) => {
                        let reports: Vec<Report> = packets.iter().map(|p| *p.as_bytes()).collect();
                        shared.device.deliver(gen, &reports);
                    }
                    Err(e) => eprintln!("mfa-fakekey: CTAPHID error: {e:?}"),
                }
            }
            Input::Rebuild { power_cycle, done } => {
                if power_cycle {
                    shared.pin_auth_blocked.store(false, Ordering::SeqCst);
                    hid = CtapHidHandler::new(Dispatch::new(&shared));
                } else {
                    hid.command_handler_mut().ctap = build_authenticator(&shared);
                }
                let _ = done.send(());
            }
            Input::Shutdown => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_grammar() {
        assert_eq!(Presence::parse(&["deny"]), Ok(Presence::Now(Outcome::Deny)));
        assert_eq!(
            Presence::parse(&["delay", "250"]),
            Ok(Presence::Delay {
                ms: 250,
                then: Outcome::Accept
            })
        );
        assert_eq!(
            Presence::parse(&["delay", "10", "timeout"]),
            Ok(Presence::Delay {
                ms: 10,
                then: Outcome::Timeout
            })
        );
        assert!(Presence::parse(&["delay"]).is_err());
        assert!(Presence::parse(&["delay", "x"]).is_err());
        assert!(Presence::parse(&["delay", "99999999999"]).is_err());
        assert!(Presence::parse(&["maybe"]).is_err());
        assert!(Presence::parse(&[]).is_err());
        assert_eq!(
            Presence::parse_str("delay:20:deny"),
            Presence::parse(&["delay", "20", "deny"])
        );
    }

    #[test]
    fn keepalive_report_layout() {
        let r = keepalive(0x0102_0304, KEEPALIVE_UPNEEDED);
        assert_eq!(&r[..8], &[1, 2, 3, 4, 0xBB, 0, 1, 2]);
    }
}
