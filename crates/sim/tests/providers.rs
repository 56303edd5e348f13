//! Real providers played by the fleet (`fleets/providers.toml`): each provider profile answers
//! with its own texts (unknown, disabled, block, rate, one RCPT per transaction, accept-all),
//! the truth of accept-all domains and the `exists` field, and the same provider part inside
//! `fleets/demo.toml`.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;

use common::{Client, fleet};
use rollcall_sim::{Fleet, FleetSpec, Reason, Scenario, SimOptions, Status, TruthRow};

const PROVIDERS: &str = include_str!("../fleets/providers.toml");
const DEMO: &str = include_str!("../fleets/demo.toml");
const EXAMPLE: &str = include_str!("../fleets/example.toml");

const YAHOO: &str = "mta5.am0.yahoodns.net";
const OUTLOOK: &str = "outlook-com.olc.protection.outlook.com";
const TENANT_A: &str = "tenant-a-test.mail.protection.outlook.com";
const TENANT_B: &str = "tenant-b-test.mail.protection.outlook.com";
const GOOGLE: &str = "aspmx.l.google.com";
const ICLOUD: &str = "mx01.mail.icloud.com";
const THROTTLING: &str = "mx.tenant-c.test";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A session at `host` with a transaction open (EHLO and MAIL accepted).
async fn transaction(f: &Fleet, host: &str) -> Client {
    let mut c = Client::greeted_from(ip("127.0.0.2"), f.host_addr(host).unwrap()).await;
    assert!(c.cmd("EHLO probe.test").await.starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<p@probe.test>").await, "250 2.1.0 Ok");
    c
}

async fn rcpt(c: &mut Client, address: &str) -> String {
    c.cmd(&format!("RCPT TO:<{address}>")).await
}

fn truth_of<'a>(f: &'a Fleet, address: &str) -> &'a TruthRow {
    f.truth()
        .iter()
        .find(|t| t.address == address)
        .unwrap_or_else(|| panic!("{address} is not on the list"))
}

#[tokio::test]
async fn yahoo_accepts_unknown_recipients_and_refuses_disabled_ones_its_way() {
    let f = fleet(PROVIDERS).await;
    let mut c = transaction(&f, YAHOO).await;
    assert_eq!(
        rcpt(&mut c, "no.such.person@yahoo-mail.test").await,
        "250 2.1.5 Ok"
    );
    assert_eq!(
        rcpt(&mut c, "anybody.at.all@aol-mail.test").await,
        "250 2.1.5 Ok"
    );
    let disabled = f
        .truth()
        .iter()
        .find(|t| t.address.ends_with("@yahoo-mail.test") && t.reason == Reason::MailboxDisabled)
        .unwrap()
        .address
        .clone();
    assert_eq!(
        rcpt(&mut c, &disabled).await,
        format!(
            "554 delivery error: dd Sorry your message to <{disabled}> cannot be delivered. \
             This mailbox is disabled (554.30). - mta4471.mail.gq1.yahoo.com"
        )
    );
    assert_eq!(f.counters().hosts[YAHOO].rcpts_accepted, 2);
}

