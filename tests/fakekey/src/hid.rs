//! What the Linux hidraw driver would tell about a FIDO HID interface: its
//! report descriptor and the answers to the hidraw ioctls.

/// A CTAPHID report descriptor as the FIDO CTAP specification (section
/// "USB HID") describes it: usage page 0xF1D0, usage 0x01, one 64-byte
/// input report and one 64-byte output report, no report IDs.
pub const REPORT_DESCRIPTOR: &[u8] = &[
    0x06, 0xD0, 0xF1, // Usage Page (FIDO Alliance, 0xF1D0)
    0x09, 0x01, //       Usage (CTAPHID, 0x01)
    0xA1, 0x01, //       Collection (Application)
    0x09, 0x20, //         Usage (Input Report Data)
    0x15, 0x00, //         Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //         Report Size (8 bits)
    0x95, 0x40, //         Report Count (64)
    0x81, 0x02, //         Input (Data, Variable, Absolute)
    0x09, 0x21, //         Usage (Output Report Data)
    0x15, 0x00, //         Logical Minimum (0)
    0x26, 0xFF, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //         Report Size (8 bits)
    0x95, 0x40, //         Report Count (64)
    0x91, 0x02, //         Output (Data, Variable, Absolute)
    0xC0, //             End Collection
];

/// Size of one CTAPHID report (input and output alike).
pub const REPORT_LEN: usize = 64;

/// `BUS_USB` from linux/input.h.
pub const BUS_USB: u32 = 0x03;

/// `HID_MAX_DESCRIPTOR_SIZE` from linux/hid.h: the payload of
/// `struct hidraw_report_descriptor` after its `__u32 size`.
const HID_MAX_DESCRIPTOR_SIZE: usize = 4096;

/// The ioctl type letter of hidraw (`'H'`).
const HIDRAW_IOC_TYPE: u32 = b'H' as u32;

/// The hidraw ioctls this double answers, decoded from the request number
/// (linux/hidraw.h builds them with `_IOR('H', nr, size)`).
#[derive(Debug, PartialEq, Eq)]
pub enum HidrawIoctl {
    /// `HIDIOCGRDESCSIZE`: `int` descriptor size.
    DescSize,
    /// `HIDIOCGRDESC`: `struct hidraw_report_descriptor`.
    Desc,
    /// `HIDIOCGRAWINFO`: `struct hidraw_devinfo`.
    RawInfo,
    /// `HIDIOCGRAWNAME(len)`: the device name, NUL-terminated.
    RawName(usize),
    /// `HIDIOCGRAWPHYS(len)`: the physical path, NUL-terminated.
    RawPhys(usize),
    /// `HIDIOCGRAWUNIQ(len)`: the serial ("uniq") string, NUL-terminated.
    RawUniq(usize),
}

// The _IOC layout of asm-generic/ioctl.h (x86, arm, riscv; not mips/ppc/sparc).
const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_TYPESHIFT: u32 = IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_READ: u32 = 2;

/// `_IOR(type, nr, size)`.
pub const fn ior(ty: u32, nr: u32, size: u32) -> u32 {
    (IOC_READ << IOC_DIRSHIFT) | (size << IOC_SIZESHIFT) | (ty << IOC_TYPESHIFT) | nr
}

/// `HIDIOCGRDESCSIZE` = `_IOR('H', 0x01, int)` = 0x80044801.
pub const HIDIOCGRDESCSIZE: u32 = ior(HIDRAW_IOC_TYPE, 0x01, 4);
/// `HIDIOCGRDESC` = `_IOR('H', 0x02, struct hidraw_report_descriptor)`.
pub const HIDIOCGRDESC: u32 = ior(HIDRAW_IOC_TYPE, 0x02, 4 + HID_MAX_DESCRIPTOR_SIZE as u32);
/// `HIDIOCGRAWINFO` = `_IOR('H', 0x03, struct hidraw_devinfo)`.
pub const HIDIOCGRAWINFO: u32 = ior(HIDRAW_IOC_TYPE, 0x03, 8);

impl HidrawIoctl {
    /// Decodes a request number, or `None` for one hidraw would answer
    /// with `ENOTTY`/`EINVAL` here (feature reports, input reports, ...).
    pub fn decode(cmd: u32) -> Option<Self> {
        if cmd == HIDIOCGRDESCSIZE {
            return Some(Self::DescSize);
        }
        if cmd == HIDIOCGRDESC {
            return Some(Self::Desc);
        }
        if cmd == HIDIOCGRAWINFO {
            return Some(Self::RawInfo);
        }
        let ty = (cmd >> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1);
        let dir = cmd >> IOC_DIRSHIFT;
        if ty != HIDRAW_IOC_TYPE || dir != IOC_READ {
            return None;
        }
        let len = ((cmd >> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1)) as usize;
        match cmd & ((1 << IOC_NRBITS) - 1) {
            0x04 => Some(Self::RawName(len)),
            0x05 => Some(Self::RawPhys(len)),
            0x08 => Some(Self::RawUniq(len)),
            _ => None,
        }
    }
}

/// The bytes `HIDIOCGRDESC` copies out: `__u32 size` then the descriptor,
/// padded to the full struct the caller passed.
pub fn rdesc_reply() -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + HID_MAX_DESCRIPTOR_SIZE);
    out.extend_from_slice(&(REPORT_DESCRIPTOR.len() as u32).to_ne_bytes());
    out.extend_from_slice(REPORT_DESCRIPTOR);
    out.resize(4 + HID_MAX_DESCRIPTOR_SIZE, 0);
    out
}

/// `struct hidraw_devinfo { __u32 bustype; __s16 vendor; __s16 product; }`.
pub fn rawinfo_reply(vendor: u16, product: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    out.extend_from_slice(&BUS_USB.to_ne_bytes());
    out.extend_from_slice(&vendor.to_ne_bytes());
    out.extend_from_slice(&product.to_ne_bytes());
    out
}

/// A string ioctl answer as hidraw gives it: at most `len` bytes, including
/// the terminating NUL; the ioctl's return value is the number of bytes.
pub fn string_reply(s: &str, len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = s.as_bytes().to_vec();
    out.push(0);
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux() {
        assert_eq!(HIDIOCGRDESCSIZE, 0x8004_4801);
        assert_eq!(HIDIOCGRDESC, 0x9004_4802);
        assert_eq!(HIDIOCGRAWINFO, 0x8008_4803);
        assert_eq!(
            HidrawIoctl::decode(ior(b'H' as u32, 0x04, 256)),
            Some(HidrawIoctl::RawName(256))
        );
        assert_eq!(HidrawIoctl::decode(0x5401), None); // TCGETS
    }

    #[test]
    fn descriptor_has_fido_usage_page_and_64_byte_reports() {
        assert_eq!(&REPORT_DESCRIPTOR[..3], &[0x06, 0xD0, 0xF1]);
        assert_eq!(
            REPORT_DESCRIPTOR
                .windows(2)
                .filter(|w| w == &[0x95, 0x40])
                .count(),
            2
        );
        let r = rdesc_reply();
        assert_eq!(r.len(), 4100);
        assert_eq!(
            u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize,
            REPORT_DESCRIPTOR.len()
        );
    }
}
