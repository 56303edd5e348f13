//! The DNS checks of `rollcall doctor`: `helo_resolves`, `fcrdns`, `mail_from_domain`.
//!
//! Receiving servers check a client's names before its first RCPT: that the HELO name resolves
//! to the connecting address, that the address has reverse DNS which resolves forward again
//! (FCrDNS; Postfix `reject_unknown_client_hostname`, Gmail's "PTR record" requirement for
//! bulk senders), and that the sender's domain can receive mail (Postfix
//! `reject_unknown_sender_domain`). Each check asks DNS (async) and then judges the answers
//! with a pure function, which is what the tests exercise. Owns no output and no SMTP.

use std::fmt::Display;
use std::net::IpAddr;

use futures_util::future::join_all;
use rollcall_dns::{MxHost, MxResolver, Records};
use rollcall_engine::egress::Egress;

use super::finding::Finding;

/// PTR names followed forward, at most (an address rarely has more than one).
const MAX_PTR_NAMES: usize = 4;

/// MX hosts named in a detail, at most.
const SHOWN_MX: usize = 3;

pub(super) async fn helo_resolves(dns: &MxResolver, egress: &Egress, defaulted: bool) -> Finding {
    let answer = dns.addresses(&egress.helo).await;
    judge_helo(egress, &answer, defaulted)
}

pub(super) async fn fcrdns(dns: &MxResolver, egress: &Egress) -> Finding {
    let Some(ip) = egress.visible_address() else {
        return unknown_address(egress, "its reverse DNS cannot be checked");
    };
    let ptr = dns.reverse(ip).await;
    let forward = join_all(
        ptr.found()
            .iter()
            .take(MAX_PTR_NAMES)
            .map(|name| dns.addresses(name)),
    )
    .await;
    judge_fcrdns(ip, &egress.helo, &ptr, &forward)
}

pub(super) async fn mail_from_domain(dns: &MxResolver, egress: &Egress) -> Finding {
    let Some((_, domain)) = egress.mail_from.rsplit_once('@') else {
        return Finding::skip("null sender <>: no domain to check", None);
    };
    if domain.starts_with('[') {
        return Finding::skip(
            format!("the sender's domain {domain} is an address literal: nothing to look up"),
            None,
        );
    }
    let mx = dns.mx_records(domain).await;
    let addresses = match mx {
        Records::NoData => Some(dns.addresses(domain).await),
        _ => None,
    };
    judge_mail_from(domain, &mx, addresses.as_ref())
}

/// The SKIP of a check that needs the address servers see when the egress does not say it.
fn unknown_address(egress: &Egress, what: &str) -> Finding {
    let fix = if egress.proxy.is_some() {
        "set proxy_exit in this egress's [[egress]] table to the address the proxy's traffic \
         leaves from"
    } else {
        "give this egress its source address (--egress IP, or bind in its [[egress]] table) \
         so its names can be checked against it"
    };
    Finding::skip(
        format!(
            "the address servers see from egress `{}` is not known: {what}",
            egress.name
        ),
        Some(fix.to_string()),
    )
}

fn judge_helo(egress: &Egress, answer: &Records<IpAddr>, defaulted: bool) -> Finding {
    let helo = &egress.helo;
    let named = if defaulted {
        format!("HELO {helo} (a guess: no HELO name is configured)")
    } else {
        format!("HELO {helo}")
    };
    let resolves = match answer {
        Records::Found(addrs) => format!("{named} resolves to {}", list(addrs)),
        Records::NoData => format!("{named} has no A/AAAA record"),
        Records::NoSuchName => format!("{named} does not exist in DNS (NXDOMAIN)"),
        Records::TempFail { reason } => format!("{named}: DNS lookup failed: {reason}"),
    };
    let Some(ip) = egress.visible_address() else {
        return unknown_address(egress, &resolves);
    };
    if answer.found().contains(&ip) {
        return Finding::pass(format!("{resolves}, this egress's address"));
    }
    if let Records::TempFail { .. } = answer {
        return dns_failed(resolves);
    }
    let detail = match answer {
        Records::Found(_) => format!("{resolves}, not to this egress's address {ip}"),
        _ => format!("{resolves}; this egress's address is {ip}"),
    };
    let record = if ip.is_ipv4() { "A" } else { "AAAA" };
    Finding::fail(
        detail,
        format!(
            "publish {record} {helo} -> {ip}, or set this egress's HELO name (--helo, \
             identity.helo, helo in its [[egress]] table) to a name that resolves to {ip}; \
             servers refuse or greylist a client whose HELO name does not resolve to it"
        ),
    )
}

