//! The command line. Everything clap can check is checked here, before any
//! call to mfad; `validate` adds the checks that span several options.

use crate::error::{Error, EXIT_CODES_HELP};
use crate::kinds::{self, Algorithm, ImportFormat, Kind, UserSort};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "mfactl",
    version,
    about = "Manage second factors for pam_mfa: enrol your own, or administer users'",
    long_about = "Manage second factors for pam_mfa.\n\n\
        Any user can enrol, list and remove their own TOTP and HOTP factors. \
        Root and members of mfad's admin group can also list users, inspect \
        a user's factors and reset a user.\n\n\
        mfactl holds no secrets and decides nothing: every command is one or \
        two calls to mfad over the D-Bus system bus, which identifies the \
        caller by uid.",
    after_help = EXIT_CODES_HELP,
)]
pub struct Cli {
    /// D-Bus address of the bus where mfad runs
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        env = "DBUS_SYSTEM_BUS_ADDRESS",
        default_value = mfa_dbus::SYSTEM_BUS_ADDRESS,
    )]
    pub bus_address: String,

    /// Print JSON instead of text (errors still go to stderr as text)
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// `Debug` by hand below: a code or a secret given on the command line is
/// never printed.
#[derive(Subcommand)]
pub enum Command {
    /// Register a new TOTP, HOTP or security-key factor for yourself
    #[command(
        visible_alias = "enroll",
        long_about = "Register a new TOTP, HOTP or security-key factor for yourself.\n\n\
            mfad creates the factor and sends its secret once. mfactl shows it \
            as a QR code, an otpauth:// URI and a grouped base32 secret, then \
            asks for a code from your authenticator app to confirm it. Until \
            it is confirmed the factor is pending: it is not used at login and \
            is dropped after the time mfad allows. A pending factor can be \
            confirmed later with `mfactl confirm ID`.\n\n\
            Where the code comes from: --code if given; else a prompt when \
            stdin is a terminal (up to three tries; an empty answer keeps the \
            enrolment pending); else one line read from stdin.\n\n\
            With --json two JSON objects are printed, one per line: \
            {\"offer\": …} as soon as mfad answers (it holds the secret), \
            then {\"factor\": …} once confirmed.\n\n\
            fido2: a USB security key plugged into this machine. mfad makes a \
            credential on it; touch the key when asked. --pin asks for the \
            key's PIN (--pin-stdin reads it), --verification makes every login \
            with the key ask for the PIN too."
    )]
    Enrol(EnrolArgs),

    /// Confirm a pending enrolment with a code from your authenticator
    #[command(
        long_about = "Confirm a pending enrolment with a code from your authenticator.\n\n\
        Without CODE, mfactl prompts for it when stdin is a terminal (up to \
        three tries), else reads one line from stdin."
    )]
    Confirm {
        /// Id of the pending factor, as printed by `mfactl enrol` or `mfactl list`
        id: String,
        /// The current code shown by your authenticator app
        code: Option<String>,
    },

    /// List your own factors, active and pending
    #[command(long_about = "List your own factors, active and pending.\n\n\
        Times are local (TZ, else /etc/localtime), with the zone. LAST USED is \
        the last successful login with the factor.")]
    List,

    /// Make a new batch of one-time recovery codes for a lost device
    #[command(
        name = "recovery-codes",
        long_about = "Make a new batch of one-time recovery codes.\n\n\
        Each code lets you log in once in place of a code from your \
        authenticator, for when the device is lost. They are shown this once: \
        keep them somewhere safe, off the device. mfad keeps only salted \
        hashes. A new batch replaces the previous one."
    )]
    RecoveryCodes,

    /// Remove one of your own factors
    #[command(long_about = "Remove one of your own factors.\n\n\
        Removing your last active factor may lock you out of logins that \
        require a second factor, so mfactl asks first (on a terminal) or \
        wants --yes (otherwise).")]
    Remove {
        /// Id of the factor, as shown by `mfactl list`
        id: String,
        /// Do not ask, even when this is your last active factor
        #[arg(long, short = 'y')]
        yes: bool,
    },

    /// Admin: list every user that has a factor
    #[command(
        long_about = "Admin: list every user that has a factor, active or pending.\n\n\
        MFA shows the kinds of the user's active factors (\"totp,hotp\") or \
        \"none\" when only pending ones exist. Needs root or mfad's admin group."
    )]
    Users {
        /// Order of the rows
        #[arg(long, value_enum, default_value_t = UserSort::User)]
        sort: UserSort,
    },

    /// Admin: list one user's factors
    #[command(long_about = "Admin: list one user's factors, active and pending.\n\n\
        Needs root or mfad's admin group.")]
    User {
        /// Login name of the user
        user: String,
    },

    /// Admin: remove all factors of a user
    #[command(
        long_about = "Admin: remove all factors of a user, active and pending.\n\n\
        The user can enrol again afterwards (a new device, a lost phone). \
        mfactl asks for confirmation on a terminal unless --yes is given; \
        without a terminal it refuses unless --yes is given. Needs root or \
        mfad's admin group."
    )]
    Reset {
        /// Login name of the user
        user: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },

    /// Admin: end a user's lockout after too many failed codes
    #[command(
        long_about = "Admin: end a user's lockout and clear their count of failed codes.\n\n\
        mfad locks a user out after [lockout].max_failures failed codes in a row \
        (see mfad.toml(5)); the lockout ends by itself after [lockout].unlock_after \
        seconds, or now with this command. Needs root or mfad's admin group."
    )]
    Unlock {
        /// Login name of the user
        user: String,
    },

    /// Ask this factor first at login
    #[command(long_about = "Ask this factor first at login.\n\n\
        With several factors, login asks for a code of the preferred one; an \
        empty answer lists the others to choose from. Without a choice, the \
        oldest factor is asked first.")]
    Prefer {
        /// Id of one of your active factors (see `mfactl list`)
        id: String,
    },

    /// Show or choose when you are asked for a second factor
    #[command(
        long_about = "Show or choose when you are asked for a second factor.\n\n\
        privileged: only by privileged services (sudo, su, pkexec);\n\
        appropriate: at every login, except from a bypass network or a \
        trusted device (the default);\n\
        always: at every login, nothing bypasses.\n\n\
        The policy may not allow the lower levels (mfad.toml(5): min_level). \
        Without LEVEL, shows the level in force. `default` drops your choice."
    )]
    Level {
        /// privileged, appropriate, always or default
        #[arg(value_parser = ["privileged", "appropriate", "always", "default"])]
        level: Option<String>,
    },

    /// List or revoke trusted devices
    #[command(long_about = "List or revoke trusted devices.\n\n\
        After a right code, mfad may remember the device for [devices] \
        remember_days (mfad.toml(5)); logins from it then skip the code. \
        Over SSH a device is the public key that passed the first step, else \
        the client address. --user (admin) acts on another user's devices.")]
    Devices {
        /// Admin: another user's devices
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        #[command(subcommand)]
        action: Option<DevicesAction>,
    },

    /// Bring a factor back in step from two consecutive codes
    #[command(
        long_about = "Bring a factor back in step from two consecutive codes.\n\n\
        HOTP: for a token pressed many times without logging in, mfad looks \
        up to 1000 codes ahead of the last one used. TOTP: for a phone whose \
        clock is off, mfad looks [totp].max_drift periods either way and \
        records the drift it finds, replacing the one learned at login. \
        Type two codes in a row from the authenticator. --user (admin) acts \
        on another user's factor."
    )]
    Resync {
        /// Admin: another user's factor
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Id of the factor (see `mfactl list`)
        id: String,
        /// A code from the authenticator
        first: String,
        /// The code right after it
        second: String,
    },

    /// Admin: approve a user's factor for privileged services
    #[command(
        long_about = "Admin: approve a user's factor for privileged services.\n\n\
        Where a rule sets elevation_approval, sudo, su and the other \
        privileged services accept only approved factors. --revoke withdraws \
        the approval. Needs root or mfad's admin group."
    )]
    Approve {
        /// Login name of the user
        user: String,
        /// Id of the factor (see `mfactl user USER`)
        id: String,
        /// Withdraw the approval
        #[arg(long)]
        revoke: bool,
    },

    /// Admin: send a user's e-mail codes to this address
    #[command(long_about = "Admin: send a user's e-mail codes to ADDRESS.\n\n\
        The address is taken as it is (no code confirms it: you vouch for it) \
        and replaces the user's e-mail factor if they have one. Users register \
        an address themselves with `mfactl enrol email --address A`, confirmed \
        by a code sent to it; where mfad.toml's [email] address makes one from \
        the login name, only an admin sets another. Needs root or mfad's admin \
        group.")]
    SetEmail {
        /// Login name of the user
        user: String,
        /// Where their codes go, e.g. alice@example.org
        address: String,
    },

    /// Print the shell completion script for bash, zsh or fish
    #[command(long_about = "Print the shell completion script for bash, zsh or \
        fish, generated from this command line's own definition. Packages \
        install it (bash: /usr/share/bash-completion/completions/mfactl; zsh: \
        /usr/share/zsh/vendor-completions/_mfactl; fish: \
        /usr/share/fish/vendor_completions.d/mfactl.fish); by hand: \
        `mfactl completions bash > ~/.local/share/bash-completion/completions/mfactl`.")]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: CompletionShell,
    },

    /// Set up the factor an admin invited you to set up
    #[command(long_about = "Set up the factor an admin invited you to set up \
        (mfactl enrol KIND --user YOU --invite): its QR code and secret are shown \
        to you, then a code from your app or token confirms it, as with mfactl \
        enrol. Your next login would show the same.")]
    Invitation {
        /// Confirm with this code instead of asking for one
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
        /// Do not draw the QR code
        #[arg(long)]
        no_qr: bool,
    },

    /// Show a TOTP or HOTP factor's check value: its code for counter 0
    #[command(long_about = "Show a TOTP or HOTP factor's check value: its code for \
        counter 0 (TOTP: for time 0), as Google Authenticator's \"check key \
        value\" showed it. A token or app holds the right secret when it (or \
        oathtool with the secret) makes the same code; no real code is spent, \
        and the check value never logs in. Your own factor, or --user's (an \
        admin).")]
    CheckValue {
        /// The factor's id (mfactl list)
        id: String,
        /// Admin: a factor of this user
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },

    /// Bring factors over from another tool's file (google-authenticator, pam_u2f)
    #[command(long_about = "Bring factors over from another tool's file.\n\n\
        google-authenticator: a ~/.google_authenticator file, whole: its TOTP \
        or HOTP factor where it stands (HOTP_COUNTER, the steps DISALLOW_REUSE \
        lists as used, STEP_SIZE) and its scratch codes, which become recovery \
        codes, each usable once. RATE_LIMIT and WINDOW_SIZE are reported, not \
        carried over (mfad's [lockout], [totp] skew and [hotp] window apply). \
        Run as a user, FILE is your own; an admin names the user with --user, \
        or gives --all and no FILE to import every user's \
        ~/.google_authenticator (from their home directory in the user \
        database): all of them or, if one file is damaged, none. The file is \
        read, never changed or removed; keep it until the new factor works.\n\n\
        pam-u2f: an authfile as pamu2fcfg writes it (~/.config/Yubico/u2f_keys, \
        or a central authfile): new and old formats, resident keys (*), \
        +presence/+pin/+verification. Run as a user, FILE holds your own keys; \
        --user (a name) or --all imports an admin's central file for that user \
        or for every user it names. Every line is imported or none is: a bad \
        line is named and nothing changes. Keys already there are left alone, \
        so importing twice is harmless. --dry-run shows what would be added. \
        The file itself is never changed. --origin and --appid are pam_u2f's \
        origin= and appid= (default: mfad's [fido2] rp_id).")]
    Import(ImportArgs),

    /// Admin: explain or check the policy
    #[command(subcommand)]
    Policy(PolicyCommand),

    /// Admin: move this host's store to PostgreSQL
    #[command(subcommand)]
    Store(StoreCommand),

    /// Admin: recorded login decisions and changes, with their reasons
    #[command(
        long_about = "Admin: recorded login decisions and changes, with their reasons.\n\n\
        Each login shows its outcome (allow, deny, retry, start, cancel) and \
        why: wrong-code, replayed codes are wrong codes, locked, max-tries, \
        bypass:RULE, trusted-device, not-required, level-privileged-only, \
        exempt, not-enrolled, not-approved, encourage-declined, \
        enrolled-at-login. Changes show the action (enrol, confirm, remove, \
        reset, unlock, approve, level, revoke-devices, …) and by_uid. No code \
        or secret is ever recorded. Times are local (TZ, else /etc/localtime), \
        with the zone; --json gives them in UTC."
    )]
    Audit {
        /// Only this user
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// From this time: YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] (local time),
        /// YYYY-MM-DDTHH:MM:SSZ (or +01:00), or an age such as 30m, 12h, 7d
        #[arg(long, value_name = "T", value_parser = crate::dates::parse_since)]
        since: Option<u64>,
        /// At most this many (the latest)
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The format of FILE
    #[arg(value_enum)]
    pub format: ImportFormat,
    /// The file to import (not with google-authenticator --all)
    #[arg(required_unless_present = "all")]
    pub file: Option<PathBuf>,
    /// Admin: import this user's lines of FILE (google-authenticator: FILE is
    /// this user's)
    #[arg(long, value_name = "USER", conflicts_with = "all")]
    pub user: Option<String>,
    /// Admin: import the lines of every user FILE names (google-authenticator:
    /// every user's ~/.google_authenticator, without FILE)
    #[arg(long)]
    pub all: bool,
    /// Show what would be imported; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// pam-u2f: the origin= the keys were registered with
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// pam-u2f: the appid= of old-format lines
    #[arg(long, value_name = "APPID")]
    pub appid: Option<String>,
}

