//! Per client IP, like Postfix's anvil: the connection, MAIL and RCPT rates are budgets of each
//! client address at each host; the counters per client; whether greylist retries came from
//! the greylisted address. Clients bind 127.0.0.2, .3 and .4 as their source address.
//!
//! No assertion depends on timing: the windows that must not run out during a test are long
//! (60 s), and the one test that waits for a window to pass sleeps longer than the window.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Client, fleet, one_host};
use rollcall_sim::{FleetSpec, Profile, SimOptions};

const HOST: &str = "mx.t.test";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// EHLO and MAIL, checking both are accepted.
async fn open_transaction(c: &mut Client) {
    assert!(c.cmd("EHLO probe.test").await.starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<p@probe.test>").await, "250 2.1.0 Ok");
}

#[tokio::test]
async fn each_client_ip_has_its_own_recipient_budget() {
    let f = fleet(&one_host("rcpt_rate_per_ip = 3\nrate_window_ms = 60000")).await;
    let addr = f.host_addr(HOST).unwrap();
    let mut a = Client::greeted_from(ip("127.0.0.2"), addr).await;
    open_transaction(&mut a).await;
    // Every RCPT counts, whatever its reply.
    assert_eq!(a.cmd("RCPT TO:<alice@t.test>").await, "250 2.1.5 Ok");
    assert!(
        a.cmd("RCPT TO:<nobody@t.test>")
            .await
            .starts_with("550 5.1.1")
    );
    assert_eq!(a.cmd("RCPT TO:<x@any.test>").await, "250 2.1.5 Ok");
    assert_eq!(
        a.cmd("RCPT TO:<y@any.test>").await,
        "450 4.7.1 Error: too many recipients from 127.0.0.2"
    );

    // Another address, same host: a budget of its own.
    let mut b = Client::greeted_from(ip("127.0.0.3"), addr).await;
    open_transaction(&mut b).await;
    for rcpt in ["alice@t.test", "y@any.test", "z@any.test"] {
        assert_eq!(b.cmd(&format!("RCPT TO:<{rcpt}>")).await, "250 2.1.5 Ok");
    }
    // The first is still over: refused RCPTs count too, as in Postfix.
    assert_eq!(
        a.cmd("RCPT TO:<z@any.test>").await,
        "450 4.7.1 Error: too many recipients from 127.0.0.2"
    );
    // A new session of the same address shares the budget (it is per IP, not per session).
    let mut a2 = Client::greeted_from(ip("127.0.0.2"), addr).await;
    open_transaction(&mut a2).await;
    assert_eq!(
        a2.cmd("RCPT TO:<alice@t.test>").await,
        "450 4.7.1 Error: too many recipients from 127.0.0.2"
    );

    let n = f.counters();
    let ca = &n.clients["127.0.0.2"];
    assert_eq!(ca.connections, 2);
    assert_eq!(ca.transactions, 2);
    assert_eq!(ca.rcpts, 6);
    assert_eq!(ca.rcpts_accepted, 2);
    assert_eq!(ca.rate_limited, 3);
    assert_eq!(ca.max_concurrent, 2);
    let cb = &n.clients["127.0.0.3"];
    assert_eq!(
        (cb.connections, cb.transactions, cb.rcpts, cb.rcpts_accepted),
        (1, 1, 3, 3)
    );
    assert_eq!(cb.rate_limited, 0);
    assert_eq!(n.hosts[HOST].rate_limited, 3);
    assert_eq!(n.totals.rate_limited, 3);
    assert_eq!(n.totals.rcpts, 9);
    assert_eq!(n.clients.len(), 2);
}

#[tokio::test]
async fn the_recipient_budget_comes_back_when_the_window_has_passed() {
    let window = Duration::from_millis(1000);
    let f = fleet(&one_host(&format!(
        "rcpt_rate_per_ip = 2\nrate_window_ms = {}",
        window.as_millis()
    )))
    .await;
    let addr = f.host_addr(HOST).unwrap();
    let mut a = Client::greeted_from(ip("127.0.0.2"), addr).await;
    open_transaction(&mut a).await;
    // One pipelined group: the three RCPTs arrive together, well inside the window.
    a.send("RCPT TO:<a@any.test>\r\nRCPT TO:<b@any.test>\r\nRCPT TO:<c@any.test>\r\n")
        .await;
    assert_eq!(a.reply().await, "250 2.1.5 Ok");
    assert_eq!(a.reply().await, "250 2.1.5 Ok");
    assert_eq!(
        a.reply().await,
        "450 4.7.1 Error: too many recipients from 127.0.0.2"
    );
    // Every counted RCPT is older than the window after this.
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    assert_eq!(a.cmd("RCPT TO:<c@any.test>").await, "250 2.1.5 Ok");
    assert_eq!(f.counters().clients["127.0.0.2"].rate_limited, 1);
}

#[tokio::test]
async fn the_mail_rate_answers_450_4_7_1_too_much_mail() {
    let f = fleet(&one_host("mail_rate_per_ip = 2\nrate_window_ms = 60000")).await;
    let addr = f.host_addr(HOST).unwrap();
    let mut a = Client::greeted_from(ip("127.0.0.2"), addr).await;
    open_transaction(&mut a).await;
    a.cmd("RSET").await;
    assert_eq!(a.cmd("MAIL FROM:<p@probe.test>").await, "250 2.1.0 Ok");
    a.cmd("RSET").await;
    assert_eq!(
        a.cmd("MAIL FROM:<p@probe.test>").await,
        "450 4.7.1 Error: too much mail from 127.0.0.2"
    );
    // No transaction started.
    assert_eq!(
        a.cmd("RCPT TO:<alice@t.test>").await,
        "503 5.5.1 Error: need MAIL command"
    );
    let mut b = Client::greeted_from(ip("127.0.0.3"), addr).await;
    open_transaction(&mut b).await;

    let n = f.counters();
    assert_eq!(n.clients["127.0.0.2"].transactions, 2);
    assert_eq!(n.clients["127.0.0.2"].rate_limited, 1);
    assert_eq!(n.clients["127.0.0.3"].transactions, 1);
    assert_eq!(n.clients["127.0.0.3"].rate_limited, 0);
    assert_eq!(n.totals.transactions, 3);
    assert_eq!(n.totals.rate_limited, 1);
}

#[tokio::test]
async fn the_connection_rate_greets_with_421_and_closes() {
    let f = fleet(&one_host("conn_rate_per_ip = 2\nrate_window_ms = 60000")).await;
    let addr = f.host_addr(HOST).unwrap();
    let a = ip("127.0.0.2");
    for _ in 0..2 {
        let mut c = Client::greeted_from(a, addr).await;
        assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");
    }
    for _ in 0..2 {
        let mut c = Client::connect_from(a, addr).await;
        assert_eq!(
            c.reply().await,
            "421 4.7.0 mx.t.test Error: too many connections from 127.0.0.2"
        );
        assert!(c.closed().await);
    }
    let mut b = Client::greeted_from(ip("127.0.0.3"), addr).await;
    assert_eq!(b.cmd("QUIT").await, "221 2.0.0 Bye");

    let n = f.counters();
    let ca = &n.clients["127.0.0.2"];
    assert_eq!(
        (ca.connections, ca.connections_refused, ca.rate_limited),
        (4, 2, 2)
    );
    let cb = &n.clients["127.0.0.3"];
    assert_eq!(
        (cb.connections, cb.connections_refused, cb.rate_limited),
        (1, 0, 0)
    );
    assert_eq!(n.hosts[HOST].connections_refused, 2);
    assert_eq!(n.hosts[HOST].rate_limited, 2);
    assert_eq!(n.totals.connections, 5);
}

#[tokio::test]
async fn the_concurrency_cap_is_checked_first_and_is_no_rate_refusal() {
    let f = fleet(&one_host(
        "max_conns_per_ip = 1\nconn_rate_per_ip = 5\nrate_window_ms = 60000",
    ))
    .await;
    let addr = f.host_addr(HOST).unwrap();
    let _held = Client::greeted_from(ip("127.0.0.2"), addr).await;
    let mut c = Client::connect_from(ip("127.0.0.2"), addr).await;
    assert_eq!(
        c.reply().await,
        "421 4.7.0 mx.t.test Error: too many connections from 127.0.0.2"
    );
    let n = f.counters();
    assert_eq!(n.clients["127.0.0.2"].connections_refused, 1);
    assert_eq!(n.clients["127.0.0.2"].rate_limited, 0);
    assert_eq!(n.clients["127.0.0.2"].max_concurrent, 2);
}

/// Two hosts serving one domain.
const TWO_HOSTS: &str = r#"
[[host]]
name = "mx1.t.test"

[[host]]
name = "mx2.t.test"

[[site]]
name = "t"
mx = [{ host = "mx1.t.test", preference = 10 }, { host = "mx2.t.test", preference = 20 }]

[[domain]]
name = "t.test"
site = "t"
mailboxes = { "alice" = "valid" }
"#;

#[tokio::test]
async fn client_counters_sum_over_hosts_and_agree_with_the_totals() {
    let f = fleet(TWO_HOSTS).await;
    let mx1 = f.host_addr("mx1.t.test").unwrap();
    let mx2 = f.host_addr("mx2.t.test").unwrap();
    let (a, b) = (ip("127.0.0.2"), ip("127.0.0.3"));
    // a: two sessions at mx1 at once and one at mx2; b: one at mx2.
    let mut sessions = vec![
        Client::greeted_from(a, mx1).await,
        Client::greeted_from(a, mx1).await,
        Client::greeted_from(a, mx2).await,
        Client::greeted_from(b, mx2).await,
    ];
    for c in &mut sessions {
        open_transaction(c).await;
        assert_eq!(c.cmd("RCPT TO:<alice@t.test>").await, "250 2.1.5 Ok");
        assert!(
            c.cmd("RCPT TO:<nobody@t.test>")
                .await
                .starts_with("550 5.1.1")
        );
    }
    let n = f.counters();
    let ca = &n.clients["127.0.0.2"];
    assert_eq!(
        (ca.connections, ca.transactions, ca.rcpts, ca.rcpts_accepted),
        (3, 3, 6, 3)
    );
    // The highest at any one host, not the sum over hosts.
    assert_eq!(ca.max_concurrent, 2);
    assert_eq!(n.clients["127.0.0.3"].max_concurrent, 1);
    assert_eq!(n.totals.max_concurrent_per_ip, 2);
    let sum = |get: fn(&rollcall_sim::ClientCounters) -> u64| -> u64 {
        n.clients.values().map(get).sum()
    };
    assert_eq!(sum(|c| c.connections), n.totals.connections);
    assert_eq!(sum(|c| c.transactions), n.totals.transactions);
    assert_eq!(sum(|c| c.rcpts), n.totals.rcpts);
    assert_eq!(sum(|c| c.rcpts_accepted), n.totals.rcpts_accepted);
    assert_eq!(sum(|c| c.rate_limited), n.totals.rate_limited);
    // The snapshot survives a JSON round trip (what `rollcall sim` prints).
    let json = serde_json::to_string(&n).unwrap();
    assert_eq!(
        serde_json::from_str::<rollcall_sim::Counters>(&json).unwrap(),
        n
    );
}

#[tokio::test]
async fn greylist_retries_are_told_apart_by_client_ip() {
    let spec = FleetSpec::from_toml(&one_host("")).unwrap();
    let delay = Duration::from_millis(300);
    let opts = SimOptions {
        greylist_delay: Some(delay),
        ..SimOptions::default()
    };
    let f = rollcall_sim::start(&spec, opts).await.unwrap();
    let addr = f.host_addr(HOST).unwrap();
    let greylisted = "450 4.2.0 <alice@grey.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/grey.test.html";

    let mut a = Client::greeted_from(ip("127.0.0.2"), addr).await;
    open_transaction(&mut a).await;
    assert_eq!(a.cmd("RCPT TO:<alice@grey.test>").await, greylisted);
    // Retried at once from another address: greylisted anew, and counted as such.
    let mut b = Client::greeted_from(ip("127.0.0.3"), addr).await;
    open_transaction(&mut b).await;
    assert_eq!(b.cmd("RCPT TO:<alice@grey.test>").await, greylisted);
    // Again from that address before the delay: still greylisted, not a new triple.
    assert_eq!(b.cmd("RCPT TO:<alice@grey.test>").await, greylisted);
    let n = f.counters().totals;
    assert_eq!(
        (n.greylisted, n.greylist_other_ip, n.greylist_passed),
        (3, 1, 0)
    );

    tokio::time::sleep(delay + Duration::from_millis(100)).await;
    // The greylisted address retries after the delay: it passes, once counted.
    let mut a = Client::greeted_from(ip("127.0.0.2"), addr).await;
    open_transaction(&mut a).await;
    assert_eq!(a.cmd("RCPT TO:<alice@grey.test>").await, "250 2.1.5 Ok");
    assert_eq!(a.cmd("RCPT TO:<alice@grey.test>").await, "250 2.1.5 Ok");
    // A third address after the delay does not inherit the pass.
    let mut c = Client::greeted_from(ip("127.0.0.4"), addr).await;
    open_transaction(&mut c).await;
    assert_eq!(c.cmd("RCPT TO:<alice@grey.test>").await, greylisted);
    // Whitelisted role addresses are never greylisted, so never counted.
    assert!(
        c.cmd("RCPT TO:<postmaster@grey.test>")
            .await
            .starts_with("550 5.1.1")
    );

    let n = f.counters();
    let t = &n.totals;
    assert_eq!(t.greylisted, 4);
    assert_eq!(t.greylist_passed, 1);
    assert_eq!(t.greylist_other_ip, 2);
    assert_eq!(n.hosts[HOST].greylist_other_ip, 2);
    assert_eq!(n.hosts[HOST].greylist_passed, 1);
}

#[test]
fn rate_limits_are_off_unless_set_and_zero_is_refused() {
    let p = Profile::default();
    assert_eq!(
        (p.conn_rate_per_ip, p.mail_rate_per_ip, p.rcpt_rate_per_ip),
        (None, None, None)
    );
    assert_eq!(p.rate_window_ms, 60_000);

    let spec = FleetSpec::from_toml(&one_host(
        "conn_rate_per_ip = 10\nmail_rate_per_ip = 20\nrcpt_rate_per_ip = 30\nrate_window_ms = 1500",
    ))
    .unwrap();
    let p = &spec.profiles["default"];
    assert_eq!(
        (p.conn_rate_per_ip, p.mail_rate_per_ip, p.rcpt_rate_per_ip),
        (Some(10), Some(20), Some(30))
    );
    assert_eq!(p.rate_window_ms, 1500);

    for (line, field) in [
        ("rcpt_rate_per_ip = 0", "profiles.default.rcpt_rate_per_ip"),
        ("rate_window_ms = 0", "profiles.default.rate_window_ms"),
    ] {
        let err = FleetSpec::from_toml(&one_host(line))
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{err}");
    }
}
