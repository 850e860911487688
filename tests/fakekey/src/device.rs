//! The hidraw node's per-open state, as the kernel's hidraw driver keeps it:
//! every open file gets its own queue of input reports (64 at most, newer
//! ones dropped when full), a blocking read waits for a report, poll()
//! tells when one is there, and once the device is gone every open file
//! fails (read: EIO, write and ioctl: ENODEV, poll: POLLERR|POLLHUP).
//!
//! Replies to reads that wait are kept here and sent from whichever thread
//! produces the report (or the unplug), never by blocking a FUSE thread.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use fuser::{Errno, PollEvents, PollNotifier, ReplyData};

use crate::hid::REPORT_LEN;

/// One input report, as read() returns it (no report ID: the descriptor
/// declares none).
pub type Report = [u8; REPORT_LEN];

/// hidraw's per-open buffer (`HIDRAW_BUFFER_SIZE`).
const QUEUE_LIMIT: usize = 64;

struct Handle {
    /// The device generation this file was opened on.
    generation: u64,
    queue: VecDeque<Report>,
    /// Reads waiting for a report.
    readers: VecDeque<Reader>,
    /// The kernel's poll handle to notify when a report arrives.
    poller: Option<PollNotifier>,
}

struct Reader {
    reply: ReplyData,
    /// The size the read asked for.
    size: usize,
    /// The thread that reads (to notice it being killed).
    tid: u32,
}

struct Inner {
    plugged: bool,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
}

pub struct Device {
    /// Bumped on every unplug and plug: files opened on an older
    /// generation are dead, and reports produced for one are dropped.
    generation: AtomicU64,
    inner: Mutex<Inner>,
}

