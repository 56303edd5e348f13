//! MxResolver against a real DNS server (hickory-server on loopback). Every query goes to
//! 127.0.0.1; the addresses in the zone are only resolved, never contacted.

mod fake_dns;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use fake_dns::{FakeDns, SilentDns, fqdn, huge_mx_host};
use futures_util::future::join_all;
use hickory_proto::rr::RecordType;
use rollcall_dns::{AnswerSource, Error, MxResolver, MxTarget, Resolution, ResolverConfig};

fn config(dns: &FakeDns) -> ResolverConfig {
    ResolverConfig {
        nameservers: vec![dns.addr],
        timeout: Duration::from_secs(2),
        attempts: 2,
        rng_seed: Some(42),
        ..ResolverConfig::default()
    }
}

fn resolver(dns: &FakeDns) -> MxResolver {
    MxResolver::new(config(dns)).unwrap()
}

fn permissive(dns: &FakeDns) -> MxResolver {
    MxResolver::new(ResolverConfig {
        allow_private_targets: true,
        ..config(dns)
    })
    .unwrap()
}

fn domain(name: &str) -> String {
    fqdn(name).trim_end_matches('.').to_string()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn target(name: &str, preference: u16, addrs: &[&str]) -> MxTarget {
    MxTarget {
        name: domain(name),
        preference,
        addrs: ips(addrs),
    }
}

fn host_names(resolution: &Resolution) -> Vec<String> {
    resolution.hosts().iter().map(|h| h.name.clone()).collect()
}

#[tokio::test]
async fn hosts_come_in_preference_order_with_their_addresses() {
    let dns = FakeDns::start().await;
    let got = resolver(&dns).resolve(&domain("prefs")).await;
    assert_eq!(
        got,
        Resolution::Mail {
            hosts: vec![
                target("mx-a.prefs", 10, &["1.2.3.10"]),
                target("mx-b.prefs", 20, &["1.2.3.20", "2a00:1450:4001::20"]),
                target("mx-c.prefs", 30, &["1.2.3.30"]),
            ],
            implicit: false,
        }
    );
}

#[tokio::test]
async fn equal_preferences_are_shuffled_reproducibly_per_seed() {
    let dns = FakeDns::start().await;
    let mut orders = HashSet::new();
    for seed in 0..8 {
        let cfg = ResolverConfig {
            rng_seed: Some(seed),
            ..config(&dns)
        };
        let a = MxResolver::new(cfg.clone()).unwrap();
        let b = MxResolver::new(cfg).unwrap();
        let first = host_names(&a.resolve(&domain("equal")).await);
        let again = host_names(&b.resolve(&domain("equal")).await);
        assert_eq!(first, again, "seed {seed}");
        assert_eq!(first.len(), 6);
        assert_eq!(first[0], domain("first.equal"));
        let mut tail = first[1..].to_vec();
        tail.sort();
        let expected: Vec<String> = ["e1", "e2", "e3", "e4", "e5"]
            .iter()
            .map(|h| domain(&format!("{h}.equal")))
            .collect();
        assert_eq!(tail, expected);
        orders.insert(first);
    }
    assert!(orders.len() > 1, "order never varied with the seed");
}

#[tokio::test]
async fn null_mx_is_reported() {
    let dns = FakeDns::start().await;
    assert_eq!(
        resolver(&dns).resolve(&domain("nullmx")).await,
        Resolution::NullMx
    );
}

#[tokio::test]
async fn root_target_next_to_a_real_mx_is_ignored() {
    let dns = FakeDns::start().await;
    assert_eq!(
        resolver(&dns).resolve(&domain("dotmix")).await,
        Resolution::Mail {
            hosts: vec![target("mx.dotmix", 10, &["1.2.5.1"])],
            implicit: false
        }
    );
}

#[tokio::test]
async fn address_only_domain_is_its_own_implicit_mx() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    assert_eq!(
        r.resolve(&domain("aonly")).await,
        Resolution::Mail {
            hosts: vec![target("aonly", 0, &["1.2.6.1"])],
            implicit: true
        }
    );
    assert_eq!(
        r.resolve(&domain("aaaaonly")).await,
        Resolution::Mail {
            hosts: vec![target("aaaaonly", 0, &["2606:4700::6"])],
            implicit: true
        }
    );
}

