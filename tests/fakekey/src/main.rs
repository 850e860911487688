//! mfa-fakekey: a software FIDO2 key for tests, served as a FUSE regular
//! file that hidapi's hidraw backend (and so `ctap-hid-fido2` with
//! `HidParam::Path`) opens as if it were /dev/hidrawN.
//!
//! The authenticator is soft-fido2's CTAP2 core (crate `soft-fido2-ctap`)
//! behind soft-fido2-transport's CTAPHID framing. Test-only: soft-fido2 is
//! AGPL-3.0 and this program is never shipped. Needs root and /dev/fuse.
//!
//! # Command line
//!
//! ```text
//! mfa-fakekey --mount DIR [options]
//!
//!   --mount DIR            mount a FUSE filesystem on DIR (created if missing) holding
//!                          DIR/NODE, mode 0600; print `ready DIR/NODE` on stdout once it
//!                          can be opened; run until SIGTERM or SIGINT, then unmount
//!   --node NAME            the node's name (default hidraw0)
//!   --sysfs DIR            also keep DIR/class/hidraw/NODE/{uevent,device/uevent,
//!                          device/report_descriptor} while the key is plugged
//!   --state FILE           credentials (private keys, sign counters) and PIN state
//!                          persist in FILE, JSON, mode 0600 (created if missing);
//!                          without it the key forgets everything at exit
//!   --control SOCKET       listen for control commands on a UNIX socket (below)
//!   --pin PIN              the key has this PIN (4..63 bytes); a state file that
//!                          already holds a PIN must hold this one
//!   --max-pin-retries N    PIN retries before the PIN blocks, 1..8 (default 8)
//!   --alg LIST             algorithms offered, from es256,eddsa (default es256,eddsa)
//!   --presence POLICY      initial user-presence answer, as the control command
//!                          (default accept); `delay:500:deny` = `delay 500 deny`
//!   --counter MODE         initial counter mode: normal, constant, freeze (default normal)
//!   --aaguid HEX           16-byte AAGUID, 32 hex digits (default "mfa-fakekey-test" in ASCII)
//!   --vid HEX, --pid HEX   USB IDs reported by HIDIOCGRAWINFO and sysfs (default 1209:0001)
//!   --product NAME         HID name (HIDIOCGRAWNAME, HID_NAME) (default "mfa-fakekey")
//!   --uid N, --gid N       owner of the node (default: this process's)
//!   --mode OCTAL           permission bits of the node (default 600)
//! ```
//!
//! PIN/UV auth protocol: 2 only (clients must use it, e.g. ctap-hid-fido2's
//! `FidoKeyHid::with_pin_protocol_version(2)`); soft-fido2 0.17's protocol 1
//! does not interoperate, so clientPIN requests naming protocol 1 get
//! CTAP1_ERR_INVALID_PARAMETER (0x02), as from a key without it.
//!
//! Exit status: 0 after a signal, 1 on a runtime error, 2 on a usage error.
//! Nothing secret is printed: the PIN and keys go only to the state file.
//!
//! # Control protocol
//!
//! One command per line on the `--control` socket; each gets one answer line,
//! `ok[ DETAILS]` or `err MESSAGE`, sent once the command has taken effect.
//!
//! ```text
//! presence accept               touches are accepted at once (default)
//! presence deny                 touches are refused: CTAP2_ERR_OPERATION_DENIED (0x27)
//! presence timeout              no touch: CTAP2_ERR_USER_ACTION_TIMEOUT (0x2F) on
//!                               getAssertion (soft-fido2 says 0x27 on makeCredential)
//! presence delay MS [ANSWER]    answer (accept by default) after MS ms, sending
//!                               CTAPHID_KEEPALIVE(UPNEEDED) every 100 ms meanwhile;
//!                               CTAPHID_CANCEL ends the wait with KEEPALIVE_CANCEL (0x2D)
//! counter normal                sign count +1 per assertion, stored
//! counter constant              soft-fido2's constant_sign_count: every assertion reports 0
//! counter freeze                the stored count never advances: every assertion
//!                               reports the same count (stored + 1)
//! counter set N                 set every credential's stored count to N
//! assertion normal              assertions as soft-fido2 makes them (default)
//! assertion replay              getAssertion answers with the last assertion made,
//!                               byte for byte (old challenge and counter, no touch)
//! assertion other-rp            assertions (and any other signature made meanwhile)
//!                               are for RP ID "evil.example": its hash in the
//!                               authenticator data, a valid signature over that
//! unplug                        the node and the sysfs entry vanish; open files fail
//!                               (read EIO, write/ioctl ENODEV, poll POLLERR|POLLHUP),
//!                               a read waiting on them fails with EIO at once
//! plug                          the key comes back, power-cycled (PIN tokens and the
//!                               "3 wrong PINs in a row" block, PIN_AUTH_BLOCKED (0x34),
//!                               cleared; stored state kept)
//! status                        ok plugged=yes|no presence=P counter=M assertion=A pin=set|unset
//!                               pin_retries=N|- pin_auth_blocked=yes|no
//!                               credentials=N up_requests=N
//!                               keepalives=N open=N readers=N
//!                               (open: files open on the node; readers: read()s
//!                               waiting for a report; keepalives: KEEPALIVE sent)
//! ```
//!
//! `counter constant` (and leaving it) and `plug` rebuild the authenticator
//! on its thread, so they answer after a transaction in progress ends.

