//! Well-known names. Interface names carry a version: an incompatible change
//! is a new interface (`…2`), never an edit of this one.

/// The name mfad owns on the system bus. The bus policy lets only root own it.
pub const BUS_NAME: &str = "org.pam_mfa.Mfad1";
/// The one object mfad serves.
pub const OBJECT_PATH: &str = "/org/pam_mfa/Mfad1";
/// Login conversations; root only (the PAM module runs as root).
pub const LOGIN_INTERFACE: &str = "org.pam_mfa.Login1";
/// A user's own factors; any local user, acting on themselves.
pub const FACTORS_INTERFACE: &str = "org.pam_mfa.Factors1";
/// Administration; root or the configured admin group.
pub const ADMIN_INTERFACE: &str = "org.pam_mfa.Admin1";
/// Prefix of every D-Bus error name mfad returns.
pub const ERROR_PREFIX: &str = "org.pam_mfa.Error";
/// Where the system bus listens. Clients that run inside setuid programs use
/// this (or an address from the root-owned PAM line), never the environment.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";
/// Where root PAM clients (sshd, login, sudo, su, display managers) reach
/// Login1 peer to peer, without the bus: root's alone (directory root 0755,
/// socket root 0600), the server checked to be root by the kernel.
pub const LOGIN_SOCKET: &str = "/run/mfa/login.sock";
