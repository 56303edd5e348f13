//! The sim's own strictness: raw sockets send bad sequences; the replies and the counters
//! must show them.

mod common;

use common::{Client, fleet, one_host};

#[tokio::test]
async fn rcpt_before_mail_is_503() {
    let f = fleet(&one_host("")).await;
    let addr = f.host_addr("mx.t.test").unwrap();
    let mut c = Client::greeted(addr).await;
    assert!(c.cmd("EHLO probe.test").await.starts_with("250-mx.t.test"));
    let r = c.cmd("RCPT TO:<alice@t.test>").await;
    assert_eq!(r, "503 5.5.1 Error: need MAIL command");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");
    let n = f.counters();
    assert_eq!(n.totals.replies_503, 1);
    assert_eq!(n.totals.rcpts, 1);
    assert_eq!(n.hosts["mx.t.test"].connections, 1);
}

#[tokio::test]
async fn nested_mail_is_503() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    c.cmd("EHLO probe.test").await;
    assert_eq!(c.cmd("MAIL FROM:<p@probe.test>").await, "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("MAIL FROM:<p@probe.test>").await,
        "503 5.5.1 Error: nested MAIL command"
    );
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 Ok");
    assert_eq!(c.cmd("MAIL FROM:<p@probe.test>").await, "250 2.1.0 Ok");
    let n = f.counters().totals;
    assert_eq!(n.transactions, 2);
    assert_eq!(n.replies_503, 1);
}

#[tokio::test]
async fn mail_before_ehlo_is_503_when_helo_is_required() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    assert_eq!(
        c.cmd("MAIL FROM:<p@probe.test>").await,
        "503 5.5.1 Error: send HELO/EHLO first"
    );
    assert_eq!(
        c.cmd("XYZZY").await,
        "500 5.5.2 Error: command not recognized"
    );
    assert_eq!(
        c.cmd("VRFY alice").await,
        "502 5.5.1 VRFY command is disabled"
    );
    assert_eq!(
        c.cmd("MAIL FROM: <p@probe.test>").await,
        "501 5.5.4 Syntax: MAIL FROM:<address>"
    );
    assert_eq!(f.counters().totals.transactions, 0);
}

#[tokio::test]
async fn sending_ahead_without_pipelining_is_a_violation() {
    let f = fleet(&one_host("pipelining = false")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    let ehlo = c.cmd("EHLO probe.test").await;
    assert!(!ehlo.contains("PIPELINING"), "{ehlo}");
    c.send("MAIL FROM:<p@probe.test>\r\nRCPT TO:<alice@t.test>\r\n")
        .await;
    assert_eq!(
        c.reply().await,
        "554 5.5.0 Error: SMTP protocol synchronization"
    );
    assert!(c.closed().await);
    assert_eq!(f.counters().totals.pipelining_violations, 1);
}

#[tokio::test]
async fn pipelined_mail_and_rcpts_are_fine_with_pipelining() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    let ehlo = c.cmd("EHLO probe.test").await;
    assert!(ehlo.contains("250-PIPELINING"), "{ehlo}");
    c.send("MAIL FROM:<p@probe.test>\r\nRCPT TO:<alice@t.test>\r\nRCPT TO:<nobody@t.test>\r\nRCPT TO:<bob@t.test>\r\nRCPT TO:<carol@t.test>\r\nRSET\r\n")
        .await;
    assert_eq!(c.reply().await, "250 2.1.0 Ok");
    assert_eq!(c.reply().await, "250 2.1.5 Ok");
    assert_eq!(
        c.reply().await,
        "550 5.1.1 <nobody@t.test>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    assert_eq!(c.reply().await, "452 4.2.2 <bob@t.test>: Mailbox full");
    assert_eq!(
        c.reply().await,
        "550 5.2.1 <carol@t.test>: Mailbox disabled, not accepting messages"
    );
    assert_eq!(c.reply().await, "250 2.0.0 Ok");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");
    let n = f.counters().totals;
    assert_eq!(n.pipelining_violations, 0);
    assert_eq!(n.rcpts, 4);
    assert_eq!(n.rcpts_accepted, 1);
    assert_eq!(n.replies_503, 0);
}

#[tokio::test]
async fn ehlo_not_last_in_a_group_is_a_violation() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    c.cmd("EHLO probe.test").await;
    c.send("RSET\r\nEHLO probe.test\r\nMAIL FROM:<p@probe.test>\r\n")
        .await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok");
    assert_eq!(
        c.reply().await,
        "554 5.5.0 Error: SMTP protocol synchronization"
    );
    assert!(c.closed().await);
    assert_eq!(f.counters().totals.pipelining_violations, 1);
}

