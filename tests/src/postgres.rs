//! A real PostgreSQL for the fleet tests, started by the tests themselves:
//! `initdb` into a temporary directory (as the `postgres` user: initdb
//! refuses root), TLS on with a certificate from a test CA made with
//! `openssl`, listening on 127.0.0.1 and a Unix socket of its own. One
//! server per test binary ([`Postgres::shared`]), a database of its own per
//! test ([`Postgres::database`]); tests that stop or freeze the server start
//! their own ([`Postgres::start`]).

use crate::process::run;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use tempfile::TempDir;

/// An open psql session ([`Postgres::session`]).
pub struct Session {
    running: crate::process::Running,
}

impl Session {
    /// Commit what it holds and quit.
    pub fn end(mut self) {
        self.running.send_line("COMMIT;");
        self.running.close_stdin();
        self.running
            .finish(crate::QUICK)
            .assert_success("psql session");
    }
}

pub struct Postgres {
    dir: TempDir,
    port: u16,
    /// The postmaster, a child of the thread that started it: the kernel
    /// kills it when that thread ends (see `die_with_parent`).
    server: Mutex<Option<Child>>,
}

/// The server binaries of the installed major version.
fn bin(name: &str) -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e} (apt-get install postgresql)", root.display()))
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "no {name} under {} (apt-get install postgresql)",
            root.display()
        )
    })
}