/// The shells `mfactl completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    pub fn generator(self) -> clap_complete::Shell {
        match self {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DevicesAction {
    /// List trusted devices (the default)
    List,
    /// Forget one device by id, or all with --all
    Revoke {
        /// Id of the device (see `mfactl devices`)
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Forget every trusted device
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy this host's store into an empty PostgreSQL database
    #[command(
        long_about = "Admin: copy this host's store into an empty PostgreSQL database.\n\n\
        mfad reads the [store] section of FILE (default: the mfad.toml it runs \
        with, read again), connects to that database, creates its schema and \
        copies every factor, counter, recovery code, lockout, setting and \
        trusted device into it, sealed with this host's key, in one \
        transaction. A database that holds anything already is refused. \
        Logins wait while it copies; from then on this mfad refuses every \
        login until it is restarted with that [store], and its SQLite file \
        is kept but never used again (mfa.sqlite.moved says where it went). \
        --dry-run checks both stores and counts what would be copied. Every \
        other host of the fleet needs this host's secret.key."
    )]
    Migrate {
        /// An mfad.toml naming the database in [store]
        file: Option<PathBuf>,
        /// Check and count; copy nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// What a login of USER would meet, and why
    #[command(long_about = "Admin: what a login of USER would meet, and why.\n\n\
        Shows the rules that apply, the one that decides, the user's level, \
        factors, bypass and trusted devices, and the outcome: skip (not \
        asked), ask, offer (encourage), enrol (force) or refuse. Uses the \
        policy mfad runs with and the user's factors now.")]
    Explain {
        /// Login name of the user
        user: String,
        /// PAM service of the login
        #[arg(long, default_value = "sshd")]
        service: String,
        /// Client address (PAM_RHOST)
        #[arg(long, value_name = "ADDR", default_value = "")]
        from: String,
        /// Public key line the SSH login passed with ("ssh-ed25519 AAAA…")
        #[arg(long, value_name = "KEY")]
        ssh_key: Option<String>,
    },
    /// Put the policy of mfad.toml in force without a restart
    #[command(
        long_about = "Admin: put the policy of mfad.toml in force without a restart.\n\n\
        mfad reads its config file again; [policy], [[policy.group]], [bypass] \
        and [devices] apply to the logins that start from now on. A file with \
        an error changes nothing (the error names its line and key). Other \
        sections need a restart; mfactl says which changed. `systemctl \
        reload mfad` (SIGHUP) does the same."
    )]
    Reload,
    /// Check an mfad.toml before using it
    #[command(long_about = "Admin: check an mfad.toml before using it.\n\n\
        mfad parses FILE (default /etc/mfa/mfad.toml) and checks that root \
        and the members of the admin group could still log in under its \
        policy, with the factors they have now. Exits 1 on any error.")]
    Check {
        /// The file to check
        #[arg(default_value = "/etc/mfa/mfad.toml")]
        file: PathBuf,
    },
}

