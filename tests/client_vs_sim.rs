//! The SMTP client (`rollcall-smtp`) against the simulated fleet (`rollcall-sim`).
//!
//! Owns: end-to-end checks that the client's sessions and probe transactions get the replies
//! a Postfix-like server gives, map them to the right per-recipient outcome, and never earn a
//! sequencing error (503), a pipelining violation (RFC 2920 3.1), a pregreet violation or a
//! DATA command in the fleet's own counters. Does not own: the sim's strictness (the sim's
//! tests), nor DNS or the engine (each test connects straight to a host's address).
//!
//! Every test starts its own fleet on its own loopback addresses (127.30.N.x, N per test) and
//! a random port, so the tests run in parallel with each other and with the other suites.
#![forbid(unsafe_code)]

use std::time::Duration;

use rollcall_sim::{Fleet, FleetSpec, HostCounters, SimOptions};
use rollcall_smtp::proto::{ClientName, Mailbox, Reply, ReversePath};
use rollcall_smtp::{
    ClientConfig, Error, NotProbed, RecipientOutcome, Session, TransactionOutcome,
};

const SENDER: &str = "verify@probe.rollcall.test";

/// `cv.test` (alice and bob valid, carol full) and `grey.test` (greylisting, frank valid) on
/// one host `mx.cv.test` at `address`, with `profile` as the host's default profile.
/// `extra` is appended (more profiles and hosts).
fn fleet_toml(address: &str, profile: &str, extra: &str) -> String {
    format!(
        r#"
[fleet]
address_base = "127.31.0.0"

[profiles.default]
{profile}

[[host]]
name = "mx.cv.test"
address = "{address}"

[[site]]
name = "cv"
mx = [{{ host = "mx.cv.test", preference = 10 }}]

[[domain]]
name = "cv.test"
site = "cv"
mailboxes = {{ "alice" = "valid", "bob" = "valid", "carol" = "full" }}

[[domain]]
name = "grey.test"
behaviour = "greylist"
site = "cv"
mailboxes = {{ "frank" = "valid" }}
{extra}
"#
    )
}

async fn start(toml: &str, opts: SimOptions) -> Fleet {
    // The client and the sim each pick ring explicitly; installing it as the process default
    // keeps any rustls user without an explicit provider from failing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let spec = FleetSpec::from_toml(toml).unwrap();
    rollcall_sim::start(&spec, opts).await.unwrap()
}

fn config() -> ClientConfig {
    let mut c = ClientConfig::new(ClientName::parse("probe.rollcall.test").unwrap());
    // Short enough that a hang fails the test quickly; nothing here is slow.
    c.greeting_timeout = Duration::from_secs(10);
    c.command_timeout = Duration::from_secs(10);
    c.tls_handshake_timeout = Duration::from_secs(10);
    c
}

async fn connect(fleet: &Fleet, host: &str) -> Session {
    let addr = fleet.host_addr(host).unwrap();
    Session::connect(addr, Some(host), &config()).await.unwrap()
}

fn sender() -> ReversePath {
    ReversePath::parse(SENDER).unwrap()
}

fn mailboxes(list: &[&str]) -> Vec<Mailbox> {
    list.iter().map(|s| Mailbox::parse(s).unwrap()).collect()
}

/// `"550 5.1.1"`: the code and the enhanced code, what the tests compare.
fn status(reply: &Reply) -> String {
    match reply.enhanced {
        Some(e) => format!("{} {e}", reply.code),
        None => reply.code.to_string(),
    }
}

/// The status of each recipient: `"250 2.1.5"` when replied, `"not probed: <why>"` otherwise.
fn statuses(outcome: &TransactionOutcome) -> Vec<String> {
    outcome
        .recipients
        .iter()
        .map(|r| match r {
            RecipientOutcome::Replied(reply) => status(reply),
            RecipientOutcome::NotProbed(why) => format!("not probed: {}", why.as_str()),
        })
        .collect()
}

fn mail_status(outcome: &TransactionOutcome) -> Option<String> {
    outcome.mail.as_ref().map(status)
}

/// What a careful client never earns, whatever the server did.
fn assert_clean(totals: &HostCounters) {
    assert_eq!(totals.replies_503, 0, "{totals:#?}");
    assert_eq!(totals.pipelining_violations, 0, "{totals:#?}");
    assert_eq!(totals.pregreet_violations, 0, "{totals:#?}");
    assert_eq!(totals.data_commands, 0, "{totals:#?}");
}