mod control;
mod device;
mod fs;
mod hid;
mod key;
mod state;
mod sysfs;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};

use crate::control::Controller;
use crate::device::Device;
use crate::fs::{FakeFs, Identity, Ownership};
use crate::key::{
    AssertionMode, CounterMode, Input, KeyConfig, Knobs, Presence, Shared, EDDSA, ES256,
};
use crate::state::Store;
use crate::sysfs::Sysfs;

/// How long shutdown waits for the FUSE session to end once unmounted (it
/// ends at once unless a client still holds the node open; then process
/// exit ends it).
const SESSION_JOIN_LIMIT: Duration = Duration::from_secs(2);

/// How often waiting reads are checked for killed readers.
const REAP_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Parser)]
#[command(
    name = "mfa-fakekey",
    version,
    about = "Test-only software FIDO2 key served as a FUSE hidraw node (see the source's module comment for the control protocol)"
)]
struct Args {
    /// Mount a FUSE filesystem on DIR holding the node.
    #[arg(long, value_name = "DIR")]
    mount: PathBuf,
    /// Name of the node inside DIR.
    #[arg(long, value_name = "NAME", default_value = "hidraw0", value_parser = parse_node)]
    node: String,
    /// Keep a fake sysfs tree under DIR (class/hidraw/NODE/...).
    #[arg(long, value_name = "DIR")]
    sysfs: Option<PathBuf>,
    /// Persist credentials, counters and PIN state in FILE.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Serve control commands on this UNIX socket.
    #[arg(long, value_name = "SOCKET")]
    control: Option<PathBuf>,
    /// The key's PIN.
    #[arg(long, value_name = "PIN", value_parser = parse_pin)]
    pin: Option<String>,
    /// PIN retries before the PIN blocks (1..8).
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    max_pin_retries: u8,
    /// Algorithms offered, comma-separated (es256, eddsa).
    #[arg(long, value_name = "LIST", default_value = "es256,eddsa", value_parser = parse_algs)]
    alg: Algorithms,
    /// Initial presence answer: accept, deny, timeout, delay:MS[:ANSWER].
    #[arg(long, value_name = "POLICY", default_value = "accept", value_parser = parse_presence)]
    presence: Presence,
    /// Initial counter mode: normal, constant, freeze.
    #[arg(long, value_name = "MODE", default_value = "normal", value_parser = parse_counter)]
    counter: CounterMode,
    /// AAGUID, 32 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_aaguid)]
    aaguid: Option<Aaguid>,
    /// USB vendor ID (hex).
    #[arg(long, value_name = "HEX", default_value = "1209", value_parser = parse_hex16)]
    vid: u16,
    /// USB product ID (hex).
    #[arg(long, value_name = "HEX", default_value = "0001", value_parser = parse_hex16)]
    pid: u16,
    /// HID device name.
    #[arg(long, value_name = "NAME", default_value = "mfa-fakekey")]
    product: String,
    /// Owner of the node.
    #[arg(long, value_name = "N")]
    uid: Option<u32>,
    /// Group of the node.
    #[arg(long, value_name = "N")]
    gid: Option<u32>,
    /// Permission bits of the node, octal.
    #[arg(long, value_name = "OCTAL", default_value = "600", value_parser = parse_mode)]
    mode: u16,
}

#[derive(Clone)]
struct Algorithms(Vec<i32>);
#[derive(Clone)]
struct Aaguid([u8; 16]);

fn parse_node(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return Err("a plain file name is needed".into());
    }
    Ok(s.to_string())
}

fn parse_pin(s: &str) -> Result<String, String> {
    // CTAP2: at least 4 code points, at most 63 bytes of UTF-8.
    if s.chars().count() < 4 || s.len() > 63 {
        return Err("a PIN has 4 to 63 bytes (at least 4 characters)".into());
    }
    Ok(s.to_string())
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|w| !w.is_empty())
}

fn parse_algs(s: &str) -> Result<Algorithms, String> {
    let mut out = Vec::new();
    for w in list(s) {
        let a = match w.to_ascii_lowercase().as_str() {
            "es256" => ES256,
            "eddsa" | "ed25519" => EDDSA,
            other => return Err(format!("unknown algorithm {other:?} (es256 or eddsa)")),
        };
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err("at least one algorithm is needed".into());
    }
    Ok(Algorithms(out))
}

fn parse_presence(s: &str) -> Result<Presence, String> {
    Presence::parse_str(s)
}

fn parse_counter(s: &str) -> Result<CounterMode, String> {
    CounterMode::parse(s)
}

