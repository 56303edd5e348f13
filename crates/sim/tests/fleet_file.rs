//! Fleet files: the shipped examples parse, the example's truth covers every behaviour and
//! agrees with what its servers answer, generation is deterministic for a seed.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::Client;
use rollcall_sim::{FleetSpec, ROLE_WORDS, Reason, Scenario, SimOptions, Status};

const EXAMPLE: &str = include_str!("../fleets/example.toml");
const DEMO: &str = include_str!("../fleets/demo.toml");

/// Every scenario but accept-all, which only makes sense on hosts named like the provider's
/// (`fleets/providers.toml`): the example and the default generated mix leave it out.
fn without_accept_all() -> HashSet<Scenario> {
    Scenario::ALL
        .into_iter()
        .filter(|s| *s != Scenario::AcceptAll)
        .collect()
}

fn verdict(s: Status, r: Reason) -> String {
    let j = serde_json::to_string(&(s, r)).unwrap();
    j.replace(['[', ']', '"'], "").replace(',', "/")
}

#[tokio::test]
async fn the_example_truth_covers_every_behaviour() {
    let spec = FleetSpec::from_toml(EXAMPLE).unwrap();
    let f = rollcall_sim::start(&spec, SimOptions::default())
        .await
        .unwrap();
    assert_eq!(f.addresses().len(), f.truth().len());
    for (a, t) in f.addresses().iter().zip(f.truth()) {
        assert_eq!(a, &t.address);
    }
    let scenarios: HashSet<Scenario> = f.truth().iter().map(|t| t.behaviour).collect();
    assert_eq!(scenarios, without_accept_all(), "{scenarios:?}");

    let by: HashMap<&str, String> = f
        .truth()
        .iter()
        .map(|t| (t.address.as_str(), verdict(t.status, t.reason)))
        .collect();
    let expect = [
        ("alice.smith@normal.test", "deliverable/accepted"),
        ("bob.jones@normal.test", "risky/mailbox_full"),
        ("carol.white@normal.test", "undeliverable/mailbox_disabled"),
        ("nobody.here@normal.test", "undeliverable/mailbox_not_found"),
        ("anything.goes@catchall.test", "risky/catch_all"),
        ("erin.green@catchall.test", "risky/mailbox_full"),
        ("frank.black@greylist.test", "deliverable/accepted"),
        (
            "ghost.user@greylist.test",
            "undeliverable/mailbox_not_found",
        ),
        ("grace.hall@nullmx.test", "undeliverable/null_mx"),
        ("heidi.king@aonly.test", "deliverable/accepted"),
        ("judy.moss@nxdomain.test", "undeliverable/no_such_domain"),
        ("ken.lane@nomx.test", "undeliverable/no_mail_server"),
        ("liam.ford@blocked.test", "unknown/blocked"),
        ("mia.ross@listed.test", "unknown/blocked"),
        ("zoë.müller@legacy.test", "unknown/unverifiable"),
        ("paul.wood@gone.test", "unknown/connection_failed"),
        ("quinn.fox@half.test", "deliverable/accepted"),
        ("rosa.vale@half.test", "undeliverable/mailbox_not_found"),
    ];
    for (address, v) in expect {
        assert_eq!(by.get(address).map(String::as_str), Some(v), "{address}");
    }
    assert!(f.truth().iter().all(|t| t.deterministic));

    let mut jsonl = Vec::new();
    f.write_truth_jsonl(&mut jsonl).unwrap();
    let first = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(first.starts_with(r#"{"address":"#), "{first}");
    f.shutdown().await;
}

/// The oracle agrees with itself: every address whose domain has a live server gets, at
/// RCPT, the reply its truth row implies.
#[tokio::test]
async fn the_example_servers_answer_as_the_truth_says() {
    let spec = FleetSpec::from_toml(EXAMPLE).unwrap();
    let opts = SimOptions {
        greylist_delay: Some(Duration::ZERO),
        ..SimOptions::default()
    };
    let f = rollcall_sim::start(&spec, opts).await.unwrap();
    // Which live host serves which domain, from the example itself.
    let host_of = |domain: &str| match domain {
        "normal.test" | "catchall.test" | "greylist.test" | "blocked.test" => {
            Some("mx1.alpha.test")
        }
        "legacy.test" => Some("mx.legacy.test"),
        "listed.test" => Some("mx.listed.test"),
        "half.test" | "aonly.test" => Some("mx2.half.test"),
        _ => None,
    };
    let mut probed = 0;
    for t in f.truth() {
        let (local, domain) = t.address.rsplit_once('@').unwrap();
        let Some(host) = host_of(domain) else {
            continue;
        };
        if !local.is_ascii() {
            continue;
        }
        let mut c = Client::greeted(f.host_addr(host).unwrap()).await;
        c.cmd("EHLO probe.test").await;
        assert_eq!(c.cmd("MAIL FROM:<p@probe.test>").await, "250 2.1.0 Ok");
        let r = c.cmd(&format!("RCPT TO:<{}>", t.address)).await;
        let code = &r[..3];
        let want = match t.reason {
            Reason::Accepted | Reason::CatchAll | Reason::RoleAccount => "250",
            Reason::MailboxNotFound | Reason::MailboxDisabled | Reason::Blocked => "550",
            Reason::MailboxFull => "452",
            other => panic!("{other:?} for a served address"),
        };
        assert_eq!(code, want, "{}: {r}", t.address);
        probed += 1;
    }
    assert!(probed >= 15, "{probed}");
    assert_eq!(f.counters().totals.replies_503, 0);
}

fn small_generated(seed: u64) -> String {
    format!(
        r#"
[fleet]
address_base = "127.22.0.0"
[generate]
seed = {seed}
domains = 200
addresses = 5000
sites = 8
greylist_delay_ms = 2000
"#
    )
}

#[tokio::test]
async fn generation_is_deterministic_for_a_seed() {
    let a = rollcall_sim::start(
        &FleetSpec::from_toml(&small_generated(5)).unwrap(),
        SimOptions::default(),
    )
    .await
    .unwrap();
    let b = rollcall_sim::start(
        &FleetSpec::from_toml(&small_generated(5)).unwrap(),
        SimOptions::default(),
    )
    .await
    .unwrap();
    let c = rollcall_sim::start(
        &FleetSpec::from_toml(&small_generated(6)).unwrap(),
        SimOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(a.addresses().len(), 5000);
    assert_eq!(a.addresses(), b.addresses());
    assert_eq!(a.truth(), b.truth());
    assert_ne!(a.addresses(), c.addresses());
    assert_eq!(a.greylist_delay(), Duration::from_secs(2));
    let names: Vec<_> = a
        .hosts()
        .into_iter()
        .map(|h| (h.name, h.addr.ip()))
        .collect();
    let names_b: Vec<_> = b
        .hosts()
        .into_iter()
        .map(|h| (h.name, h.addr.ip()))
        .collect();
    assert_eq!(names, names_b);

    // People, not roles; domains under .test; every scenario present.
    let mut scenarios = HashSet::new();
    for t in a.truth() {
        let (local, domain) = t.address.rsplit_once('@').unwrap();
        assert!(domain.ends_with(".test"), "{domain}");
        assert!(!ROLE_WORDS.contains(&local), "{local}");
        scenarios.insert(t.behaviour);
    }
    assert_eq!(scenarios, without_accept_all(), "{scenarios:?}");
}

#[test]
fn the_demo_fleet_parses_with_its_promised_size() {
    let spec = FleetSpec::from_toml(DEMO).unwrap();
    let g = spec.generate.as_ref().unwrap();
    assert_eq!(g.addresses, 100_000);
    assert_eq!(g.domains, 2_000);
    assert_eq!(g.sites, 50);
    assert!(g.greylist_delay_ms.unwrap() <= 10_000);
    let w = &g.mix;
    for f in [
        w.normal,
        w.catch_all,
        w.greylist,
        w.null_mx,
        w.a_only,
        w.nxdomain,
        w.no_mx,
        w.blocked,
        w.mx_down,
        w.mx_backup,
    ] {
        assert!(f > 0.0);
    }
}

#[test]
fn bad_fleet_files_are_clear_errors() {
    let e = FleetSpec::from_toml("[fleet]\nbogus = 1\n").unwrap_err();
    assert!(e.is_spec() && e.to_string().contains("bogus"), "{e}");
    let e = FleetSpec::from_toml(
        "[[site]]\nname = \"s\"\nmx = [{ host = \"nope\", preference = 1 }]\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown host `nope`"), "{e}");
    let e = FleetSpec::from_toml("[[host]]\nname = \"h\"\naddress = \"10.0.0.1\"\n").unwrap_err();
    assert!(e.to_string().contains("127.0.0.0/8"), "{e}");
    let e = FleetSpec::from_toml("[[domain]]\nname = \"d.test\"\n").unwrap_err();
    assert!(e.to_string().contains("needs a site"), "{e}");
}

#[test]
fn the_readme_shows_the_example_fleet_verbatim() {
    let readme = include_str!("../README.md");
    assert!(readme.contains(EXAMPLE));
}