/// `Debug` by hand below: `--secret` and `--code` are never printed.
#[derive(Args)]
#[command(group(ArgGroup::new("secret_source").args(["secret", "secret_file", "secret_stdin"])))]
pub struct EnrolArgs {
    /// Kind of factor: time-based (totp), counter-based (hotp), a security
    /// key (fido2) or codes by e-mail (email)
    #[arg(value_enum)]
    pub kind: Kind,

    /// A name for this factor, e.g. the device it lives on (default: mfad's)
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,

    /// HMAC algorithm (default: mfad's, usually SHA1, which every app supports)
    #[arg(long, value_enum, ignore_case = true, value_name = "ALG")]
    pub algorithm: Option<Algorithm>,

    /// Number of digits in a code, 6 to 8 (default: mfad's)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(6..=8))]
    pub digits: Option<u32>,

    /// TOTP only: seconds each code is valid (default: mfad's, usually 30)
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub period: Option<u32>,

    /// Import this base32 secret instead of letting mfad generate one
    /// (visible to other users in the process list: prefer --secret-file)
    #[arg(long, value_name = "BASE32")]
    pub secret: Option<String>,

    /// Import the base32 secret on the first non-empty line of this file
    /// (a ~/.google_authenticator file works)
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,

    /// Import the base32 secret read from the first line of stdin
    #[arg(long)]
    pub secret_stdin: bool,