#[tokio::test]
async fn nxdomain_is_no_such_domain() {
    let dns = FakeDns::start().await;
    assert_eq!(
        resolver(&dns).resolve(&domain("nosuch")).await,
        Resolution::NoSuchDomain
    );
}

#[tokio::test]
async fn neither_mx_nor_address_is_no_mail_server() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    assert_eq!(r.resolve(&domain("nodata")).await, Resolution::NoMailServer);
    // The implicit-MX fallback asked for the domain's own addresses.
    assert_eq!(dns.count("nodata", RecordType::A), 1);
}

#[tokio::test]
async fn mx_host_without_address_is_skipped_for_its_backup() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    assert_eq!(
        r.resolve(&domain("deadmx")).await,
        Resolution::Mail {
            hosts: vec![target("backup.deadmx", 20, &["1.2.7.1"])],
            implicit: false
        }
    );
    assert_eq!(
        r.resolve(&domain("allmissing")).await,
        Resolution::NoMailServer
    );
}

#[tokio::test]
async fn loopback_targets_mean_no_mail_server_unless_private_targets_are_allowed() {
    let dns = FakeDns::start().await;
    assert_eq!(
        resolver(&dns).resolve(&domain("loop")).await,
        Resolution::NoMailServer
    );
    assert_eq!(
        resolver(&dns).resolve(&domain("unspecified")).await,
        Resolution::NoMailServer
    );
    // hickory answers `localhost.` itself with 127.0.0.1 and ::1.
    assert_eq!(
        resolver(&dns).resolve(&domain("tolocalhost")).await,
        Resolution::NoMailServer
    );
    assert_eq!(
        permissive(&dns).resolve(&domain("loop")).await,
        Resolution::Mail {
            hosts: vec![target("mx.loop", 10, &["127.0.0.1", "::1"])],
            implicit: false
        }
    );
}

#[tokio::test]
async fn private_targets_are_forbidden_unless_allowed() {
    let dns = FakeDns::start().await;
    assert_eq!(
        resolver(&dns).resolve(&domain("private")).await,
        Resolution::ForbiddenTarget
    );
    assert_eq!(
        permissive(&dns).resolve(&domain("private")).await,
        Resolution::Mail {
            hosts: vec![
                target("mx10.private", 10, &["10.1.2.3"]),
                target("mx192.private", 20, &["192.168.1.1"]),
            ],
            implicit: false
        }
    );
    // A private primary is dropped; the public backup stays.
    assert_eq!(
        resolver(&dns).resolve(&domain("mixed")).await,
        Resolution::Mail {
            hosts: vec![target("outside.mixed", 20, &["1.2.8.1"])],
            implicit: false
        }
    );
}

#[tokio::test]
async fn servfail_is_a_temporary_failure_after_the_configured_attempts_and_not_cached() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    let name = domain("servfail-domain");
    for round in 1..=2 {
        let got = r.resolve(&name).await;
        assert!(got.is_temporary(), "{got:?}");
        // attempts = 2: each call asks twice; nothing was cached in between.
        assert_eq!(dns.count("servfail-domain", RecordType::MX), 2 * round);
    }
    let stats = r.stats();
    assert_eq!(stats.temp_failures, 2);
    assert_eq!(stats.cache_hits, 0);
}

#[tokio::test]
async fn failing_mx_host_lookup_is_temporary_unless_a_backup_answers() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    let got = r.resolve(&domain("tempmx")).await;
    assert!(got.is_temporary(), "{got:?}");
    // The backup is used, but the answer is not cached: the primary may be back soon.
    let expected = Resolution::Mail {
        hosts: vec![target("backup.partial", 20, &["1.2.9.1"])],
        implicit: false,
    };
    assert_eq!(r.resolve(&domain("partial")).await, expected);
    assert_eq!(r.resolve(&domain("partial")).await, expected);
    let stats = r.stats();
    assert_eq!((stats.lookups, stats.cache_hits), (3, 0));
    // Two calls, two attempts each, for the failing host.
    assert_eq!(dns.count("servfail-primary.partial", RecordType::A), 4);
}