#[tokio::test]
async fn outlook_com_takes_one_recipient_per_transaction() {
    let f = fleet(PROVIDERS).await;
    let mut c = transaction(&f, OUTLOOK).await;
    // Every RCPT counts, whatever its reply: a refused first one uses up the transaction.
    assert_eq!(
        rcpt(&mut c, "no.such.person@outlook-mail.test").await,
        format!(
            "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [{OUTLOOK}]"
        )
    );
    let too_many = format!("452 4.5.3 Too many recipients (AS780090) [{OUTLOOK}]");
    assert_eq!(rcpt(&mut c, "postmaster@outlook-mail.test").await, too_many);
    assert_eq!(rcpt(&mut c, "postmaster@outlook-mail.test").await, too_many);
    // A new transaction starts a new count.
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 Ok");
    assert_eq!(c.cmd("MAIL FROM:<p@probe.test>").await, "250 2.1.0 Ok");
    assert_eq!(
        rcpt(&mut c, "postmaster@outlook-mail.test").await,
        "250 2.1.5 Ok"
    );
    // Pipelined, the second and third RCPT of a group get the 452 as well.
    c.cmd("RSET").await;
    c.send("MAIL FROM:<p@probe.test>\r\nRCPT TO:<postmaster@outlook-mail.test>\r\nRCPT TO:<a@outlook-mail.test>\r\nRCPT TO:<b@outlook-mail.test>\r\n").await;
    assert_eq!(c.reply().await, "250 2.1.0 Ok");
    assert_eq!(c.reply().await, "250 2.1.5 Ok");
    assert_eq!(c.reply().await, too_many);
    assert_eq!(c.reply().await, too_many);
    let counters = f.counters();
    assert_eq!(counters.hosts[OUTLOOK].too_many_rcpts, 4);
    assert_eq!(counters.totals.too_many_rcpts, 4);
    assert_eq!(counters.totals.replies_503, 0);
}

#[tokio::test]
async fn microsoft365_and_google_answer_unknown_recipients_their_way() {
    let f = fleet(PROVIDERS).await;
    let mut a = transaction(&f, TENANT_A).await;
    assert_eq!(
        rcpt(&mut a, "no.such.person@tenant-a.test").await,
        format!("550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [{TENANT_A}]")
    );
    let mut b = transaction(&f, TENANT_B).await;
    assert_eq!(
        rcpt(&mut b, "no.such.person@tenant-b.test").await,
        "250 2.1.5 Ok"
    );
    let mut g = transaction(&f, GOOGLE).await;
    let reply = rcpt(&mut g, "no.such.person@workspace.test").await;
    assert!(
        reply.starts_with("550 5.1.1 The email account that you tried to reach does not exist.")
            && reply.ends_with(&format!("?p=NoSuchUser {GOOGLE} - gsmtp")),
        "{reply}"
    );
    assert_eq!(
        rcpt(&mut g, "no.such.person@workspace-catchall.test").await,
        "250 2.1.5 Ok"
    );
    // The full mailbox keeps the Postfix text: no override for it.
    let full = f
        .truth()
        .iter()
        .find(|t| t.address.ends_with("@workspace.test") && t.reason == Reason::MailboxFull)
        .unwrap()
        .address
        .clone();
    assert_eq!(
        rcpt(&mut g, &full).await,
        format!("452 4.2.2 <{full}>: Mailbox full")
    );
}

#[tokio::test]
async fn icloud_blocks_the_prober_with_its_ip_in_the_reply() {
    let f = fleet(PROVIDERS).await;
    let mut c = transaction(&f, ICLOUD).await;
    let postmaster = "postmaster@icloud-mail.test";
    assert_eq!(
        rcpt(&mut c, postmaster).await,
        "554 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip=127.0.0.2"
    );
    let t = truth_of(&f, postmaster);
    assert_eq!((t.status, t.reason), (Status::Unknown, Reason::Blocked));
    assert!(t.exists);
}

#[tokio::test]
async fn the_throttling_tenant_answers_server_busy_past_its_rate() {
    let f = fleet(PROVIDERS).await;
    let mut c = transaction(&f, THROTTLING).await;
    for _ in 0..30 {
        assert_eq!(
            rcpt(&mut c, "postmaster@tenant-c.test").await,
            "250 2.1.5 Ok"
        );
    }
    assert_eq!(
        rcpt(&mut c, "postmaster@tenant-c.test").await,
        format!(
            "451 4.7.500 Server busy. Please try again later from [127.0.0.2]. (S77714) \
             [{THROTTLING}]"
        )
    );
    let counters = f.counters();
    assert_eq!(counters.hosts[THROTTLING].rate_limited, 1);
    assert_eq!(counters.clients["127.0.0.2"].rate_limited, 1);
    // Another client IP has its own budget.
    let mut other = Client::greeted_from(ip("127.0.0.3"), f.host_addr(THROTTLING).unwrap()).await;
    other.cmd("EHLO probe.test").await;
    other.cmd("MAIL FROM:<p@probe.test>").await;
    assert_eq!(
        rcpt(&mut other, "postmaster@tenant-c.test").await,
        "250 2.1.5 Ok"
    );
}