fn judge_fcrdns(
    ip: IpAddr,
    helo: &str,
    ptr: &Records<String>,
    forward: &[Records<IpAddr>],
) -> Finding {
    let ptr_fix = |what: &str| {
        format!(
            "ask whoever runs {ip} (the hosting provider, or the proxy's operator) to {what} \
             {helo}, and make {helo} resolve to {ip}; many servers refuse a client without \
             forward-confirmed reverse DNS"
        )
    };
    let names = match ptr {
        Records::Found(names) => names,
        Records::NoData => {
            return Finding::fail(
                format!("{ip} has no PTR record"),
                ptr_fix("set its PTR record to"),
            );
        }
        Records::NoSuchName => {
            return Finding::fail(
                format!("{ip} has no PTR record (NXDOMAIN)"),
                ptr_fix("set its PTR record to"),
            );
        }
        Records::TempFail { reason } => {
            return dns_failed(format!("PTR lookup of {ip} failed: {reason}"));
        }
    };
    let followed = names.iter().zip(forward);
    let confirmed: Vec<&String> = followed
        .clone()
        .filter(|(_, fwd)| fwd.found().contains(&ip))
        .map(|(name, _)| name)
        .collect();
    let helo_norm = helo.trim_end_matches('.').to_ascii_lowercase();
    if let Some(name) = confirmed
        .iter()
        .find(|n| ***n == helo_norm)
        .or(confirmed.first())
    {
        let chain = format!("{ip} -> PTR {name} -> {ip}");
        return if **name == helo_norm {
            Finding::pass(format!("{chain}; the PTR name is the HELO name"))
        } else {
            Finding::pass(format!(
                "{chain}; warning: the PTR name is not the HELO name {helo} (some servers \
                 compare them: set the HELO name to {name}, or the PTR to {helo})"
            ))
        };
    }
    let seen: Vec<String> = followed
        .map(|(name, fwd)| match fwd {
            Records::Found(addrs) => format!("{name} resolves to {}", list(addrs)),
            Records::NoData => format!("{name} has no A/AAAA record"),
            Records::NoSuchName => format!("{name} does not exist (NXDOMAIN)"),
            Records::TempFail { reason } => format!("{name}: lookup failed: {reason}"),
        })
        .collect();
    if forward.iter().any(Records::is_temporary) && forward.iter().all(|f| f.found().is_empty()) {
        return dns_failed(format!("{ip} -> PTR {}", seen.join("; ")));
    }
    Finding::fail(
        format!("{ip} -> PTR {}, not back to {ip}", seen.join("; ")),
        ptr_fix("point its PTR record at a name that resolves to it, ideally"),
    )
}

fn judge_mail_from(
    domain: &str,
    mx: &Records<MxHost>,
    addresses: Option<&Records<IpAddr>>,
) -> Finding {
    let sender_fix = |why: &str| {
        format!(
            "{why}, or use a sender at a domain that receives mail (--mail-from, \
             identity.mail_from, mail_from in the [[egress]] table); servers refuse a sender \
             whose domain cannot receive the bounce"
        )
    };
    match mx {
        Records::Found(hosts) => {
            let real: Vec<&MxHost> = hosts.iter().filter(|h| !h.name.is_empty()).collect();
            if real.is_empty() {
                return Finding::fail(
                    format!(
                        "{domain} publishes a null MX (RFC 7505): it accepts no mail, and \
                         servers refuse it as a sender (RFC 7505 4.2)"
                    ),
                    sender_fix(&format!("remove the null MX of {domain}")),
                );
            }
            let mut shown: Vec<String> = real
                .iter()
                .take(SHOWN_MX)
                .map(|h| format!("{} ({})", h.name, h.preference))
                .collect();
            if real.len() > SHOWN_MX {
                shown.push(format!("{} more", real.len() - SHOWN_MX));
            }
            Finding::pass(format!("{domain} has MX {}", shown.join(", ")))
        }
        Records::NoSuchName => Finding::fail(
            format!("{domain} does not exist in DNS (NXDOMAIN)"),
            sender_fix(&format!("register {domain} and publish its MX")),
        ),
        Records::TempFail { reason } => {
            dns_failed(format!("MX lookup of {domain} failed: {reason}"))
        }
        Records::NoData => match addresses {
            Some(Records::Found(addrs)) => Finding::pass(format!(
                "{domain} has no MX but A/AAAA {} (implicit MX, RFC 5321 5.1)",
                list(addrs)
            )),
            Some(Records::TempFail { reason }) => dns_failed(format!(
                "{domain} has no MX; A/AAAA lookup failed: {reason}"
            )),
            _ => Finding::fail(
                format!("{domain} has neither an MX nor an A/AAAA record"),
                sender_fix(&format!("publish an MX record for {domain}")),
            ),
        },
    }
}

/// A check that could not be judged because DNS did not answer.
fn dns_failed(detail: String) -> Finding {
    Finding::fail(
        detail,
        "check the DNS servers (--dns ADDR[:PORT], [dns] servers) and that they answer for \
         this name, then run doctor again",
    )
}

