//! The login benchmark behind `pam-bench` (`scripts/bench.sh` runs it).
//!
//! It is a load generator, not a test: it drives real libpam in a loop and
//! reports latency percentiles and throughput for pam_mfa, and for
//! google-authenticator-libpam and pam_oath from Debian's packages on the
//! same machine in the same run.
//!
//! - [`codes`]: per-user secrets derived from a run seed, and the codes for
//!   them (mfad's own HOTP function: a generator, not an oracle — the other
//!   two modules accepting the same codes cross-checks it)
//! - [`pam`]: one pam_start_confdir → pam_authenticate → pam_end transaction
//! - [`fixtures`]: each system's configuration and enrolled users
//! - [`daemon`]: mfad on a private bus, its store seeded before it starts
//! - [`sink`]: a /dev/log that discards, for machines without syslog
//! - [`direct`]: the module's D-Bus calls made directly, timed stage by stage
//! - [`worker`]: the login loop a worker process runs
//! - [`store`]: mfad's store calls timed in-process, without the bus
//! - [`stats`]: percentiles and the Markdown report

pub mod codes;
pub mod daemon;
pub mod direct;
pub mod fixtures;
pub mod pam;
pub mod sink;
pub mod stats;
pub mod store;
pub mod worker;