#[tokio::test]
async fn speaking_before_the_greeting_is_a_pregreet_violation() {
    let f = fleet(&one_host(
        "multiline_greeting = true\ngreeting_delay_ms = 300",
    ))
    .await;
    let mut c = Client::connect(f.host_addr("mx.t.test").unwrap()).await;
    c.send("EHLO probe.test\r\n").await;
    let greeting = c.reply().await;
    assert!(greeting.starts_with("220-mx.t.test"), "{greeting}");
    assert!(
        greeting.ends_with("220 mx.t.test ESMTP rollcall-sim"),
        "{greeting}"
    );
    assert_eq!(f.counters().totals.pregreet_violations, 1);
}

#[tokio::test]
async fn a_patient_client_passes_the_pregreet_test() {
    let f = fleet(&one_host(
        "multiline_greeting = true\ngreeting_delay_ms = 100",
    ))
    .await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    assert!(c.cmd("EHLO probe.test").await.starts_with("250-"));
    assert_eq!(f.counters().totals.pregreet_violations, 0);
}

#[tokio::test]
async fn starttls_resets_the_session() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    let ehlo = c.cmd("EHLO probe.test").await;
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS");
    let mut c = c.starttls(&f, "mx.t.test").await;
    // RFC 3207 4.2: the server forgot the EHLO.
    assert_eq!(
        c.cmd("MAIL FROM:<p@probe.test>").await,
        "503 5.5.1 Error: send HELO/EHLO first"
    );
    let ehlo = c.cmd("EHLO probe.test").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(
        c.cmd("STARTTLS").await,
        "554 5.5.1 Error: TLS already active"
    );
    assert_eq!(c.cmd("MAIL FROM:<p@probe.test>").await, "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<alice@t.test>").await, "250 2.1.5 Ok");
    let n = f.counters().totals;
    assert_eq!(n.tls_sessions, 1);
    assert_eq!(n.replies_503, 1);
}

#[tokio::test]
async fn the_21st_error_gets_421_and_the_trip_is_counted() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    c.cmd("EHLO probe.test").await;
    c.cmd("MAIL FROM:<p@probe.test>").await;
    for i in 0..20 {
        let r = c.cmd(&format!("RCPT TO:<nobody{i}@t.test>")).await;
        assert!(r.starts_with("550 5.1.1"), "{i}: {r}");
    }
    // Accepted recipients do not reset the count.
    let r = c.cmd("RCPT TO:<nobody20@t.test>").await;
    assert_eq!(r, "421 4.7.0 mx.t.test Error: too many errors");
    assert!(c.closed().await);
    assert_eq!(f.counters().totals.error_budget_trips, 1);
}

#[tokio::test]
async fn the_connection_cap_per_client_ip_answers_421() {
    let f = fleet(&one_host("max_conns_per_ip = 2")).await;
    let addr = f.host_addr("mx.t.test").unwrap();
    let _a = Client::greeted(addr).await;
    let _b = Client::greeted(addr).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.reply().await,
        "421 4.7.0 mx.t.test Error: too many connections from 127.0.0.1"
    );
    assert!(c.closed().await);
    let n = f.counters().totals;
    assert_eq!(n.connections_refused, 1);
    assert_eq!(n.max_concurrent_connections, 3);
    assert_eq!(n.max_concurrent_per_ip, 3);
}

#[tokio::test]
async fn the_recipient_limit_answers_452_4_5_3() {
    let f = fleet(&one_host("rcpt_limit = 2\nlimits_rcptmax = 2")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    let ehlo = c.cmd("EHLO probe.test").await;
    assert!(ehlo.contains("LIMITS RCPTMAX=2"), "{ehlo}");
    c.cmd("MAIL FROM:<p@probe.test>").await;
    assert_eq!(c.cmd("RCPT TO:<alice@t.test>").await, "250 2.1.5 Ok");
    assert_eq!(c.cmd("RCPT TO:<a@any.test>").await, "250 2.1.5 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<b@any.test>").await,
        "452 4.5.3 Error: too many recipients"
    );
    // A new transaction starts a new count.
    c.cmd("RSET").await;
    c.cmd("MAIL FROM:<p@probe.test>").await;
    assert_eq!(c.cmd("RCPT TO:<b@any.test>").await, "250 2.1.5 Ok");
}