#[tokio::test]
async fn accept_all_truth_and_exists() {
    let f = fleet(PROVIDERS).await;
    let rows: Vec<&TruthRow> = f
        .truth()
        .iter()
        .filter(|t| t.address.ends_with("@yahoo-mail.test"))
        .collect();
    assert!(rows.len() >= 13, "{}", rows.len());
    let mut seen: HashMap<(Status, Reason, bool), usize> = HashMap::new();
    for t in &rows {
        assert_eq!(t.behaviour, Scenario::AcceptAll, "{}", t.address);
        *seen.entry((t.status, t.reason, t.exists)).or_default() += 1;
    }
    // 10 valid people and postmaster; 3 unknown local parts; one full; one disabled.
    let want: HashMap<(Status, Reason, bool), usize> = [
        ((Status::Risky, Reason::AcceptsAll, true), 11),
        ((Status::Risky, Reason::AcceptsAll, false), 3),
        ((Status::Risky, Reason::MailboxFull, true), 1),
        ((Status::Undeliverable, Reason::MailboxDisabled, false), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, want);
    let postmaster = truth_of(&f, "postmaster@yahoo-mail.test");
    assert_eq!(
        (postmaster.reason, postmaster.exists),
        (Reason::AcceptsAll, true)
    );
    // At a catch-all domain an unknown local part is accepted, but does not exist.
    let t = truth_of(&f, "no.such.person@tenant-b.test");
    assert_eq!((t.reason, t.exists), (Reason::CatchAll, false));
    let t = truth_of(&f, "no.such.person@tenant-a.test");
    assert_eq!(
        (t.status, t.reason, t.exists),
        (Status::Undeliverable, Reason::MailboxNotFound, false)
    );
    f.shutdown().await;
}

#[tokio::test]
async fn exists_follows_the_mailbox_not_the_verdict() {
    let f = fleet(EXAMPLE).await;
    for (address, exists) in [
        ("alice.smith@normal.test", true),
        ("bob.jones@normal.test", true),
        ("carol.white@normal.test", false),
        ("nobody.here@normal.test", false),
        ("anything.goes@catchall.test", false),
        ("erin.green@catchall.test", true),
        ("liam.ford@blocked.test", true),
        ("paul.wood@gone.test", true),
        ("grace.hall@nullmx.test", false),
        ("judy.moss@nxdomain.test", false),
        ("ken.lane@nomx.test", false),
    ] {
        assert_eq!(truth_of(&f, address).exists, exists, "{address}");
    }
    f.shutdown().await;
}

/// The oracle agrees with itself: every address of a provider domain gets, at RCPT (one per
/// transaction, as Outlook.com wants), the reply class its truth row implies.
#[tokio::test]
async fn the_provider_servers_answer_as_the_truth_says() {
    let spec = FleetSpec::from_toml(PROVIDERS).unwrap();
    let f = rollcall_sim::start(&spec, SimOptions::default())
        .await
        .unwrap();
    let site_host: HashMap<&str, &str> = [
        ("yahoo", YAHOO),
        ("outlook_com", OUTLOOK),
        ("tenant_a", TENANT_A),
        ("tenant_b", TENANT_B),
        ("google", GOOGLE),
        ("icloud", ICLOUD),
        ("tenant_c", THROTTLING),
    ]
    .into_iter()
    .collect();
    let host_of: HashMap<&str, &str> = spec
        .domains
        .iter()
        .map(|d| (d.name.as_str(), site_host[d.site.as_deref().unwrap()]))
        .collect();
    for t in f.truth() {
        let domain = t.address.rsplit_once('@').unwrap().1;
        // A session per address keeps every host's error budget (and delays) out of it.
        let mut c = transaction(&f, host_of[domain]).await;
        let reply = rcpt(&mut c, &t.address).await;
        let want = match t.reason {
            Reason::Accepted | Reason::CatchAll | Reason::RoleAccount | Reason::AcceptsAll => '2',
            Reason::MailboxNotFound | Reason::MailboxDisabled | Reason::Blocked => '5',
            Reason::MailboxFull => '4',
            other => panic!("{other:?} for a served address"),
        };
        assert!(reply.starts_with(want), "{}: {reply}", t.address);
        assert!(t.deterministic);
    }
    let counters = f.counters();
    assert_eq!(counters.totals.too_many_rcpts, 0);
    assert_eq!(counters.totals.replies_503, 0);
    assert_eq!(counters.totals.rate_limited, 0);
    assert!(f.truth().len() >= 9 * 16, "{}", f.truth().len());
}

/// The demo carries the provider part of providers.toml (all but the throttling tenant), with
/// the same provider behaviour and the demo's latency and caps, and it leaves the generated
/// population as it was.
#[tokio::test]
async fn the_demo_carries_the_providers_and_keeps_its_population() {
    let providers = FleetSpec::from_toml(PROVIDERS).unwrap();
    let demo = FleetSpec::from_toml(DEMO).unwrap();
    let throttled = |name: &str| name.contains("tenant-c");
    let names = |s: &FleetSpec| -> Vec<String> {
        let hosts = s
            .hosts
            .iter()
            .map(|h| format!("host {} {:?}", h.name, h.profile));
        let domains = s.domains.iter().map(|d| {
            format!(
                "domain {} {:?} {:?} {:?} {:?}",
                d.name, d.behaviour, d.site, d.mailboxes, d.verify
            )
        });
        hosts
            .chain(domains)
            .filter(|n| !n.contains("tenant-c"))
            .collect()
    };
    assert_eq!(names(&demo), names(&providers));
    assert!(providers.hosts.iter().any(|h| throttled(&h.name)));
    let default = &demo.profiles["default"];
    for (name, p) in &providers.profiles {
        if name == "throttling" {
            assert!(!demo.profiles.contains_key(name));
            continue;
        }
        let d = &demo.profiles[name];
        assert_eq!(
            (
                &d.unknown_reply,
                &d.disabled_reply,
                &d.block_reply,
                &d.too_many_rcpts_reply
            ),
            (
                &p.unknown_reply,
                &p.disabled_reply,
                &p.block_reply,
                &p.too_many_rcpts_reply
            ),
            "{name}"
        );
        assert_eq!(
            d.max_rcpts_per_transaction, p.max_rcpts_per_transaction,
            "{name}"
        );
        assert_eq!(
            (
                d.latency_ms,
                d.max_conns_per_ip,
                d.error_hard_limit,
                d.error_delay_ms
            ),
            (
                default.latency_ms,
                default.max_conns_per_ip,
                default.error_hard_limit,
                default.error_delay_ms
            ),
            "{name}"
        );
    }

    let with = rollcall_sim::start(&demo, SimOptions::default())
        .await
        .unwrap();
    let mut bare = demo.clone();
    bare.hosts.clear();
    bare.sites.clear();
    bare.domains.clear();
    let without = rollcall_sim::start(&bare, SimOptions::default())
        .await
        .unwrap();
    let explicit = with.truth().len() - without.truth().len();
    assert_eq!(without.truth().len(), 100_000);
    assert_eq!(&with.truth()[explicit..], without.truth());
    let placed = |f: &Fleet, skip: usize| -> Vec<(String, IpAddr, bool)> {
        let hosts = f.hosts().into_iter().skip(skip);
        hosts.map(|h| (h.name, h.addr.ip(), h.down)).collect()
    };
    assert_eq!(placed(&with, demo.hosts.len()), placed(&without, 0));
    // Every provider domain's truth is what a verifier that knows the providers says.
    let provider_rows = &with.truth()[..explicit];
    assert!(provider_rows.iter().all(|t| t.deterministic));
    let yahoo = truth_of(&with, "no.such.person@yahoo-mail.test");
    assert_eq!(
        (yahoo.status, yahoo.reason),
        (Status::Risky, Reason::AcceptsAll)
    );
    let icloud = truth_of(&with, "no.such.person@icloud-mail.test");
    assert_eq!(
        (icloud.status, icloud.reason),
        (Status::Unknown, Reason::Blocked)
    );
    let outlook = truth_of(&with, "no.such.person@outlook-mail.test");
    assert_eq!(outlook.reason, Reason::MailboxNotFound);
    with.shutdown().await;
    without.shutdown().await;
}

#[test]
fn bad_reply_overrides_are_refused() {
    let cases = [
        (
            "unknown_reply = \"User unknown\"",
            "profiles.strict.unknown_reply",
        ),
        (
            "disabled_reply = \"550-5.2.1 disabled\"",
            "profiles.strict.disabled_reply",
        ),
        (
            "block_reply = \"650 5.7.1 blocked\"",
            "profiles.strict.block_reply",
        ),
        ("rate_reply = \"451\"", "profiles.strict.rate_reply"),
        (
            "too_many_rcpts_reply = \"452 4.5.3 a\\r\\n250 ok\"",
            "profiles.strict.too_many_rcpts_reply",
        ),
        (
            "max_rcpts_per_transaction = 0",
            "profiles.strict.max_rcpts_per_transaction must be >= 1",
        ),
    ];
    for (line, expected) in cases {
        let e = FleetSpec::from_toml(&format!("[profiles.strict]\n{line}\n")).unwrap_err();
        assert!(
            e.is_spec() && e.to_string().contains(expected),
            "{line}: {e}"
        );
    }
    let fine = "[profiles.strict]\nunknown_reply = \"550 5.1.1 {rcpt} unknown at {host}\"\n\
                max_rcpts_per_transaction = 1\n";
    let spec = FleetSpec::from_toml(fine).unwrap();
    assert_eq!(spec.profiles["strict"].max_rcpts_per_transaction, Some(1));
}

/// `[generate.mix] accept_all` puts accept-all domains in a synthetic population; their rows
/// follow the same rule as explicit ones.
#[tokio::test]
async fn a_generated_mix_can_hold_accept_all_domains() {
    let toml = r#"
[fleet]
address_base = "127.26.0.0"
[generate]
seed = 3
domains = 20
addresses = 400
sites = 2
[generate.mix]
accept_all = 0.5
"#;
    let f = fleet(toml).await;
    let rows: Vec<&TruthRow> = f
        .truth()
        .iter()
        .filter(|t| t.behaviour == Scenario::AcceptAll)
        .collect();
    assert!(!rows.is_empty());
    for t in rows {
        let want = match t.reason {
            Reason::AcceptsAll | Reason::MailboxFull => Status::Risky,
            Reason::MailboxDisabled => Status::Undeliverable,
            other => panic!("{}: {other:?}", t.address),
        };
        assert_eq!(t.status, want, "{}", t.address);
    }
    f.shutdown().await;
}

#[test]
fn the_readme_profile_example_parses() {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```toml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("max_rcpts_per_transaction"))
        .expect("README shows a reply override example");
    let spec = FleetSpec::from_toml(block).unwrap();
    let p = &spec.profiles["outlook_com"];
    assert_eq!(p.max_rcpts_per_transaction, Some(1));
    assert!(
        p.too_many_rcpts_reply
            .as_deref()
            .unwrap()
            .starts_with("452 4.5.3")
    );
}
