//! The FUSE filesystem: a directory holding one regular file, the fake
//! hidraw node, that behaves like /dev/hidrawN for hidapi's hidraw backend:
//! open(O_RDWR), the hidraw ioctls, 65-byte writes (report ID 0 + 64
//! bytes), 64-byte reads that block until a report is there (or fail with
//! EAGAIN on an O_NONBLOCK file), and poll().

use std::ffi::OsStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, IoctlFlags,
    LockOwner, OpenFlags, PollFlags, PollNotifier, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyPoll, ReplyWrite, Request, WriteFlags,
};

use crate::hid::{self, HidrawIoctl, REPORT_LEN};
use crate::key::{Input, Shared};

const NODE_INO: INodeNo = INodeNo(2);
/// Nothing is cached by the kernel: an unplugged node must vanish at once.
const TTL: Duration = Duration::ZERO;
/// `CTAPHID_CANCEL` with the initialization-packet bit.
const CTAPHID_CANCEL: u8 = 0x91;

/// Identity strings and numbers the hidraw ioctls report.
#[derive(Clone)]
pub struct Identity {
    pub vendor: u16,
    pub product: u16,
    pub name: String,
    pub phys: String,
    pub uniq: String,
}

pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u16,
}

pub struct FakeFs {
    shared: Arc<Shared>,
    input: Mutex<mpsc::Sender<Input>>,
    node: String,
    identity: Identity,
    owner: Ownership,
    created: SystemTime,
}

impl FakeFs {
    // The device node's timestamps are the real time, as a real one's are.
    #[allow(clippy::disallowed_methods)]
    pub fn new(
        shared: Arc<Shared>,
        input: mpsc::Sender<Input>,
        node: String,
        identity: Identity,
        owner: Ownership,
    ) -> Self {
        FakeFs {
            shared,
            input: Mutex::new(input),
            node,
            identity,
            owner,
            created: SystemTime::now(),
        }
    }

    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, nlink) = match ino {
            INodeNo::ROOT => (FileType::Directory, 0o755, 2),
            NODE_INO => (FileType::RegularFile, self.owner.mode, 1),
            _ => return None,
        };
        Some(FileAttr {
            ino,
            size: 0,
            blocks: 0,
            atime: self.created,
            mtime: self.created,
            ctime: self.created,
            crtime: self.created,
            kind,
            perm,
            nlink,
            uid: if ino == NODE_INO { self.owner.uid } else { 0 },
            gid: if ino == NODE_INO { self.owner.gid } else { 0 },
            rdev: 0,
            blksize: REPORT_LEN as u32,
            flags: 0,
        })
    }

    fn send(&self, input: Input) -> bool {
        self.input
            .lock()
            .map(|tx| tx.send(input).is_ok())
            .unwrap_or(false)
    }
}

impl Filesystem for FakeFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == INodeNo::ROOT
            && name == OsStr::new(&self.node)
            && self.shared.device.is_plugged()
        {
            if let Some(attr) = self.attr(NODE_INO) {
                reply.entry(&TTL, &attr, Generation(0));
                return;
            }
        }
        reply.error(Errno::ENOENT);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            reply.error(Errno::ENOTDIR);
            return;
        }
        let mut entries = vec![
            (INodeNo::ROOT, FileType::Directory, ".".to_string()),
            (INodeNo::ROOT, FileType::Directory, "..".to_string()),
        ];
        if self.shared.device.is_plugged() {
            entries.push((NODE_INO, FileType::RegularFile, self.node.clone()));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(ino, (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino != NODE_INO {
            reply.error(Errno::EISDIR);
            return;
        }
        match self.shared.device.open() {
            Ok(fh) => reply.opened(
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NONSEEKABLE,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        size: u32,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let nonblocking = flags.0 & libc::O_NONBLOCK != 0;
        self.shared
            .device
            .read(fh.0, size as usize, nonblocking, req.pid(), reply);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let gen = match self.shared.device.live_generation(fh.0) {
            Ok(gen) => gen,
            Err(e) => return reply.error(e),
        };
        // The first byte is the report ID; the descriptor has none, so it
        // must be 0, and one output report (64 bytes) follows.
        if data.is_empty() || data[0] != 0 || data.len() > 1 + REPORT_LEN {
            return reply.error(Errno::EINVAL);
        }
        let mut report = [0u8; REPORT_LEN];
        report[..data.len() - 1].copy_from_slice(&data[1..]);
        if report[4] == CTAPHID_CANCEL {
            let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
            self.shared.cancel(cid);
        }
        if !self.send(Input::Packet { gen, data: report }) {
            return reply.error(Errno::EIO);
        }
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.device.release(fh.0);
        reply.ok();
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        if let Err(e) = self.shared.device.live_generation(fh.0) {
            return reply.error(e);
        }
        let id = &self.identity;
        let (result, data) = match HidrawIoctl::decode(cmd) {
            Some(HidrawIoctl::DescSize) => (
                0,
                (hid::REPORT_DESCRIPTOR.len() as i32).to_ne_bytes().to_vec(),
            ),
            Some(HidrawIoctl::Desc) => (0, hid::rdesc_reply()),
            Some(HidrawIoctl::RawInfo) => (0, hid::rawinfo_reply(id.vendor, id.product)),
            Some(HidrawIoctl::RawName(len)) => string_ioctl(&id.name, len),
            Some(HidrawIoctl::RawPhys(len)) => string_ioctl(&id.phys, len),
            Some(HidrawIoctl::RawUniq(len)) => string_ioctl(&id.uniq, len),
            None => return reply.error(Errno::ENOTTY),
        };
        if data.len() > out_size as usize {
            return reply.error(Errno::EINVAL);
        }
        reply.ioctl(result, &data);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        _events: fuser::PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        let notifier = flags
            .contains(PollFlags::FUSE_POLL_SCHEDULE_NOTIFY)
            .then_some(ph);
        reply.poll(self.shared.device.poll(fh.0, notifier));
    }
}

fn string_ioctl(s: &str, len: usize) -> (i32, Vec<u8>) {
    let data = hid::string_reply(s, len);
    (data.len() as i32, data)
}