#[tokio::test]
async fn refused_is_a_temporary_failure() {
    let dns = FakeDns::start().await;
    // Outside the served zone: hickory-server answers REFUSED. (Not `.invalid`: hickory
    // answers RFC 6761 special-use names itself, NXDOMAIN without asking.)
    let got = resolver(&dns).resolve("outside.example").await;
    assert!(got.is_temporary(), "{got:?}");
}

#[tokio::test]
async fn silent_nameserver_times_out_into_a_temporary_failure_after_retries() {
    let silent = SilentDns::start().await;
    let r = MxResolver::new(ResolverConfig {
        nameservers: vec![silent.addr],
        timeout: Duration::from_millis(200),
        attempts: 3,
        ..ResolverConfig::default()
    })
    .unwrap();
    let got = r.resolve("example.test").await;
    let Resolution::TempFail { reason } = &got else {
        panic!("expected TempFail, got {got:?}");
    };
    assert!(reason.contains("example.test"), "{reason}");
    assert!(
        silent.received() >= 3,
        "only {} queries sent",
        silent.received()
    );
}

#[tokio::test]
async fn second_call_is_answered_from_the_cache() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    let first = r.resolve_detailed(&domain("prefs")).await;
    let second = r.resolve_detailed(&domain("PREFS.rollcall.test.")).await;
    assert_eq!(first.source, AnswerSource::Lookup);
    assert_eq!(second.source, AnswerSource::Cache);
    assert_eq!(first.resolution, second.resolution);
    assert_eq!(dns.count("prefs", RecordType::MX), 1);
    assert_eq!(dns.count("mx-a.prefs", RecordType::A), 1);
    let stats = r.stats();
    assert_eq!((stats.resolves, stats.lookups, stats.cache_hits), (2, 1, 1));
    assert_eq!(stats.cached_domains, 1);
}

#[tokio::test]
async fn negative_answers_are_cached_too() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    for _ in 0..3 {
        assert_eq!(r.resolve(&domain("nosuch")).await, Resolution::NoSuchDomain);
        assert_eq!(r.resolve(&domain("nullmx")).await, Resolution::NullMx);
    }
    assert_eq!(dns.count("nosuch", RecordType::MX), 1);
    assert_eq!(dns.count("nullmx", RecordType::MX), 1);
    assert_eq!(r.stats().cache_hits, 4);
}

#[tokio::test]
async fn concurrent_calls_for_one_domain_share_one_lookup() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    let name = domain("prefs");
    let calls = (0..16).map(|_| r.resolve_detailed(&name));
    let answers = join_all(calls).await;
    assert_eq!(dns.count("prefs", RecordType::MX), 1);
    assert_eq!(dns.count("mx-b.prefs", RecordType::AAAA), 1);
    let sources: Vec<AnswerSource> = answers.iter().map(|a| a.source).collect();
    assert_eq!(
        sources
            .iter()
            .filter(|s| **s == AnswerSource::Lookup)
            .count(),
        1
    );
    assert!(
        answers
            .iter()
            .all(|a| a.resolution == answers[0].resolution)
    );
    assert_eq!(host_names(&answers[0].resolution).len(), 3);
    let stats = r.stats();
    assert_eq!(stats.lookups, 1);
    assert_eq!(stats.single_flight_joins + stats.cache_hits, 15);
}

#[tokio::test]
async fn lookups_in_flight_are_bounded() {
    let dns = FakeDns::start().await;
    let r = MxResolver::new(ResolverConfig {
        max_in_flight: 1,
        allow_private_targets: true,
        ..config(&dns)
    })
    .unwrap();
    let names: Vec<String> = (0..4).map(|i| domain(&format!("slow{i}"))).collect();
    let answers = join_all(names.iter().map(|n| r.resolve(n))).await;
    for (name, answer) in names.iter().zip(&answers) {
        assert_eq!(host_names(answer), [format!("mx.{name}")]);
    }
    assert_eq!(dns.max_concurrent_slow(), 1);
    assert_eq!(r.stats().lookups, 4);
}