    /// Confirm with this code instead of asking for one
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,

    /// Do not draw the QR code
    #[arg(long)]
    pub no_qr: bool,

    /// Show only the secret and its parameters: no QR code, no URI
    #[arg(long)]
    pub show_secret_only: bool,

    /// fido2: ask for the security key's PIN on the terminal
    #[arg(long, conflicts_with = "pin_stdin")]
    pub pin: bool,

    /// fido2: read the security key's PIN from the first line of stdin
    #[arg(long)]
    pub pin_stdin: bool,

    /// fido2: every login with this key asks for its PIN too (needs a PIN)
    #[arg(long)]
    pub verification: bool,

    /// Admin: set the factor up for this user, active at once: its secret
    /// is shown this once, to hand over (totp and hotp)
    #[arg(long, value_name = "USER", conflicts_with_all = ["code", "pin", "pin_stdin", "verification", "address"])]
    pub user: Option<String>,

    /// Admin, with --user: invite the user instead; the factor waits for
    /// them (7 days) to set it up at their next login or with `mfactl
    /// invitation`, and its secret is shown to no one else
    #[arg(long, requires = "user")]
    pub invite: bool,

    /// email: the address codes go to (where mfad.toml does not make it
    /// from the login name); a code sent there confirms it
    #[arg(long, value_name = "ADDRESS")]
    pub address: Option<String>,
}

