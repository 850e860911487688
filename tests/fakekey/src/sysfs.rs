//! A fake sysfs subtree describing the node, for code that enumerates FIDO
//! keys by reading sysfs under a configurable root instead of /sys:
//!
//! ```text
//! ROOT/class/hidraw/NODE/uevent                    DEVNAME=NODE
//! ROOT/class/hidraw/NODE/device/report_descriptor  the binary HID report descriptor
//! ROOT/class/hidraw/NODE/device/uevent             DRIVER, HID_ID, HID_NAME, HID_PHYS,
//!                                                  HID_UNIQ, MODALIAS (as the hid core writes them)
//! ```
//!
//! On the real /sys, `class/hidraw/NODE` is a symlink into /sys/devices;
//! here it is a plain directory. It exists exactly while the key is plugged.

use std::fs;
use std::path::{Path, PathBuf};

use crate::fs::Identity;
use crate::hid::{BUS_USB, REPORT_DESCRIPTOR};

pub struct Sysfs {
    root: PathBuf,
    node: String,
}

impl Sysfs {
    pub fn new(root: &Path, node: &str) -> Self {
        Sysfs {
            root: root.to_path_buf(),
            node: node.to_string(),
        }
    }

    fn node_dir(&self) -> PathBuf {
        self.root.join("class").join("hidraw").join(&self.node)
    }

    /// Creates (or rewrites) the node's subtree.
    pub fn create(&self, id: &Identity) -> Result<(), String> {
        let dir = self.node_dir();
        let device = dir.join("device");
        fs::create_dir_all(&device)
            .map_err(|e| format!("cannot create {}: {e}", device.display()))?;
        let write = |path: PathBuf, bytes: &[u8]| {
            fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        write(
            dir.join("uevent"),
            format!("DEVNAME={}\n", self.node).as_bytes(),
        )?;
        write(device.join("report_descriptor"), REPORT_DESCRIPTOR)?;
        let uevent = format!(
            "DRIVER=hid-generic\n\
             HID_ID={bus:04X}:{vid:08X}:{pid:08X}\n\
             HID_NAME={name}\n\
             HID_PHYS={phys}\n\
             HID_UNIQ={uniq}\n\
             MODALIAS=hid:b{bus:04X}g0001v{vid:08X}p{pid:08X}\n",
            bus = BUS_USB,
            vid = id.vendor,
            pid = id.product,
            name = id.name,
            phys = id.phys,
            uniq = id.uniq,
        );
        write(device.join("uevent"), uevent.as_bytes())
    }

    /// Removes the node's subtree (the key is unplugged or gone).
    pub fn remove(&self) -> Result<(), String> {
        let dir = self.node_dir();
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
        }
    }
}
