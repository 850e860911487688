//! What identifies the device a login comes from. Over SSH it is the public
//! key that passed the first authentication step (sshd's `ExposeAuthInfo`
//! puts it in `SSH_AUTH_INFO_0`); otherwise a literal source address. A
//! local login without either has no device and is never trusted.

use super::network::literal_address;
use data_encoding::{BASE64, BASE64_NOPAD};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Stable identity, stored: `ssh-key:SHA256:…` or `address:…`.
    pub key: String,
}

impl Device {
    pub fn identify(auth_info: &str, rhost: &str) -> Option<Device> {
        if let Some(fingerprint) = auth_info.lines().find_map(ssh_key_fingerprint) {
            return Some(Device {
                key: format!("ssh-key:{fingerprint}"),
            });
        }
        literal_address(rhost).map(|a| Device {
            key: format!("address:{a}"),
        })
    }

    /// The key as users see it (`ssh-keygen -l` style for keys).
    pub fn describe(key: &str) -> String {
        if let Some(fp) = key.strip_prefix("ssh-key:") {
            format!("SSH key {fp}")
        } else if let Some(addr) = key.strip_prefix("address:") {
            format!("address {addr}")
        } else {
            key.to_string()
        }
    }
}

/// `publickey ssh-ed25519 AAAA…` → `SHA256:…`, as `ssh-keygen -l` prints it.
fn ssh_key_fingerprint(line: &str) -> Option<String> {
    let mut words = line.split_ascii_whitespace();
    if words.next()? != "publickey" {
        return None;
    }
    let _key_type = words.next()?;
    let blob = BASE64.decode(words.next()?.as_bytes()).ok()?;
    Some(format!(
        "SHA256:{}",
        BASE64_NOPAD.encode(&Sha256::digest(&blob))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real ed25519 public key and the fingerprint `ssh-keygen -lf` printed.
    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBJEh6ANZVVpfKiWKKsTc3P/NahIFpGv92HfO/a7qU6Z";
    const FINGERPRINT: &str = "SHA256:ZXeNJ2kMqnliQsbrUX7NBvfQHO9nAIdbDu3DiZnx+Ms";

    #[test]
    fn the_ssh_key_identifies_the_device() {
        let info = format!("publickey {KEY}\n");
        let d = Device::identify(&info, "10.0.0.1").expect("device");
        assert_eq!(d.key, format!("ssh-key:{FINGERPRINT}"));
        assert_eq!(Device::describe(&d.key), format!("SSH key {FINGERPRINT}"));
    }

    #[test]
    fn without_a_key_the_literal_address_does() {
        assert_eq!(
            Device::identify("keyboard-interactive\n", "192.0.2.4"),
            Some(Device {
                key: "address:192.0.2.4".into()
            })
        );
        assert_eq!(Device::identify("", "host.example"), None);
        assert_eq!(Device::identify("publickey ssh-ed25519 !!!", ""), None);
    }
}
