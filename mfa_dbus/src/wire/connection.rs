//! A blocking D-Bus connection on a Unix socket, every operation bounded by
//! a deadline. No threads, no event loop: what a PAM module inside sshd or
//! sudo can afford, and all a login needs (a few calls in turn).

use super::message::{self, Args, Call, Kind, Message, WireError};
use serde::Serialize;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a call on the connection got no reply.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// The other end closed the connection.
    #[error("the connection was closed")]
    Closed,
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The bus did not accept our credentials.
    #[error("the bus refused to authenticate this process: {0}")]
    Rejected(String),
}

/// One connection to mfad or the bus.
pub struct Link {
    stream: UnixStream,
    next_serial: u32,
    inbox: Vec<u8>,
    /// Replies read while waiting for another one.
    held: Vec<Message>,
}

impl Link {
    /// Connect to the socket at `path` by `deadline` (a full backlog is
    /// waited for, no longer).
    pub fn connect(path: &Path, deadline: Instant) -> Result<Link, LinkError> {
        let stream = connect_unix(path, deadline)?;
        Ok(Link {
            stream,
            next_serial: 1,
            inbox: Vec::with_capacity(512),
            held: Vec::new(),
        })
    }

    /// The uid the kernel recorded for the other end when it listened.
    pub fn peer_uid(&self) -> io::Result<u32> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: u32::MAX,
            gid: u32::MAX,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: the buffer and its length describe `cred`, which lives
        // across the call.
        let rc = unsafe {
            libc::getsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cred.uid)
    }

    /// The serial the next call gets.
    pub fn serial(&mut self) -> u32 {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1).max(1);
        serial
    }

    /// Encode a call with a fresh serial; returns the bytes and the serial.
    pub fn call<T: Serialize + Args>(
        &mut self,
        destination: Option<&str>,
        path: &str,
        interface: &str,
        member: &str,
        args: &T,
    ) -> Result<(Vec<u8>, u32), WireError> {
        self.call_with_flags(destination, path, interface, member, args, 0)
    }

    pub fn call_with_flags<T: Serialize + Args>(
        &mut self,
        destination: Option<&str>,
        path: &str,
        interface: &str,
        member: &str,
        args: &T,
        flags: u8,
    ) -> Result<(Vec<u8>, u32), WireError> {
        let serial = self.serial();
        let bytes = Call {
            serial,
            destination,
            path,
            interface,
            member,
            flags,
        }
        .encode(args)?;
        Ok((bytes, serial))
    }

    /// Write all of `bytes` by `deadline`.
    pub fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), LinkError> {
        let mut sent = 0;
        while sent < bytes.len() {
            set_timeout(&self.stream, libc::SO_SNDTIMEO, deadline)?;
            let rest = &bytes[sent..];
            // SAFETY: `rest` is a live slice; MSG_NOSIGNAL keeps a closed
            // peer from raising SIGPIPE in the host process.
            let n = unsafe {
                libc::send(
                    self.stream.as_raw_fd(),
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        return Err(LinkError::Timeout)
                    }
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                        return Err(LinkError::Closed)
                    }
                    _ => return Err(error.into()),
                }
            }
            sent += n as usize;
        }
        Ok(())
    }

    /// The line the bus sends during authentication (without its CRLF).
    pub fn read_line(&mut self, deadline: Instant) -> Result<String, LinkError> {
        loop {
            if let Some(end) = self.inbox.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.inbox[..end]).into_owned();
                self.inbox.drain(..end + 2);
                return Ok(line);
            }
            if self.inbox.len() > 4096 {
                return Err(WireError("an authentication line too long".into()).into());
            }
            self.fill(deadline)?;
        }
    }

    /// The reply to the call `serial` (a method return or an error),
    /// skipping signals; replies to other calls are kept for later.
    pub fn reply(&mut self, serial: u32, deadline: Instant) -> Result<Message, LinkError> {
        if let Some(at) = self
            .held
            .iter()
            .position(|m| m.reply_serial == Some(serial))
        {
            return Ok(self.held.remove(at));
        }
        loop {
            let message = self.next_message(deadline)?;
            match message.kind {
                Kind::MethodReturn | Kind::Error if message.reply_serial == Some(serial) => {
                    return Ok(message)
                }
                Kind::MethodReturn | Kind::Error => {
                    if self.held.len() >= 16 {
                        return Err(WireError("replies to calls never made".into()).into());
                    }
                    self.held.push(message);
                }
                // The bus's NameAcquired after Hello, or calls we do not
                // serve: not for a login.
                Kind::Signal | Kind::MethodCall => {}
            }
        }
    }

    fn next_message(&mut self, deadline: Instant) -> Result<Message, LinkError> {
        loop {
            if let Some(total) = message::message_length(&self.inbox)? {
                if self.inbox.len() >= total {
                    let parsed = message::parse(&self.inbox[..total]);
                    self.inbox.drain(..total);
                    return Ok(parsed?);
                }
            }
            self.fill(deadline)?;
        }
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), LinkError> {
        let mut chunk = [0u8; 4096];
        loop {
            set_timeout(&self.stream, libc::SO_RCVTIMEO, deadline)?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => {
                    self.inbox.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        return Err(LinkError::Timeout)
                    }
                    io::ErrorKind::ConnectionReset => return Err(LinkError::Closed),
                    _ => return Err(e.into()),
                },
            }
        }
    }
}