/// What `Debug` shows of a code or secret: whether there is one.
fn redacted(value: &Option<String>) -> Option<&'static str> {
    value.as_ref().map(|_| "<redacted>")
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Enrol(args) => f.debug_tuple("Enrol").field(args).finish(),
            Command::Confirm { id, code } => f
                .debug_struct("Confirm")
                .field("id", id)
                .field("code", &redacted(code))
                .finish(),
            Command::List => f.write_str("List"),
            Command::RecoveryCodes => f.write_str("RecoveryCodes"),
            Command::Remove { id, yes } => f
                .debug_struct("Remove")
                .field("id", id)
                .field("yes", yes)
                .finish(),
            Command::Users { sort } => f.debug_struct("Users").field("sort", sort).finish(),
            Command::User { user } => f.debug_struct("User").field("user", user).finish(),
            Command::Reset { user, yes } => f
                .debug_struct("Reset")
                .field("user", user)
                .field("yes", yes)
                .finish(),
            Command::Unlock { user } => f.debug_struct("Unlock").field("user", user).finish(),
            Command::Prefer { id } => f.debug_struct("Prefer").field("id", id).finish(),
            Command::Level { level } => f.debug_struct("Level").field("level", level).finish(),
            Command::Devices { user, action } => f
                .debug_struct("Devices")
                .field("user", user)
                .field("action", action)
                .finish(),
            Command::Resync { user, id, .. } => f
                .debug_struct("Resync")
                .field("user", user)
                .field("id", id)
                .field("first", &"<redacted>")
                .field("second", &"<redacted>")
                .finish(),
            Command::Approve { user, id, revoke } => f
                .debug_struct("Approve")
                .field("user", user)
                .field("id", id)
                .field("revoke", revoke)
                .finish(),
            Command::Completions { shell } => {
                f.debug_struct("Completions").field("shell", shell).finish()
            }
            Command::Invitation { no_qr, .. } => f
                .debug_struct("Invitation")
                .field("no_qr", no_qr)
                .finish_non_exhaustive(),
            Command::CheckValue { id, user } => f
                .debug_struct("CheckValue")
                .field("id", id)
                .field("user", user)
                .finish(),
            Command::SetEmail { user, address } => f
                .debug_struct("SetEmail")
                .field("user", user)
                .field("address", address)
                .finish(),
            Command::Import(args) => f.debug_tuple("Import").field(args).finish(),
            Command::Policy(command) => f.debug_tuple("Policy").field(command).finish(),
            Command::Store(command) => f.debug_tuple("Store").field(command).finish(),
            Command::Audit { user, since, limit } => f
                .debug_struct("Audit")
                .field("user", user)
                .field("since", since)
                .field("limit", limit)
                .finish(),
        }
    }
}