#[tokio::test]
async fn data_is_answered_and_counted() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    c.cmd("EHLO probe.test").await;
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Error: need RCPT command");
    c.cmd("MAIL FROM:<p@probe.test>").await;
    c.cmd("RCPT TO:<nobody@t.test>").await;
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 Error: no valid recipients");
    assert_eq!(f.counters().totals.data_commands, 2);
}

#[tokio::test]
async fn relay_policy_block_and_catch_all() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    c.cmd("EHLO probe.test").await;
    c.cmd("MAIL FROM:<p@probe.test>").await;
    assert_eq!(
        c.cmd("RCPT TO:<x@other.test>").await,
        "454 4.7.1 <x@other.test>: Relay access denied"
    );
    assert_eq!(
        c.cmd("RCPT TO:<alice@bl.test>").await,
        "550 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
    );
    assert_eq!(c.cmd("RCPT TO:<q7zx9k2w@any.test>").await, "250 2.1.5 Ok");
    assert_eq!(c.cmd("RCPT TO:<Alice+tag@T.test>").await, "250 2.1.5 Ok");
}

#[tokio::test]
async fn drop_after_commands_closes_without_a_reply() {
    let f = fleet(&one_host("drop_after_commands = 2")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    c.cmd("EHLO probe.test").await;
    c.cmd("MAIL FROM:<p@probe.test>").await;
    assert_eq!(c.cmd("RCPT TO:<alice@t.test>").await, "");
    assert_eq!(f.counters().totals.dropped_connections, 1);
}

#[tokio::test]
async fn a_down_host_refuses_connections() {
    let f = fleet(&format!(
        "{}\n[[host]]\nname = \"dead.t.test\"\ndown = true\n",
        one_host("")
    ))
    .await;
    let dead = f.hosts().into_iter().find(|h| h.down).unwrap();
    assert_eq!(dead.name, "dead.t.test");
    assert!(tokio::net::TcpStream::connect(dead.addr).await.is_err());
}

#[tokio::test]
async fn transient_failures_make_the_truth_non_deterministic() {
    let f = fleet(&one_host("transient_4xx_rate = 1.0")).await;
    assert!(f.truth().iter().all(|t| !t.deterministic));
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    c.cmd("EHLO probe.test").await;
    c.cmd("MAIL FROM:<p@probe.test>").await;
    assert_eq!(
        c.cmd("RCPT TO:<alice@t.test>").await,
        "451 4.3.0 Temporary failure"
    );
}

#[tokio::test]
async fn helo_means_no_pipelining() {
    let f = fleet(&one_host("")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    assert_eq!(c.cmd("HELO probe.test").await, "250 mx.t.test");
    c.send("MAIL FROM:<p@probe.test>\r\nRCPT TO:<alice@t.test>\r\n")
        .await;
    assert_eq!(
        c.reply().await,
        "554 5.5.0 Error: SMTP protocol synchronization"
    );
    assert_eq!(f.counters().totals.pipelining_violations, 1);
}

#[tokio::test]
async fn reject_mail_refuses_the_sender_and_the_pipelined_rcpts_get_503() {
    let f = fleet(&one_host("reject_mail = true")).await;
    let mut c = Client::greeted(f.host_addr("mx.t.test").unwrap()).await;
    c.cmd("EHLO probe.test").await;
    // A pipelined group: the RCPTs are already on the wire when MAIL is refused.
    c.send(
        "MAIL FROM:<p@probe.test>\r\nRCPT TO:<alice@t.test>\r\nRCPT TO:<nobody@t.test>\r\nRSET\r\n",
    )
    .await;
    assert_eq!(
        c.reply().await,
        "550 5.7.1 <p@probe.test>: Sender address rejected: Access denied"
    );
    for _ in 0..2 {
        assert_eq!(c.reply().await, "503 5.5.1 Error: need MAIL command");
    }
    assert_eq!(c.reply().await, "250 2.0.0 Ok");
    assert_eq!(
        c.cmd("MAIL FROM:<>").await,
        "550 5.7.1 <>: Sender address rejected: Access denied"
    );
    let n = f.counters().totals;
    assert_eq!(n.transactions, 0);
    assert_eq!(n.rcpts, 2);
    assert_eq!(n.rcpts_accepted, 0);
    assert_eq!(n.replies_503, 2);
    assert_eq!(n.pipelining_violations, 0);
}