fn parse_aaguid(s: &str) -> Result<Aaguid, String> {
    let bytes = hex::decode(s.replace('-', "")).map_err(|e| format!("not hex: {e}"))?;
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| "an AAGUID has 16 bytes (32 hex digits)".to_string())?;
    Ok(Aaguid(arr))
}

fn parse_hex16(s: &str) -> Result<u16, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u16::from_str_radix(digits, 16).map_err(|_| format!("{s:?} is not a 16-bit hex number"))
}

fn parse_mode(s: &str) -> Result<u16, String> {
    let mode = u16::from_str_radix(s, 8).map_err(|_| format!("{s:?} is not an octal mode"))?;
    if mode > 0o7777 {
        return Err(format!("mode {s} is out of range"));
    }
    Ok(mode)
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("mfa-fakekey: {e}");
        std::process::exit(1);
    }
}

/// Creates the mount point, first detaching a dead FUSE mount left there
/// by a killed instance ("Transport endpoint is not connected").
fn prepare_mountpoint(dir: &Path) -> Result<PathBuf, String> {
    if let Err(e) = std::fs::metadata(dir) {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| format!("cannot detach the dead mount on {}: {e}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    dir.canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))
}

fn run(args: Args) -> Result<(), String> {
    // Block the stop signals before any thread starts, so that every thread
    // inherits the mask and only the sigwait below receives them.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;

    let mount = prepare_mountpoint(&args.mount)?;
    let store = match &args.state {
        Some(path) => Store::open(path)?,
        None => Store::ephemeral(),
    };
    let config = KeyConfig {
        aaguid: args.aaguid.map(|a| a.0).unwrap_or(*b"mfa-fakekey-test"),
        algorithms: args.alg.0,
        pin_protocols: vec![2],
        max_pin_retries: args.max_pin_retries,
    };
    let knobs = Knobs {
        presence: args.presence,
        counter: args.counter,
        assertion: AssertionMode::Normal,
    };
    let device = Arc::new(Device::new());
    let shared = Shared::new(config, knobs, store, device);
    if let Some(pin) = &args.pin {
        shared.preset_pin(pin)?;
    }
    let (input, worker) = key::spawn_worker(shared.clone())
        .map_err(|e| format!("cannot start the authenticator thread: {e}"))?;

    let identity = Identity {
        vendor: args.vid,
        product: args.pid,
        name: args.product.clone(),
        phys: format!("mfa-fakekey/{}", args.node),
        uniq: String::new(),
    };
    let owner = Ownership {
        uid: args.uid.unwrap_or_else(|| nix::unistd::geteuid().as_raw()),
        gid: args.gid.unwrap_or_else(|| nix::unistd::getegid().as_raw()),
        mode: args.mode,
    };
    let filesystem = FakeFs::new(
        shared.clone(),
        input.clone(),
        args.node.clone(),
        identity.clone(),
        owner,
    );
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = vec![
        fuser::MountOption::FSName("mfa-fakekey".into()),
        fuser::MountOption::Subtype("mfa-fakekey".into()),
        // The kernel checks the node's mode and owner, as for /dev/hidrawN.
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
    ];
    // allow_other: users other than root may open it if its mode says so.
    fuse_config.acl = fuser::SessionACL::All;
    let session = fuser::spawn_mount(filesystem, &mount, &fuse_config)
        .map_err(|e| format!("cannot mount on {}: {e}", mount.display()))?;

    // Housekeeping: a read whose thread was killed must not wait for ever
    // (see Device::reap_killed_readers).
    {
        let device = shared.device.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || loop {
                std::thread::sleep(REAP_INTERVAL);
                device.reap_killed_readers();
            })
            .map_err(|e| format!("cannot start the reaper thread: {e}"))?;
    }

    let sysfs = args
        .sysfs
        .as_deref()
        .map(|root| Sysfs::new(root, &args.node));
    if let Some(s) = &sysfs {
        s.create(&identity)?;
    }
    let controller = Arc::new(Controller::new(
        shared.clone(),
        input.clone(),
        sysfs,
        identity,
    ));
    if let Some(path) = &args.control {
        control::serve(path, controller.clone())?;
    }

    // The node is served once a stat of it goes through the FUSE session.
    let node = mount.join(&args.node);
    std::fs::metadata(&node).map_err(|e| format!("{} is not there: {e}", node.display()))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready {}", node.display());
        let _ = out.flush();
    }

    stop.wait()
        .map_err(|e| format!("cannot wait for signals: {e}"))?;

    // Shutdown: the key goes away (reads in progress fail), then the mount.
    controller.shutdown();
    shared.begin_shutdown();
    let _ = input.send(Input::Shutdown);
    let _ = worker.join();
    if let Some(path) = &args.control {
        let _ = std::fs::remove_file(path);
    }
    nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("cannot unmount {}: {e}", mount.display()))?;
    let (joined, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = session.join();
        let _ = joined.send(());
    });
    let _ = wait.recv_timeout(SESSION_JOIN_LIMIT);
    Ok(())
}