#[tokio::test]
async fn pipelined_probe_gets_one_reply_per_recipient() {
    let fleet = start(&fleet_toml("127.30.1.1", "", ""), SimOptions::default()).await;
    let mut s = connect(&fleet, "mx.cv.test").await;
    assert!(s.pipelining());

    let rcpts = mailboxes(&[
        "alice@cv.test",
        "nobody@cv.test",
        "bob@cv.test",
        "ghost@cv.test",
        "carol@cv.test",
    ]);
    let out = s.probe(&sender(), &rcpts).await.unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.pipelined);
    assert_eq!(mail_status(&out).as_deref(), Some("250 2.1.0"));
    assert_eq!(
        statuses(&out),
        [
            "250 2.1.5",
            "550 5.1.1",
            "250 2.1.5",
            "550 5.1.1",
            "452 4.2.2"
        ]
    );
    let nobody = out.recipients[1].reply().unwrap();
    assert!(
        nobody
            .text()
            .contains("<nobody@cv.test>: Recipient address rejected"),
        "{nobody}"
    );
    assert!(s.is_usable());
    assert_eq!(s.stats().rcpts_answered, 5);
    assert_eq!(s.stats().rcpts_rejected, 2);
    s.quit().await.unwrap();
    assert!(!s.is_usable());

    let totals = fleet.counters().totals;
    assert_clean(&totals);
    assert_eq!(totals.connections, 1);
    assert_eq!(totals.transactions, 1);
    assert_eq!(totals.rcpts, 5);
    assert_eq!(totals.rcpts_accepted, 2);
    fleet.shutdown().await;
}

#[tokio::test]
async fn lockstep_probe_without_pipelining_gets_the_same_replies() {
    let fleet = start(
        &fleet_toml("127.30.2.1", "pipelining = false", ""),
        SimOptions::default(),
    )
    .await;
    let mut s = connect(&fleet, "mx.cv.test").await;
    assert!(!s.pipelining());
    assert!(!s.capabilities().unwrap().pipelining);

    let rcpts = mailboxes(&["alice@cv.test", "nobody@cv.test", "bob@cv.test"]);
    let out = s.probe(&sender(), &rcpts).await.unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(!out.pipelined);
    assert_eq!(mail_status(&out).as_deref(), Some("250 2.1.0"));
    assert_eq!(statuses(&out), ["250 2.1.5", "550 5.1.1", "250 2.1.5"]);
    assert!(s.is_usable());
    s.quit().await.unwrap();

    let totals = fleet.counters().totals;
    // The sim closes the connection at the first byte sent ahead without PIPELINING, so a
    // complete outcome and zero violations mean every command waited for its reply.
    assert_clean(&totals);
    assert_eq!(totals.transactions, 1);
    assert_eq!(totals.rcpts, 3);
    assert_eq!(totals.rcpts_accepted, 2);
    fleet.shutdown().await;
}

#[tokio::test]
async fn starttls_then_ehlo_again_then_mail_is_accepted() {
    let fleet = start(&fleet_toml("127.30.3.1", "", ""), SimOptions::default()).await;
    let mut s = connect(&fleet, "mx.cv.test").await;

    let tls = s
        .tls()
        .expect("STARTTLS was advertised, the session should be TLS");
    assert!(tls.version.starts_with("TLSv1_"), "{tls:?}");
    // The sim's certificate is self-signed: recorded as not verified, not enforced.
    assert!(!tls.verified, "{tls:?}");
    assert!(tls.verify_error.is_some(), "{tls:?}");
    // The capabilities are those of the EHLO sent inside TLS (RFC 3207 4.2): the sim no longer
    // offers STARTTLS there, while the plaintext EHLO did.
    let caps = s.capabilities().unwrap();
    assert!(!caps.starttls, "{caps:?}");
    assert!(caps.pipelining);

    let out = s
        .probe(&sender(), &mailboxes(&["alice@cv.test"]))
        .await
        .unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    // With `helo_required`, MAIL after TLS without a new EHLO would be 503.
    assert_eq!(mail_status(&out).as_deref(), Some("250 2.1.0"));
    assert_eq!(statuses(&out), ["250 2.1.5"]);
    s.quit().await.unwrap();

    let totals = fleet.counters().totals;
    assert_clean(&totals);
    assert_eq!(totals.tls_sessions, 1);
    assert_eq!(totals.connections, 1);
    assert_eq!(totals.transactions, 1);
    fleet.shutdown().await;
}