impl fmt::Debug for EnrolArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrolArgs")
            .field("kind", &self.kind)
            .field("label", &self.label)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("secret", &redacted(&self.secret))
            .field("secret_file", &self.secret_file)
            .field("secret_stdin", &self.secret_stdin)
            .field("code", &redacted(&self.code))
            .field("no_qr", &self.no_qr)
            .field("show_secret_only", &self.show_secret_only)
            .field("pin", &self.pin)
            .field("pin_stdin", &self.pin_stdin)
            .field("verification", &self.verification)
            .field("address", &self.address)
            .field("user", &self.user)
            .field("invite", &self.invite)
            .finish()
    }
}

impl EnrolArgs {
    /// Checks clap cannot express.
    pub fn validate(&self) -> Result<(), Error> {
        let otp_options = self.algorithm.is_some()
            || self.digits.is_some()
            || self.period.is_some()
            || self.secret.is_some()
            || self.secret_file.is_some()
            || self.secret_stdin
            || self.code.is_some();
        if self.kind == Kind::Fido2 && otp_options {
            return Err(Error::Usage(
                "--algorithm, --digits, --period, --secret* and --code are for codes, not for a security key".to_string(),
            ));
        }
        let authenticator_options = self.algorithm.is_some()
            || self.digits.is_some()
            || self.period.is_some()
            || self.secret.is_some()
            || self.secret_file.is_some()
            || self.secret_stdin
            || self.no_qr
            || self.show_secret_only;
        if self.kind == Kind::Email && authenticator_options {
            return Err(Error::Usage(
                "--algorithm, --digits, --period, --secret*, --no-qr and --show-secret-only are for authenticator apps, not for e-mail".to_string(),
            ));
        }
        if self.kind != Kind::Email && self.address.is_some() {
            return Err(Error::Usage("--address is for email factors".to_string()));
        }
        let key_options = self.pin || self.pin_stdin || self.verification;
        if self.kind != Kind::Fido2 && key_options {
            return Err(Error::Usage(
                "--pin, --pin-stdin and --verification are for fido2 security keys".to_string(),
            ));
        }
        if self.verification && !(self.pin || self.pin_stdin) {
            return Err(Error::Usage(
                "--verification needs the key's PIN: add --pin (or --pin-stdin)".to_string(),
            ));
        }
        if self.kind == Kind::Hotp && self.period.is_some() {
            return Err(Error::Usage(
                "--period applies to TOTP only; HOTP codes do not expire".to_string(),
            ));
        }
        if let Some(code) = &self.code {
            kinds::normalise_code(code).map_err(Error::Usage)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mfactl").chain(args.iter().copied()))
    }

    fn enrol(args: &[&str]) -> EnrolArgs {
        match parse(args).expect("parses").command {
            Command::Enrol(e) => e,
            other => panic!("not enrol: {other:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn enrol_options_parse() {
        let e = enrol(&[
            "enrol",
            "totp",
            "--label",
            "phone",
            "--algorithm",
            "sha256",
            "--digits",
            "8",
        ]);
        assert_eq!(e.kind, Kind::Totp);
        assert_eq!(e.label.as_deref(), Some("phone"));
        assert_eq!(e.algorithm, Some(Algorithm::Sha256));
        assert_eq!(e.digits, Some(8));
        assert!(e.validate().is_ok());
        assert_eq!(enrol(&["enroll", "hotp"]).kind, Kind::Hotp);
    }

    #[test]
    fn digits_out_of_range_are_rejected_locally() {
        for bad in ["5", "9", "x"] {
            let err = parse(&["enrol", "totp", "--digits", bad]).expect_err("rejected");
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn zero_period_and_unknown_algorithm_are_rejected() {
        let err = parse(&["enrol", "totp", "--period", "0"]).expect_err("rejected");
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        let err = parse(&["enrol", "totp", "--algorithm", "MD5"]).expect_err("rejected");
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn one_secret_source_at_most() {
        let err =
            parse(&["enrol", "totp", "--secret", "AAAA", "--secret-stdin"]).expect_err("conflict");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn period_with_hotp_is_a_usage_error() {
        let e = enrol(&["enrol", "hotp", "--period", "30"]);
        assert!(matches!(e.validate(), Err(Error::Usage(m)) if m.contains("TOTP only")));
    }

    #[test]
    fn malformed_code_is_a_usage_error() {
        let e = enrol(&["enrol", "totp", "--code", "12ab56"]);
        assert!(matches!(e.validate(), Err(Error::Usage(_))));
        let e = enrol(&["enrol", "totp", "--code", "123 456"]);
        assert!(e.validate().is_ok());
    }

    #[test]
    fn global_options_anywhere() {
        let cli =
            parse(&["list", "--json", "--bus-address", "unix:path=/tmp/bus"]).expect("parses");
        assert!(cli.json);
        assert_eq!(cli.bus_address, "unix:path=/tmp/bus");
        assert!(matches!(cli.command, Command::List));
    }

    #[test]
    fn admin_commands_parse() {
        let cli = parse(&["users", "--sort", "last-used"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Users {
                sort: UserSort::LastUsed
            }
        ));
        let cli = parse(&["reset", "bob", "--yes"]).expect("parses");
        assert!(matches!(cli.command, Command::Reset { ref user, yes: true } if user == "bob"));
        assert!(parse(&["reset"]).is_err());
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit status:") && help.contains("5  access denied"));
    }

    #[test]
    fn debug_shows_no_code_and_no_secret() {
        const SECRET: &str = "MARKERSECRETQQQQ";
        const CODE: &str = "98765432";
        for args in [
            &["enrol", "totp", "--secret", SECRET, "--code", CODE][..],
            &["confirm", "f00d", CODE][..],
        ] {
            let cli = parse(args).expect("parses");
            let shown = format!("{cli:?} {cli:#?} {:?}", cli.command);
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains(CODE), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        // Nothing else is hidden.
        let shown = format!("{:?}", parse(&["remove", "f00d", "--yes"]).expect("parses"));
        assert!(
            shown.contains("f00d") && shown.contains("yes: true"),
            "{shown}"
        );
    }
}

#[cfg(test)]
mod man_page {
    use super::Cli;
    use clap::CommandFactory;
    use std::collections::BTreeSet;

    const MAN: &str = include_str!("../../packaging/man/mfactl.1");

    /// Every command a user can type: top-level ones, and the nested ones
    /// of a command that needs one (`policy explain`).
    fn commands() -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for sub in Cli::command().get_subcommands() {
            if sub.is_subcommand_required_set() {
                for nested in sub.get_subcommands() {
                    names.insert(format!("{} {}", sub.get_name(), nested.get_name()));
                }
            } else {
                names.insert(sub.get_name().to_string());
            }
        }
        names
    }

    fn section<'a>(title: &str) -> &'a str {
        let start = MAN
            .find(&format!(".SH {title}\n"))
            .unwrap_or_else(|| panic!("mfactl.1 has no {title} section"));
        let rest = &MAN[start + 5 + title.len()..];
        &rest[..rest.find("\n.SH ").unwrap_or(rest.len())]
    }

    fn unescape(roff: &str) -> String {
        roff.replace("\\-", "-")
    }

    /// mfactl(1)'s synopsis lists every command, and no command that is
    /// gone; each has its entry under COMMANDS.
    #[test]
    fn the_synopsis_and_the_commands_section_list_every_command() {
        let lines: Vec<&str> = section("SYNOPSIS").lines().collect();
        let synopsis: BTreeSet<String> = lines
            .windows(2)
            .filter(|w| w[0] == ".RI [ GLOBAL\\ OPTIONS ]")
            .filter_map(|w| w[1].strip_prefix(".B "))
            .map(unescape)
            .collect();
        assert_eq!(synopsis, commands(), "mfactl.1 SYNOPSIS against the CLI");
        let described: Vec<String> = section("COMMANDS")
            .lines()
            .filter_map(|l| l.strip_prefix(".SS "))
            .map(unescape)
            .collect();
        for command in commands() {
            assert!(
                described
                    .iter()
                    .any(|d| d == &command || d.starts_with(&format!("{command} "))),
                "mfactl.1 COMMANDS has no entry for {command:?}: {described:?}"
            );
        }
    }
}
