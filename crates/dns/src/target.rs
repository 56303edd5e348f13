//! Target policy: which addresses an MX (or implicit MX) may point at before we connect.
//!
//! Owns the classification of IP addresses ([`classify_target`]) and the filter that turns a
//! list of resolved MX hosts into a [`Resolution`] ([`TargetPolicy::apply`]). Pure: no DNS, no
//! I/O. It does not decide what a verdict is; the engine maps the outcome.
//!
//! Why: a verifier that connects wherever an MX points can be made to scan a private network
//! (SSRF). Loopback and unspecified targets mean mail cannot arrive anywhere (RFC 7505 2 notes
//! that such tricks were used before null MX existed); private and special-purpose ranges are
//! refused unless the operator allows them (labs, tests, the demo's simulator).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::resolution::{MxTarget, Resolution};

/// What an address is as a mail target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetClass {
    /// A globally reachable unicast address.
    Public,
    /// Loopback or unspecified (0.0.0.0/8, 127.0.0.0/8, ::, ::1): mail sent there never leaves
    /// the sender, so the domain has no mail server.
    Unusable,
    /// Private or special-purpose (RFC 1918, CGNAT, link-local, unique-local, documentation,
    /// benchmarking, multicast, reserved...): refused unless private targets are allowed.
    Private,
}

/// Classifies one address (see [`TargetClass`]). IPv4-mapped, NAT64 (RFC 6052) and 6to4
/// (RFC 3056) IPv6 addresses are classified by the IPv4 address they embed.
pub fn classify_target(ip: IpAddr) -> TargetClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> TargetClass {
    let [a, b, c, _] = ip.octets();
    // RFC 1122 3.2.1.3: 0/8 is "this host on this network", never a destination.
    if a == 0 || ip.is_loopback() {
        return TargetClass::Unusable;
    }
    // RFC 6890 / the IANA IPv4 special-purpose registry.
    let special = a == 10                                  // RFC 1918
        || (a == 100 && (b & 0xc0) == 64)                  // 100.64/10, RFC 6598 CGNAT
        || (a == 169 && b == 254)                          // link-local, RFC 3927
        || (a == 172 && (b & 0xf0) == 16)                  // RFC 1918
        || (a == 192 && b == 0 && c == 0)                  // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                  // TEST-NET-1, RFC 5737
        || (a == 192 && b == 88 && c == 99)                // 6to4 relay anycast, RFC 7526
        || (a == 192 && b == 168)                          // RFC 1918
        || (a == 198 && (b & 0xfe) == 18)                  // benchmarking, RFC 2544
        || (a == 198 && b == 51 && c == 100)               // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)                // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    if special {
        TargetClass::Private
    } else {
        TargetClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> TargetClass {
    if ip.is_unspecified() || ip.is_loopback() {
        return TargetClass::Unusable;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // RFC 6052 2.1: the NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return classify_v4(embedded(s[6], s[7]));
    }
    // RFC 3056 2: 6to4 2002:V4ADDR::/48 reaches the embedded IPv4 address.
    if s[0] == 0x2002 {
        return classify_v4(embedded(s[1], s[2]));
    }
    // RFC 4291 2.4: only 2000::/3 is global unicast; everything else (::/96 IPv4-compatible,
    // 100::/64 discard, fc00::/7 unique-local, fe80::/10 link-local, ff00::/8 multicast...) is
    // special.
    if s[0] & 0xe000 != 0x2000 {
        return TargetClass::Private;
    }
    let special = match s[0] {
        // 2001::/23 IETF protocol assignments (Teredo, ORCHID, benchmarking...) and
        // 2001:db8::/32 documentation (RFC 3849).
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // 3fff::/20 documentation (RFC 9637).
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    if special {
        TargetClass::Private
    } else {
        TargetClass::Public
    }
}

/// Which targets the verifier may connect to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback and private/special-purpose targets (labs, tests, the demo's simulator).
    pub allow_private: bool,
}

impl TargetPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow_private || classify_target(ip) == TargetClass::Public
    }

    /// Drops the addresses this policy does not permit, then the hosts left without any.
    ///
    /// Nothing left: [`Resolution::ForbiddenTarget`] if some dropped address was private,
    /// [`Resolution::NoMailServer`] if all were unusable (loopback/unspecified) or there were no
    /// hosts at all. Host order is kept.
    pub fn apply(&self, hosts: Vec<MxTarget>, implicit: bool) -> Resolution {
        let mut saw_private = false;
        let kept: Vec<MxTarget> = hosts
            .into_iter()
            .filter_map(|mut host| {
                host.addrs.retain(|&ip| {
                    let permitted = self.permits(ip);
                    if !permitted && classify_target(ip) == TargetClass::Private {
                        saw_private = true;
                    }
                    permitted
                });
                (!host.addrs.is_empty()).then_some(host)
            })
            .collect();
        if !kept.is_empty() {
            Resolution::Mail {
                hosts: kept,
                implicit,
            }
        } else if saw_private {
            Resolution::ForbiddenTarget
        } else {
            Resolution::NoMailServer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> TargetClass {
        classify_target(s.parse().unwrap())
    }

    #[test]
    fn loopback_and_unspecified_are_unusable() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.0.9",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.0",
            "64:ff9b::7f00:1",
        ] {
            assert_eq!(class(ip), TargetClass::Unusable, "{ip}");
        }
    }

    #[test]
    fn special_purpose_ranges_are_private() {
        for ip in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::10.0.0.1",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2001:10::1",
            "3fff::1",
            "::ffff:10.1.2.3",
            "::ffff:192.168.0.1",
            "::ffff:169.254.1.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:c0a8:0101::1",
        ] {
            assert_eq!(class(ip), TargetClass::Private, "{ip}");
        }
    }

    #[test]
    fn global_unicast_is_public() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.3.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2a00:1450:4001::1b",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.4.4",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(class(ip), TargetClass::Public, "{ip}");
        }
    }

    fn host(name: &str, pref: u16, addrs: &[&str]) -> MxTarget {
        MxTarget {
            name: name.into(),
            preference: pref,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn apply_drops_refused_addresses_and_empty_hosts() {
        let strict = TargetPolicy::default();
        let hosts = vec![
            host("a", 10, &["10.0.0.1"]),
            host("b", 20, &["127.0.0.1", "1.2.3.4"]),
        ];
        assert_eq!(
            strict.apply(hosts.clone(), false),
            Resolution::Mail {
                hosts: vec![host("b", 20, &["1.2.3.4"])],
                implicit: false
            }
        );
        let open = TargetPolicy {
            allow_private: true,
        };
        assert_eq!(
            open.apply(hosts.clone(), true),
            Resolution::Mail {
                hosts,
                implicit: true
            }
        );
    }

    #[test]
    fn apply_reports_why_nothing_is_left() {
        let strict = TargetPolicy::default();
        let unusable = vec![
            host("a", 0, &["127.0.0.1", "::1"]),
            host("b", 5, &["0.0.0.0"]),
        ];
        assert_eq!(strict.apply(unusable, false), Resolution::NoMailServer);
        let private = vec![host("a", 0, &["10.1.1.1"]), host("b", 5, &["192.168.0.1"])];
        assert_eq!(strict.apply(private, false), Resolution::ForbiddenTarget);
        let both = vec![host("a", 0, &["127.0.0.1"]), host("b", 5, &["172.16.0.1"])];
        assert_eq!(strict.apply(both, false), Resolution::ForbiddenTarget);
        assert_eq!(strict.apply(Vec::new(), false), Resolution::NoMailServer);
    }
}