/// Time left until `deadline` as a socket timeout; an error once it has
/// passed (a zero timeout would mean "wait forever").
fn set_timeout(
    stream: &UnixStream,
    option: libc::c_int,
    deadline: Instant,
) -> Result<(), LinkError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(LinkError::Timeout);
    }
    set_socket_timeout(stream.as_raw_fd(), option, left)?;
    Ok(())
}

fn set_socket_timeout(fd: libc::c_int, option: libc::c_int, left: Duration) -> io::Result<()> {
    let mut tv = libc::timeval {
        tv_sec: left.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_usec: libc::suseconds_t::from(left.subsec_micros()),
    };
    if tv.tv_sec == 0 && tv.tv_usec == 0 {
        tv.tv_usec = 1;
    }
    // SAFETY: `tv` is a valid timeval for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A blocking, close-on-exec Unix stream socket connected to `path`. Linux
/// bounds a connect that waits for room in the listener's backlog by the
/// socket's send timeout, so the deadline holds there too.
fn connect_unix(path: &Path, deadline: Instant) -> Result<UnixStream, LinkError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let mut address = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    if bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long").into());
    }
    for (to, from) in address.sun_path.iter_mut().zip(bytes) {
        *to = *from as libc::c_char;
    }
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(LinkError::Timeout);
    }
    set_socket_timeout(fd, libc::SO_SNDTIMEO, left)?;
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    loop {
        // SAFETY: `address` is a valid sockaddr_un of at least `len` bytes.
        let rc = unsafe { libc::connect(fd, (&address as *const libc::sockaddr_un).cast(), len) };
        if rc == 0 {
            return Ok(UnixStream::from(owned));
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Err(LinkError::Timeout),
            _ => return Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_peer_times_out_and_a_closed_one_is_closed() {
        let dir = tempdir();
        let path = dir.join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut link = Link::connect(&path, deadline).expect("connect");
        let (peer, _) = listener.accept().expect("accept");
        assert!(matches!(link.reply(1, deadline), Err(LinkError::Timeout)));
        drop(peer);
        let later = Instant::now() + Duration::from_secs(5);
        assert!(matches!(link.reply(1, later), Err(LinkError::Closed)));
        // Writing to a closed peer is an error, not SIGPIPE.
        let err = link.send(&[0u8; 65536], later);
        assert!(matches!(err, Err(LinkError::Closed)), "{err:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nobody_listening_is_an_io_error() {
        let dir = tempdir();
        let deadline = Instant::now() + Duration::from_secs(1);
        match Link::connect(&dir.join("none.sock"), deadline) {
            Err(LinkError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("{:?}", other.map(|_| ())),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir() -> std::path::PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mfa-wire-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