fn list<T: Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::finding::Status;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn bound(addr: &str, helo: &str) -> Egress {
        Egress::bound(ip(addr), helo, "probe@example.test")
    }

    fn found(addrs: &[&str]) -> Records<IpAddr> {
        Records::Found(addrs.iter().map(|a| ip(a)).collect())
    }

    #[test]
    fn helo_must_resolve_to_the_visible_address() {
        let a = bound("127.0.1.1", "a.prober.test");
        let pass = judge_helo(&a, &found(&["127.0.1.1", "::1"]), false);
        assert_eq!(pass.status, Status::Pass, "{pass:?}");
        assert!(
            pass.detail.contains("resolves to 127.0.1.1, ::1"),
            "{pass:?}"
        );

        let b = bound("127.0.1.2", "b.prober.test");
        let fail = judge_helo(&b, &found(&["127.0.9.9"]), false);
        assert_eq!(fail.status, Status::Fail);
        assert!(
            fail.detail
                .contains("resolves to 127.0.9.9, not to this egress's address 127.0.1.2"),
            "{fail:?}"
        );
        assert!(fail.fix.unwrap().contains("A b.prober.test -> 127.0.1.2"));

        let missing = judge_helo(&b, &Records::NoSuchName, true);
        assert_eq!(missing.status, Status::Fail);
        assert!(missing.detail.contains("NXDOMAIN") && missing.detail.contains("a guess"));
        let v6 = judge_helo(&bound("2001:db8::1", "c.test"), &Records::NoData, false);
        assert!(v6.fix.unwrap().contains("AAAA c.test -> 2001:db8::1"));
    }

    #[test]
    fn helo_is_skipped_without_a_visible_address() {
        let direct = Egress::direct("a.prober.test", "probe@example.test");
        let skip = judge_helo(&direct, &found(&["192.0.2.1"]), false);
        assert_eq!(skip.status, Status::Skip);
        assert!(skip.detail.contains("resolves to 192.0.2.1"), "{skip:?}");
        assert!(skip.fix.unwrap().contains("--egress IP"));
        let proxy = Egress {
            name: "p".into(),
            proxy: Some("socks5://192.0.2.9:1080".into()),
            ..direct
        };
        let skip = judge_helo(&proxy, &found(&["192.0.2.1"]), false);
        assert!(skip.fix.unwrap().contains("proxy_exit"));
        let exit = Egress {
            proxy_exit: Some(ip("192.0.2.1")),
            ..proxy
        };
        assert_eq!(
            judge_helo(&exit, &found(&["192.0.2.1"]), false).status,
            Status::Pass
        );
    }

    #[test]
    fn fcrdns_follows_the_ptr_forward() {
        let addr = ip("127.0.1.1");
        let ptr = |names: &[&str]| Records::Found(names.iter().map(|n| n.to_string()).collect());
        let same = judge_fcrdns(
            addr,
            "A.Prober.Test",
            &ptr(&["a.prober.test"]),
            &[found(&["127.0.1.1"])],
        );
        assert_eq!(same.status, Status::Pass);
        assert!(
            same.detail.contains("the PTR name is the HELO name"),
            "{same:?}"
        );

        let other = judge_fcrdns(
            addr,
            "helo.test",
            &ptr(&["host-1.isp.test"]),
            &[found(&["127.0.1.1"])],
        );
        assert_eq!(other.status, Status::Pass);
        assert!(other.detail.contains("warning"), "{other:?}");

        let unconfirmed = judge_fcrdns(
            addr,
            "helo.test",
            &ptr(&["x.test", "y.test"]),
            &[found(&["127.0.9.9"]), Records::NoSuchName],
        );
        assert_eq!(unconfirmed.status, Status::Fail);
        assert!(
            unconfirmed.detail.contains("x.test resolves to 127.0.9.9")
                && unconfirmed.detail.contains("y.test does not exist"),
            "{unconfirmed:?}"
        );

        let none = judge_fcrdns(addr, "helo.test", &Records::NoSuchName, &[]);
        assert_eq!(none.status, Status::Fail);
        assert!(none.detail.contains("no PTR record"));
        assert!(
            none.fix
                .unwrap()
                .contains("set its PTR record to helo.test")
        );

        let down = judge_fcrdns(
            addr,
            "helo.test",
            &Records::TempFail {
                reason: "timed out".into(),
            },
            &[],
        );
        assert_eq!(down.status, Status::Fail);
        assert!(down.fix.unwrap().contains("--dns"));
    }

    #[test]
    fn mail_from_domain_needs_mx_or_address() {
        let host = |name: &str, preference| MxHost {
            name: name.into(),
            preference,
        };
        let mx = judge_mail_from(
            "example.test",
            &Records::Found(vec![host("mx1.example.test", 10)]),
            None,
        );
        assert_eq!(mx.status, Status::Pass);
        assert_eq!(mx.detail, "example.test has MX mx1.example.test (10)");

        let null = judge_mail_from("example.test", &Records::Found(vec![host("", 0)]), None);
        assert_eq!(null.status, Status::Fail);
        assert!(null.detail.contains("null MX"));

        let implicit = judge_mail_from("a.test", &Records::NoData, Some(&found(&["192.0.2.1"])));
        assert_eq!(implicit.status, Status::Pass);
        assert!(implicit.detail.contains("implicit MX"));

        let nothing = judge_mail_from("a.test", &Records::NoData, Some(&Records::NoData));
        assert_eq!(nothing.status, Status::Fail);
        let gone = judge_mail_from("gone.test", &Records::NoSuchName, None);
        assert_eq!(gone.status, Status::Fail);
        assert!(gone.detail.contains("NXDOMAIN"));
    }
}
