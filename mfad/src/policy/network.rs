//! Address/netmask rules, IPv4 and IPv6. Only a literal address matches: a
//! host name in `PAM_RHOST` is whatever DNS (or the client) said, never
//! proof of where a login comes from.

use std::fmt;
use std::net::IpAddr;

/// A network in CIDR form; a bare address is a /32 (or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Result<Network, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{addr_text:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length {p:?} must be 0 to {max}"))?,
        };
        let network = Network { addr, prefix }.unmapped()?;
        if network.masked() != network.addr {
            return Err(format!(
                "{text} has bits set past its /{prefix} prefix; the network is {}/{prefix}",
                Network {
                    addr: network.masked(),
                    ..network
                }
                .mapped_like(addr)
            ));
        }
        Ok(network)
    }

    /// An IPv4-mapped network (`::ffff:192.0.2.0/120`) as the IPv4 network
    /// it means (`192.0.2.0/24`): login addresses are compared as IPv4, so a
    /// rule kept in its mapped form could never match.
    fn unmapped(self) -> Result<Network, String> {
        let IpAddr::V6(v6) = self.addr else {
            return Ok(self);
        };
        let Some(v4) = v6.to_ipv4_mapped() else {
            return Ok(self);
        };
        if self.prefix < 96 {
            return Err(format!(
                "{}/{} mixes IPv4-mapped and other IPv6 addresses; write the IPv4 network (e.g. {v4}/{}) and the IPv6 one as separate rules",
                self.addr,
                self.prefix,
                self.prefix.saturating_sub(96)
            ));
        }
        Ok(Network {
            addr: IpAddr::V4(v4),
            prefix: self.prefix - 96,
        })
    }

    /// This network written the way `original` was (mapped or not), for
    /// error messages.
    fn mapped_like(self, original: IpAddr) -> String {
        match (original, self.addr) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => {
                format!("{}/{}", v4.to_ipv6_mapped(), u32::from(self.prefix) + 96)
            }
            _ => self.to_string(),
        }
    }

    fn masked(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = unmapped(addr);
        if addr.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        Network { addr, ..*self }.masked() == self.addr
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `rhost` as an address if it is written as one; a host name is `None`.
pub fn literal_address(rhost: &str) -> Option<IpAddr> {
    rhost.parse::<IpAddr>().ok().map(unmapped)
}

/// An IPv4 client on a dual-stack socket shows up as `::ffff:a.b.c.d`.
fn unmapped(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        literal_address(s).expect("literal")
    }

    #[test]
    fn ipv4_networks_contain_their_addresses_only() {
        let n = Network::parse("10.1.0.0/16").expect("parses");
        assert!(n.contains(ip("10.1.0.0")));
        assert!(n.contains(ip("10.1.255.255")));
        assert!(!n.contains(ip("10.2.0.0")));
        assert!(!n.contains(ip("::1")));
        let host = Network::parse("127.0.0.2").expect("parses");
        assert!(host.contains(ip("127.0.0.2")));
        assert!(!host.contains(ip("127.0.0.3")));
        let all = Network::parse("0.0.0.0/0").expect("parses");
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv6_networks_and_mapped_ipv4_clients() {
        let n = Network::parse("2001:db8::/32").expect("parses");
        assert!(n.contains(ip("2001:db8:ffff::1")));
        assert!(!n.contains(ip("2001:db9::1")));
        let v4 = Network::parse("192.0.2.0/24").expect("parses");
        assert!(v4.contains(ip("::ffff:192.0.2.7")));
    }

    #[test]
    fn ipv4_mapped_networks_are_the_ipv4_networks_they_mean() {
        let n = Network::parse("::ffff:192.0.2.0/120").expect("parses");
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert!(n.contains(ip("192.0.2.7")));
        assert!(n.contains(ip("::ffff:192.0.2.7")));
        assert!(!n.contains(ip("192.0.3.7")));
        let host = Network::parse("::ffff:10.0.0.1").expect("parses");
        assert_eq!(host.to_string(), "10.0.0.1/32");
        assert!(host.contains(ip("10.0.0.1")));
        let err = Network::parse("::ffff:0:0/95").expect_err("mixed");
        assert!(err.contains("IPv4-mapped"), "{err}");
        let err = Network::parse("::ffff:192.0.2.1/120").expect_err("host bits");
        assert!(err.contains("::ffff:192.0.2.0/120"), "{err}");
    }

    #[test]
    fn bad_networks_say_what_is_wrong() {
        for (text, says) in [
            ("10.0.0.1/8", "10.0.0.0/8"),
            ("10.0.0.0/33", "0 to 32"),
            ("fe80::/129", "0 to 128"),
            ("example.com", "not an IPv4 or IPv6 address"),
            ("10.0.0.0/", "prefix length"),
            ("", "not an IPv4"),
        ] {
            let err = Network::parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn host_names_are_never_literal_addresses() {
        for rhost in [
            "localhost",
            "10.0.0.1.example.com",
            "",
            "10.0.0.1 ",
            "fe80::1%eth0",
        ] {
            assert_eq!(literal_address(rhost), None, "{rhost:?}");
        }
    }
}