#[tokio::test]
async fn twenty_transactions_on_one_session() {
    // A roomy error budget: 20 rejected recipients must not trip it.
    let profile = "error_soft_limit = 1000\nerror_hard_limit = 2000\nerror_delay_ms = 0";
    let fleet = start(
        &fleet_toml("127.30.4.1", profile, ""),
        SimOptions::default(),
    )
    .await;
    let mut s = connect(&fleet, "mx.cv.test").await;

    for i in 0..20 {
        let unknown = format!("nobody{i}@cv.test");
        let rcpts = mailboxes(&["alice@cv.test", &unknown]);
        let out = s.probe(&sender(), &rcpts).await.unwrap();
        assert!(out.error.is_none(), "probe {i}: {:?}", out.error);
        assert_eq!(mail_status(&out).as_deref(), Some("250 2.1.0"), "probe {i}");
        assert_eq!(statuses(&out), ["250 2.1.5", "550 5.1.1"], "probe {i}");
        let reply = out.recipients[1].reply().unwrap();
        assert!(reply.text().contains(&format!("<{unknown}>")), "{reply}");
        assert!(s.is_usable(), "probe {i}");
    }
    assert_eq!(s.stats().transactions, 20);
    assert_eq!(s.stats().rcpts_answered, 40);
    s.quit().await.unwrap();

    let totals = fleet.counters().totals;
    assert_clean(&totals);
    assert_eq!(totals.connections, 1);
    assert_eq!(totals.transactions, 20);
    assert_eq!(totals.rcpts, 40);
    assert_eq!(totals.rcpts_accepted, 20);
    assert_eq!(totals.error_budget_trips, 0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn greylisted_first_then_accepted_after_the_delay() {
    let opts = SimOptions {
        greylist_delay: Some(Duration::from_millis(300)),
        ..SimOptions::default()
    };
    let fleet = start(&fleet_toml("127.30.5.1", "", ""), opts).await;
    let mut s = connect(&fleet, "mx.cv.test").await;
    let rcpts = mailboxes(&["frank@grey.test", "ghost@grey.test"]);

    let first = s.probe(&sender(), &rcpts).await.unwrap();
    assert!(first.error.is_none(), "{:?}", first.error);
    // Greylisting comes before the mailbox check: the unknown user gets 450 too.
    assert_eq!(statuses(&first), ["450 4.2.0", "450 4.2.0"]);
    let grey = first.recipients[0].reply().unwrap();
    assert!(grey.text().contains("Greylisted"), "{grey}");

    // Past the delay (not a timing assertion: the sleep only has to outlast it).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.is_usable());
    let again = s.probe(&sender(), &rcpts).await.unwrap();
    assert!(again.error.is_none(), "{:?}", again.error);
    assert_eq!(statuses(&again), ["250 2.1.5", "550 5.1.1"]);
    s.quit().await.unwrap();

    // The triple passes for good, in a new session as well.
    let mut s = connect(&fleet, "mx.cv.test").await;
    let third = s
        .probe(&sender(), &mailboxes(&["frank@grey.test"]))
        .await
        .unwrap();
    assert_eq!(statuses(&third), ["250 2.1.5"]);
    s.quit().await.unwrap();

    let totals = fleet.counters().totals;
    assert_clean(&totals);
    assert_eq!(totals.connections, 2);
    assert_eq!(totals.transactions, 3);
    assert_eq!(totals.rcpts_accepted, 2);
    fleet.shutdown().await;
}

#[tokio::test]
async fn error_budget_421_mid_group_leaves_the_rest_not_probed() {
    // Three error replies, then the next command (the 4th RCPT) gets 421 and the close.
    let profile = "error_soft_limit = 1\nerror_hard_limit = 3\nerror_delay_ms = 0";
    let fleet = start(
        &fleet_toml("127.30.6.1", profile, ""),
        SimOptions::default(),
    )
    .await;
    let mut s = connect(&fleet, "mx.cv.test").await;
    let rcpts = mailboxes(&[
        "nobody1@cv.test",
        "nobody2@cv.test",
        "nobody3@cv.test",
        "nobody4@cv.test",
        "nobody5@cv.test",
        "alice@cv.test",
    ]);

    let out = s.probe(&sender(), &rcpts).await.unwrap();
    assert!(out.pipelined);
    assert_eq!(mail_status(&out).as_deref(), Some("250 2.1.0"));
    assert!(
        matches!(&out.error, Some(Error::ServiceClosing(r)) if r.code == 421),
        "{:?}",
        out.error
    );
    if let Some(Error::ServiceClosing(r)) = &out.error {
        assert!(r.text().contains("too many errors"), "{r}");
    }
    // The three answered recipients keep their 550; the one answered 421 and the ones never
    // answered are "not probed" (session closed), never rejected.
    assert_eq!(
        statuses(&out),
        [
            "550 5.1.1",
            "550 5.1.1",
            "550 5.1.1",
            "not probed: session_closed",
            "not probed: session_closed",
            "not probed: session_closed",
        ]
    );
    assert!(!s.is_usable());
    assert!(s.stats().closed_by_421);
    assert_eq!(s.stats().rcpts_rejected, 3);
    // A closed session refuses to write anything more.
    let after = s.probe(&sender(), &mailboxes(&["alice@cv.test"])).await;
    assert!(matches!(after, Err(Error::Closed)), "{after:?}");
    s.quit().await.unwrap();

    let totals = fleet.counters().totals;
    assert_clean(&totals);
    assert_eq!(totals.error_budget_trips, 1);
    assert_eq!(
        totals.rcpts, 3,
        "the RCPT answered 421 and those after it never count"
    );
    assert_eq!(totals.rcpts_accepted, 0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn rejected_mail_in_a_pipelined_group_leaves_every_recipient_not_probed() {
    // Two hosts that refuse every sender: one advertises PIPELINING, one does not.
    let extra = r#"
[profiles.refusing_lockstep]
pipelining = false
reject_mail = true

[[host]]
name = "mx2.cv.test"
address = "127.30.7.2"
profile = "refusing_lockstep"

[[site]]
name = "cv2"
mx = [{ host = "mx2.cv.test", preference = 10 }]

[[domain]]
name = "cv2.test"
site = "cv2"
mailboxes = { "alice" = "valid" }
"#;
    let fleet = start(
        &fleet_toml("127.30.7.1", "reject_mail = true", extra),
        SimOptions::default(),
    )
    .await;
    let not_probed = RecipientOutcome::NotProbed(NotProbed::MailRejected);

    // Pipelined: MAIL and the RCPTs go out in one group (RFC 2920 3.1), so the RCPTs are on
    // the wire before MAIL's 550 comes back.
    let mut s = connect(&fleet, "mx.cv.test").await;
    let out = s
        .probe(
            &sender(),
            &mailboxes(&["alice@cv.test", "nobody@cv.test", "bob@cv.test"]),
        )
        .await
        .unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.pipelined);
    let mail = out.mail.as_ref().unwrap();
    assert_eq!(status(mail), "550 5.7.1");
    assert!(
        mail.text().contains(&format!(
            "<{SENDER}>: Sender address rejected: Access denied"
        )),
        "{mail}"
    );
    assert_eq!(out.recipients, vec![not_probed.clone(); 3]);
    // Nothing counted against the addresses.
    assert_eq!(s.stats().rcpts_rejected, 0);
    assert!(s.is_usable());
    s.quit().await.unwrap();

    // The sim, like Postfix, answers each RCPT of the group `503 5.5.1 Error: need MAIL
    // command`: no transaction started. These 503s are the protocol's, not a client mistake:
    // a pipelining client cannot take back RCPTs it sent before MAIL's reply (RFC 2920 3.1
    // lets it send them), and the outcome maps them to MailRejected above. So the pipelining
    // host shows exactly one 503 per recipient, and nothing else goes wrong.
    let piped = fleet.counters().hosts["mx.cv.test"].clone();
    assert_eq!(piped.replies_503, 3, "{piped:#?}");
    assert_eq!(piped.rcpts, 3);
    assert_eq!(piped.transactions, 0);
    assert_eq!(piped.pipelining_violations, 0);
    assert_eq!(piped.pregreet_violations, 0);
    assert_eq!(piped.data_commands, 0);

    // Lockstep: the client sees MAIL's 550 before any RCPT and sends none, so no 503 at all.
    let mut s = connect(&fleet, "mx2.cv.test").await;
    let out = s
        .probe(
            &sender(),
            &mailboxes(&["alice@cv2.test", "nobody@cv2.test"]),
        )
        .await
        .unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(!out.pipelined);
    assert_eq!(mail_status(&out).as_deref(), Some("550 5.7.1"));
    assert_eq!(out.recipients, vec![not_probed; 2]);
    assert!(s.is_usable());
    s.quit().await.unwrap();

    let lockstep = fleet.counters().hosts["mx2.cv.test"].clone();
    assert_clean(&lockstep);
    assert_eq!(lockstep.rcpts, 0);
    assert_eq!(lockstep.transactions, 0);
    assert_eq!(fleet.counters().totals.replies_503, 3);
    fleet.shutdown().await;
}

#[tokio::test]
async fn dropped_connection_leaves_recipients_not_probed() {
    // Both hosts answer EHLO and MAIL (commands 1 and 2) and drop the connection, with no
    // reply, at the first RCPT. Without STARTTLS so the command count is plain.
    let extra = r#"
[profiles.dropping_lockstep]
pipelining = false
starttls = false
drop_after_commands = 2

[[host]]
name = "mx2.cv.test"
address = "127.30.8.2"
profile = "dropping_lockstep"

[[site]]
name = "cv2"
mx = [{ host = "mx2.cv.test", preference = 10 }]

[[domain]]
name = "cv2.test"
site = "cv2"
mailboxes = { "alice" = "valid" }
"#;
    let fleet = start(
        &fleet_toml(
            "127.30.8.1",
            "starttls = false\ndrop_after_commands = 2",
            extra,
        ),
        SimOptions::default(),
    )
    .await;
    let lost = RecipientOutcome::NotProbed(NotProbed::ConnectionLost);
    let is_lost = |e: &Option<Error>| matches!(e, Some(Error::Eof | Error::Io(_)));

    // Pipelined: MAIL and the RCPTs arrive as one group; the sim drops the connection at the
    // first RCPT without writing even MAIL's reply.
    let mut s = connect(&fleet, "mx.cv.test").await;
    let out = s
        .probe(&sender(), &mailboxes(&["alice@cv.test", "nobody@cv.test"]))
        .await
        .unwrap();
    assert!(is_lost(&out.error), "{:?}", out.error);
    assert!(out.mail.is_none(), "{:?}", out.mail);
    assert_eq!(out.recipients, vec![lost.clone(); 2]);
    assert!(!s.is_usable());
    assert!(!s.stats().closed_by_421);
    s.quit().await.unwrap();

    // Lockstep: MAIL is answered, the first RCPT is not.
    let mut s = connect(&fleet, "mx2.cv.test").await;
    let out = s
        .probe(
            &sender(),
            &mailboxes(&["alice@cv2.test", "nobody@cv2.test"]),
        )
        .await
        .unwrap();
    assert!(is_lost(&out.error), "{:?}", out.error);
    assert_eq!(mail_status(&out).as_deref(), Some("250 2.1.0"));
    assert_eq!(out.recipients, vec![lost; 2]);
    assert!(!s.is_usable());
    s.quit().await.unwrap();

    let totals = fleet.counters().totals;
    assert_clean(&totals);
    assert_eq!(totals.dropped_connections, 2);
    assert_eq!(totals.rcpts, 0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn lockstep_host_with_a_delayed_multiline_greeting() {
    // An old server behind postscreen: `220-` at once, `220 ` 200 ms later.
    let profile = "pipelining = false\nstarttls = false\nsmtputf8 = false\n\
                   multiline_greeting = true\ngreeting_delay_ms = 200";
    let fleet = start(
        &fleet_toml("127.30.9.1", profile, ""),
        SimOptions::default(),
    )
    .await;
    let mut s = connect(&fleet, "mx.cv.test").await;
    // The whole greeting was read before EHLO went out.
    let greeting = s.greeting().unwrap();
    assert_eq!(greeting.code, 220);
    assert_eq!(greeting.lines.len(), 2, "{greeting:?}");
    assert!(s.tls().is_none());
    assert!(!s.pipelining());

    let out = s
        .probe(&sender(), &mailboxes(&["alice@cv.test", "nobody@cv.test"]))
        .await
        .unwrap();
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(!out.pipelined);
    assert_eq!(statuses(&out), ["250 2.1.5", "550 5.1.1"]);
    s.quit().await.unwrap();

    let totals = fleet.counters().totals;
    assert_clean(&totals);
    assert_eq!(totals.transactions, 1);
    assert_eq!(totals.tls_sessions, 0);
    fleet.shutdown().await;
}