#[tokio::test]
async fn names_are_normalised() {
    let dns = FakeDns::start().await;
    let got = resolver(&dns).resolve("MixedCase.ROLLCALL.test.").await;
    assert_eq!(
        got,
        Resolution::Mail {
            hosts: vec![target("mx1.mixedcase", 10, &["1.2.10.1"])],
            implicit: false
        }
    );
}

#[tokio::test]
async fn strings_that_cannot_be_domains_are_no_such_domain_without_a_query() {
    let dns = FakeDns::start().await;
    let r = resolver(&dns);
    for bad in ["", ".", "with space.test", "b\u{fc}cher.test", "a..b.test"] {
        assert_eq!(r.resolve(bad).await, Resolution::NoSuchDomain, "{bad:?}");
    }
    assert_eq!(r.stats().lookups, 0);
}

#[test]
fn bad_settings_fail_construction_with_the_setting_named() {
    let err = MxResolver::new(ResolverConfig {
        nameservers: vec!["127.0.0.1:53".parse().unwrap()],
        attempts: 0,
        ..ResolverConfig::default()
    })
    .unwrap_err();
    assert!(err.is_invalid_config());
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                setting: "attempts",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn system_configuration_builds_outside_a_runtime_without_sending_anything() {
    // Only reads /etc/resolv.conf; no query is sent (the system's nameserver may be anywhere).
    let listed = std::fs::read_to_string("/etc/resolv.conf").is_ok_and(|conf| {
        conf.lines()
            .any(|l| l.trim_start().starts_with("nameserver"))
    });
    match MxResolver::new(ResolverConfig::default()) {
        Ok(r) => assert_eq!(r.stats().lookups, 0),
        Err(err) => assert!(!listed, "resolv.conf lists a nameserver, yet: {err}"),
    }
}

#[tokio::test]
async fn mx_answer_truncated_even_over_tcp_is_used_as_far_as_it_goes() {
    // 1,200 MX records do not fit in 65,535 bytes: the server sends what fits with TC set,
    // over UDP and again over TCP. That partial list is still the domain's own: sorted and
    // probed, not a temporary failure.
    let dns = FakeDns::start_with_oversized_answers().await;
    let got = resolver(&dns).resolve(&domain("huge")).await;
    assert!(!got.is_temporary(), "{got:?}");
    let hosts = got.hosts();
    assert_eq!(hosts.len(), rollcall_dns::MAX_MX_HOSTS);
    // The zone lists them in preference order, so the best ten all fit.
    for (i, host) in hosts.iter().enumerate() {
        assert_eq!(host.name, domain(&huge_mx_host(i)));
        assert_eq!(host.preference, i as u16);
        assert_eq!(host.addrs, ips(&["1.2.11.1"]));
    }
    assert!(dns.count("huge", RecordType::MX) >= 2);
}

#[tokio::test]
async fn address_answer_truncated_even_over_tcp_is_used_and_bounded() {
    let dns = FakeDns::start_with_oversized_answers().await;
    let got = resolver(&dns).resolve(&domain("wide")).await;
    let hosts = got.hosts();
    assert_eq!(hosts.len(), 1, "{got:?}");
    assert_eq!(hosts[0].addrs.len(), rollcall_dns::MAX_ADDRS_PER_HOST);
    let distinct: HashSet<_> = hosts[0].addrs.iter().collect();
    assert_eq!(distinct.len(), hosts[0].addrs.len());
}

#[tokio::test]
async fn addresses_per_mx_host_are_bounded() {
    // 40 A records for one host: a hostile zone must not make a worker try 40 (or 4,000)
    // addresses for one host.
    let dns = FakeDns::start().await;
    let got = resolver(&dns).resolve(&domain("many")).await;
    let hosts = got.hosts();
    assert_eq!(hosts.len(), 1, "{got:?}");
    assert_eq!(hosts[0].addrs.len(), rollcall_dns::MAX_ADDRS_PER_HOST);
}