impl Device {
    pub fn new() -> Self {
        Device {
            generation: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                plugged: true,
                handles: HashMap::new(),
                next_fh: 1,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn is_plugged(&self) -> bool {
        self.lock().plugged
    }

    pub fn open_handles(&self) -> usize {
        let gen = self.generation();
        self.lock()
            .handles
            .values()
            .filter(|h| h.generation == gen)
            .count()
    }

    /// Reads waiting for a report, on all files.
    pub fn waiting_reads(&self) -> usize {
        self.lock().handles.values().map(|h| h.readers.len()).sum()
    }

    /// A new open file, or `ENOENT` while unplugged.
    pub fn open(&self) -> Result<u64, Errno> {
        let mut inner = self.lock();
        if !inner.plugged {
            return Err(Errno::ENOENT);
        }
        let fh = inner.next_fh;
        inner.next_fh += 1;
        let generation = self.generation();
        inner.handles.insert(
            fh,
            Handle {
                generation,
                queue: VecDeque::new(),
                readers: VecDeque::new(),
                poller: None,
            },
        );
        Ok(fh)
    }

    /// The last close of an open file.
    pub fn release(&self, fh: u64) {
        let handle = self.lock().handles.remove(&fh);
        if let Some(handle) = handle {
            for r in handle.readers {
                r.reply.error(Errno::EIO);
            }
        }
    }

    /// The generation `fh` writes to, or `ENODEV` when its device is gone.
    pub fn live_generation(&self, fh: u64) -> Result<u64, Errno> {
        let inner = self.lock();
        let gen = self.generation();
        match inner.handles.get(&fh) {
            Some(h) if inner.plugged && h.generation == gen => Ok(gen),
            _ => Err(Errno::ENODEV),
        }
    }

    /// A read() by thread `tid`: answered now when a report is queued, with
    /// `EAGAIN` for a non-blocking file that has none, else when one arrives.
    pub fn read(&self, fh: u64, size: usize, nonblocking: bool, tid: u32, reply: ReplyData) {
        let mut inner = self.lock();
        let gen = self.generation();
        let plugged = inner.plugged;
        let Some(handle) = inner.handles.get_mut(&fh) else {
            reply.error(Errno::EBADF);
            return;
        };
        if !plugged || handle.generation != gen {
            reply.error(Errno::EIO);
            return;
        }
        if let Some(report) = handle.queue.pop_front() {
            reply.data(&report[..size.min(REPORT_LEN)]);
        } else if nonblocking {
            reply.error(Errno::EAGAIN);
        } else {
            handle.readers.push_back(Reader { reply, size, tid });
        }
    }

    /// poll(): the events ready now; `notifier` is kept to wake the poller
    /// when a report arrives later.
    pub fn poll(&self, fh: u64, notifier: Option<PollNotifier>) -> PollEvents {
        let mut inner = self.lock();
        let gen = self.generation();
        let plugged = inner.plugged;
        let Some(handle) = inner.handles.get_mut(&fh) else {
            return PollEvents::POLLNVAL;
        };
        if !plugged || handle.generation != gen {
            return PollEvents::POLLERR | PollEvents::POLLHUP;
        }
        let mut events = PollEvents::POLLOUT | PollEvents::POLLWRNORM;
        if handle.queue.is_empty() {
            if let Some(n) = notifier {
                handle.poller = Some(n);
            }
        } else {
            events |= PollEvents::POLLIN | PollEvents::POLLRDNORM;
        }
        events
    }

    /// Input reports from the key, given to every file open on generation
    /// `gen` (as hidraw gives each report to every reader); dropped when
    /// the device has been unplugged or replugged since.
    pub fn deliver(&self, gen: u64, reports: &[Report]) {
        let mut inner = self.lock();
        if !inner.plugged || gen != self.generation() {
            return;
        }
        for handle in inner.handles.values_mut() {
            if handle.generation != gen {
                continue;
            }
            for report in reports {
                if let Some(r) = handle.readers.pop_front() {
                    r.reply.data(&report[..r.size.min(REPORT_LEN)]);
                } else if handle.queue.len() < QUEUE_LIMIT {
                    handle.queue.push_back(*report);
                }
            }
            if !handle.queue.is_empty() {
                if let Some(n) = handle.poller.take() {
                    let _ = n.notify();
                }
            }
        }
    }

    /// Fails the waiting reads of threads that were killed meanwhile.
    ///
    /// The kernel does not end a FUSE read it has handed to the filesystem
    /// when the reader gets SIGKILL (and fuser refuses FUSE_INTERRUPT): the
    /// reader would hang in state D until a report came. A real hidraw read
    /// dies with its process, so the fake answers such reads with EINTR.
    pub fn reap_killed_readers(&self) {
        let mut inner = self.lock();
        for handle in inner.handles.values_mut() {
            if handle.readers.iter().all(|r| !fatal_signal_pending(r.tid)) {
                continue;
            }
            let readers = std::mem::take(&mut handle.readers);
            for r in readers {
                if fatal_signal_pending(r.tid) {
                    r.reply.error(Errno::EINTR);
                } else {
                    handle.readers.push_back(r);
                }
            }
        }
    }

    /// The key is pulled out: waiting reads fail with EIO, pollers wake to
    /// POLLHUP, queued reports are lost, and the node disappears.
    pub fn unplug(&self) {
        let mut inner = self.lock();
        inner.plugged = false;
        self.generation.fetch_add(1, Ordering::SeqCst);
        for handle in inner.handles.values_mut() {
            handle.queue.clear();
            for r in handle.readers.drain(..) {
                r.reply.error(Errno::EIO);
            }
            if let Some(n) = handle.poller.take() {
                let _ = n.notify();
            }
        }
    }

    /// The key is plugged in again: a new device; files opened before
    /// stay dead.
    pub fn plug(&self) {
        let mut inner = self.lock();
        if !inner.plugged {
            inner.plugged = true;
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Whether thread `tid` is gone or has SIGKILL pending (its `SigPnd` or
/// `ShdPnd` in /proc has bit 9).
fn fatal_signal_pending(tid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return true;
    };
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    status.lines().any(|line| {
        let pending = line
            .strip_prefix("SigPnd:")
            .or_else(|| line.strip_prefix("ShdPnd:"));
        pending
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|mask| mask & SIGKILL_BIT != 0)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_live_thread_has_no_fatal_signal() {
        assert!(!super::fatal_signal_pending(std::process::id()));
        assert!(super::fatal_signal_pending(u32::MAX));
    }
}