/// As the `postgres` user (the server refuses to run as root).
fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(program);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Postgres {
    /// The server of this test binary, started on first use by a thread
    /// that lives as long as the test process (so the server does too, and
    /// no longer).
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        // A static is never dropped: stop the server and remove its
        // directory (tens of MB) when the process exits.
        extern "C" fn stop_shared() {
            if let Some(pg) = SHARED.get() {
                pg.stop_server();
                let _ = std::fs::remove_dir_all(pg.dir.path());
            }
        }
        SHARED.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let pg = Postgres::start();
                let _ = tx.send(pg);
                loop {
                    std::thread::park();
                }
            });
            let pg = rx.recv().expect("the PostgreSQL thread died");
            // SAFETY: atexit only records the function; it runs at normal
            // exit.
            unsafe { libc::atexit(stop_shared) };
            pg
        })
    }

    /// Kill the postmaster, if it runs, and reap it.
    fn stop_server(&self) {
        if let Some(mut child) = self.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A server of its own (for tests that stop or freeze it).
    pub fn start() -> Postgres {
        let dir = crate::shared_tempdir("mfa-pg-");
        let postgres = nix_user("postgres");
        std::os::unix::fs::chown(dir.path(), Some(postgres), None).expect("chown");
        let pg = Postgres {
            dir,
            port: free_port(),
            server: Mutex::new(None),
        };
        pg.make_certificates();
        let init = run(
            "initdb",
            as_postgres(&bin("initdb")).arg("-D").arg(pg.data()).args([
                "-A",
                "trust",
                "-U",
                "mfa",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]),
            "",
            crate::QUICK,
        );
        init.assert_success("initdb");
        // TLS only over TCP; the socket is for the tests themselves.
        std::fs::write(
            pg.data().join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        pg.launch();
        pg.psql("postgres", "SELECT 1");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of its Unix socket (a `host` for mfad without TLS).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA no certificate of this server chains to.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// Run the postmaster as a child, as user postgres (setpriv execs it:
    /// no process in between), and wait until it says it is ready.
    fn launch(&self) {
        let uid = nix_user("postgres");
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={}", nix_group("postgres")))
            .arg("--clear-groups")
            // The uid change clears a death signal set before: set it after.
            .args(["--pdeathsig", "SIGKILL"])
            .arg("--")
            .arg(bin("postgres"))
            .arg("-D")
            .arg(self.data())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.socket_dir())
            .args([
                "-c",
                "ssl=on",
                "-c",
                "fsync=on",
                "-c",
                "max_connections=200",
            ])
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                self.dir.path().join("server.pem").display()
            ))
            .arg("-c")
            .arg(format!(
                "ssl_key_file={}",
                self.dir.path().join("server.key").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::process::die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let log_path = self.dir.path().join("log");
        let (ready_tx, ready) = mpsc::channel();
        // Its log, line by line, to a file; the ready line told once.
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(log_path).ok();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("ready to accept connections") {
                    let _ = ready_tx.send(());
                }
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
            }
        });
        if ready.recv_timeout(crate::QUICK).is_err() {
            let _ = child.kill();
            panic!(
                "postgres did not become ready:\n{}",
                std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
            );
        }
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
    }

    /// Stop at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn crash(&self) {
        run(
            "pg_ctl stop",
            as_postgres(&bin("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"]),
            "",
            crate::QUICK,
        )
        .assert_success("pg_ctl stop -m immediate");
        if let Some(mut child) = self.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.wait();
        }
    }

    /// Start again after [`Postgres::crash`].
    pub fn restart(&self) {
        self.launch();
    }

    /// Every process of the server (postmaster and backends), to freeze
    /// them all (SIGSTOP) and thaw them.
    pub fn processes(&self) -> Vec<i32> {
        let Some(postmaster) = self
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.id() as i32)
        else {
            return Vec::new();
        };
        let mut all = vec![postmaster];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if parent == Some(postmaster) {
                all.push(pid);
            }
        }
        all
    }

    /// Run SQL in `database` through psql on the socket.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.psql_input(database, sql, "")
    }

    /// [`Postgres::psql`] with `input` on its standard input (for
    /// `COPY … FROM STDIN`).
    pub fn psql_input(&self, database: &str, sql: &str, input: &str) -> String {
        let out = run(
            "psql",
            Command::new("psql")
                .arg("-h")
                .arg(self.socket_dir())
                .arg("-p")
                .arg(self.port.to_string())
                .args([
                    "-U",
                    "mfa",
                    "-d",
                    database,
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    sql,
                ]),
            input,
            crate::QUICK,
        );
        out.assert_success("psql");
        out.stdout
    }

    /// A psql session of its own in `database` that has run `sql` (and
    /// holds whatever it took: `BEGIN; LOCK TABLE …;`) until
    /// [`Session::end`].
    pub fn session(&self, database: &str, sql: &str) -> Session {
        let mut running = crate::process::Running::spawn(
            "psql session",
            Command::new("psql")
                .arg("-h")
                .arg(self.socket_dir())
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-U", "mfa", "-d", database, "-Atq", "-v", "ON_ERROR_STOP=1"]),
        );
        running.send_line(sql);
        running.send_line("\\echo session-ready");
        // Rows the SQL printed come first.
        while let Some(line) = running.next_line(crate::QUICK) {
            if line == "session-ready" {
                return Session { running };
            }
        }
        panic!(
            "psql did not run {sql:?}\n{}",
            running.finish(crate::QUICK).describe()
        )
    }

    /// A new, empty database for one test.
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "mfa_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// mfad's `[store]` table for `database`: TLS verified against the
    /// test CA over TCP.
    pub fn store_table(&self, database: &str) -> String {
        format!(
            "[store]\nbackend = \"postgresql\"\nhost = \"localhost\"\nport = {}\ndbname = \"{database}\"\nuser = \"mfa\"\nca_file = \"{}\"\ntimeout = 3\n",
            self.port,
            self.ca_file().display()
        )
    }

    /// mfad's `[store]` table for `database` on the local socket, no TLS.
    pub fn socket_table(&self, database: &str) -> String {
        format!(
            "[store]\nbackend = \"postgresql\"\nhost = \"{}\"\nport = {}\ndbname = \"{database}\"\nuser = \"mfa\"\ntls = \"none\"\ntimeout = 3\n",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Serve, from now on, a certificate for the names `san` lists
    /// (`DNS:…`) signed by the same test CA: the server reloads it, and this
    /// returns once a verifying client connecting to `localhost` sees it.
    pub fn reissue_certificate(&self, san: &str, names: &str) {
        crate::certs::make_server_certificate(self.dir.path(), san);
        self.own_server_files();
        self.psql("postgres", "SELECT pg_reload_conf()");
        let deadline = std::time::Instant::now() + crate::QUICK;
        loop {
            let out = run(
                "psql",
                Command::new("psql").arg(format!(
                    "host=localhost port={} user=mfa dbname=postgres sslmode=verify-full sslrootcert={}",
                    self.port,
                    self.ca_file().display()
                )).args(["-At", "-c", "SELECT 1"]),
                "",
                crate::QUICK,
            );
            if out.stderr.contains(names) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never served the certificate for {names}: {}",
                out.describe()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A test CA and a server certificate for `localhost` and 127.0.0.1,
    /// and a second CA that signed nothing.
    fn make_certificates(&self) {
        let d = self.dir.path();
        crate::certs::make_test_certificates(d);
        self.own_server_files();
    }

    /// The server's key and certificate: the server's own, private.
    fn own_server_files(&self) {
        let postgres = nix_user("postgres");
        for file in ["server.key", "server.pem"] {
            let path = self.dir.path().join(file);
            std::os::unix::fs::chown(&path, Some(postgres), None).expect("chown");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server();
    }
}

fn nix_group(name: &str) -> u32 {
    let group = std::fs::read_to_string("/etc/group").expect("/etc/group");
    group
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1).and_then(|g| g.parse().ok()))?
        })
        .unwrap_or_else(|| panic!("no group {name} (apt-get install postgresql)"))
}

/// The uid of a system user, from /etc/passwd (not from nss_wrapper).
fn nix_user(name: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1).and_then(|u| u.parse().ok()))?
        })
        .unwrap_or_else(|| panic!("no user {name} (apt-get install postgresql)"))
}
