//! The driver against scripted fake servers on loopback.

mod fake;

use std::time::Duration;

use fake::{Action, Fake, config, greeting, postfix, reply};
use rollcall_smtp::proto::{Mailbox, ReversePath};
use rollcall_smtp::{Error, NotProbed, Phase, RecipientOutcome, Session, TlsMode};

const KNOWN: &[&str] = &["alice@example.test", "bob@example.test"];

fn rcpts(list: &[&str]) -> Vec<Mailbox> {
    list.iter().map(|a| Mailbox::parse(a).unwrap()).collect()
}

fn from() -> ReversePath {
    ReversePath::parse("probe@verifier.example").unwrap()
}

fn code(o: &RecipientOutcome) -> Option<u16> {
    o.reply().map(|r| r.code)
}

#[tokio::test]
async fn pipelined_transaction_is_one_write() {
    let fake = Fake::start(greeting(), None, postfix(true, false, KNOWN)).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    assert!(s.pipelining());
    let r = rcpts(&[
        "alice@example.test",
        "nobody@example.test",
        "bob@example.test",
    ]);
    let out = s.probe(&from(), &r).await.unwrap();
    assert!(out.pipelined && out.error.is_none());
    assert_eq!(out.mail.as_ref().map(|m| m.code), Some(250));
    let codes: Vec<_> = out.recipients.iter().map(code).collect();
    assert_eq!(codes, vec![Some(250), Some(550), Some(250)]);
    let rejected = out.recipients[1].reply().unwrap();
    assert_eq!(
        rejected.enhanced.map(|e| e.to_string()).as_deref(),
        Some("5.1.1")
    );
    assert_eq!(s.stats().rcpts_rejected, 1);
    s.quit().await.unwrap();

    let seen = fake.connection(0).await;
    // RFC 2920: MAIL, the RCPTs and RSET arrive in one read, in order.
    let group = seen
        .reads
        .iter()
        .find(|r| r.starts_with(b"MAIL FROM:"))
        .expect("MAIL read");
    assert_eq!(
        String::from_utf8_lossy(group),
        "MAIL FROM:<probe@verifier.example>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nRSET\r\n"
    );
    assert_eq!(
        seen.verbs(),
        ["EHLO", "MAIL", "RCPT", "RCPT", "RCPT", "RSET", "QUIT"]
    );
}

#[tokio::test]
async fn lockstep_without_pipelining() {
    let fake = Fake::start(greeting(), None, postfix(false, false, KNOWN)).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    assert!(!s.pipelining());
    let r = rcpts(&["alice@example.test", "nobody@example.test"]);
    let out = s.probe(&from(), &r).await.unwrap();
    assert!(!out.pipelined);
    let codes: Vec<_> = out.recipients.iter().map(code).collect();
    assert_eq!(codes, vec![Some(250), Some(550)]);
    s.quit().await.unwrap();
    let seen = fake.connection(0).await;
    // One command per read: the client never wrote ahead of a reply.
    for read in &seen.reads {
        let lines = read.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(lines, 1, "read held {:?}", String::from_utf8_lossy(read));
    }
    assert_eq!(
        seen.verbs(),
        ["EHLO", "MAIL", "RCPT", "RCPT", "RSET", "QUIT"]
    );
}

#[tokio::test]
async fn starttls_then_ehlo_again_before_mail() {
    let fake = Fake::start(
        greeting(),
        Some(fake::tls_acceptor()),
        postfix(true, true, KNOWN),
    )
    .await;
    let mut cfg = config();
    cfg.tls = TlsMode::Opportunistic;
    let mut s = Session::connect(fake.addr, Some("mx.example.test"), &cfg)
        .await
        .unwrap();
    let tls = s.tls().expect("TLS used").clone();
    assert_eq!(tls.version, "TLSv1_3");
    // Self-signed: accepted (opportunistic) but recorded as not verified.
    assert!(!tls.verified && tls.verify_error.is_some());
    // RFC 3207 4.2: capabilities come from the EHLO inside TLS (no STARTTLS there).
    assert!(!s.capabilities().unwrap().starttls);
    let out = s
        .probe(&from(), &rcpts(&["alice@example.test"]))
        .await
        .unwrap();
    assert_eq!(code(&out.recipients[0]), Some(250));
    s.quit().await.unwrap();
    let seen = fake.connection(0).await;
    let order: Vec<(String, bool)> = seen
        .commands
        .iter()
        .map(|(c, t)| (c.split([' ', ':']).next().unwrap().to_owned(), *t))
        .collect();
    let expect = [
        ("EHLO", false),
        ("STARTTLS", false),
        ("EHLO", true),
        ("MAIL", true),
    ];
    for (i, (verb, in_tls)) in expect.iter().enumerate() {
        assert_eq!((order[i].0.as_str(), order[i].1), (*verb, *in_tls));
    }
}

#[tokio::test]
async fn require_tls_fails_when_not_offered() {
    let fake = Fake::start(greeting(), None, postfix(true, false, KNOWN)).await;
    let mut cfg = config();
    cfg.tls = TlsMode::Require;
    let err = Session::connect(fake.addr, None, &cfg).await.unwrap_err();
    assert!(matches!(err, Error::TlsNotOffered), "{err}");
    assert_eq!(err.as_metric_label(), "tls_failed");
    // Opportunistic on the same server: plaintext, no error.
    let mut cfg = config();
    cfg.tls = TlsMode::Opportunistic;
    let s = Session::connect(fake.addr, None, &cfg).await.unwrap();
    assert!(s.tls().is_none());
}

#[tokio::test]
async fn many_transactions_on_one_session() {
    let fake = Fake::start(greeting(), None, postfix(true, false, KNOWN)).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    for batch in [
        ["alice@example.test"],
        ["nobody@example.test"],
        ["bob@example.test"],
    ] {
        let out = s.probe(&from(), &rcpts(&batch)).await.unwrap();
        assert!(out.error.is_none());
        assert!(s.is_usable());
    }
    assert_eq!(s.stats().transactions, 3);
    assert_eq!(s.stats().rcpts_rejected, 1);
    s.quit().await.unwrap();
    let seen = fake.connection(0).await;
    assert_eq!(fake.connections(), 1);
    let verbs = seen.verbs();
    assert_eq!(
        verbs,
        [
            "EHLO", "MAIL", "RCPT", "RSET", "MAIL", "RCPT", "RSET", "MAIL", "RCPT", "RSET", "QUIT"
        ]
    );
}

#[tokio::test]
async fn service_closing_421_mid_transaction() {
    let mut rcpt_count = 0;
    let handler = Box::new(move |line: &str, _tls: bool| {
        if line.starts_with("EHLO") {
            reply(&fake::ehlo_reply(true, false))
        } else if line.starts_with("MAIL") {
            reply("250 2.1.0 Ok\r\n")
        } else if line.starts_with("RCPT") {
            rcpt_count += 1;
            if rcpt_count == 1 {
                reply("250 2.1.5 Ok\r\n")
            } else {
                Action::ReplyClose("421 4.7.0 mx.example.test Error: too many errors\r\n".into())
            }
        } else {
            reply("250 2.0.0 Ok\r\n")
        }
    });
    let fake = Fake::start(greeting(), None, handler).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    let r = rcpts(&[
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
    ]);
    let out = s.probe(&from(), &r).await.unwrap();
    assert_eq!(code(&out.recipients[0]), Some(250));
    assert_eq!(
        out.recipients[1],
        RecipientOutcome::NotProbed(NotProbed::SessionClosed)
    );
    assert_eq!(
        out.recipients[2],
        RecipientOutcome::NotProbed(NotProbed::SessionClosed)
    );
    assert!(matches!(out.error, Some(Error::ServiceClosing(ref r)) if r.code == 421));
    assert!(!s.is_usable());
    assert!(s.stats().closed_by_421);
    assert!(matches!(s.probe(&from(), &r).await, Err(Error::Closed)));
}

#[tokio::test]
async fn rejected_mail_in_pipelined_group_means_not_probed() {
    let mut mails = 0;
    let handler = Box::new(move |line: &str, _tls: bool| {
        if line.starts_with("EHLO") {
            reply(&fake::ehlo_reply(true, false))
        } else if line.starts_with("MAIL") {
            mails += 1;
            if mails == 1 {
                reply("550 5.7.1 <probe@verifier.example>: Sender address rejected\r\n")
            } else {
                reply("250 2.1.0 Ok\r\n")
            }
        } else if line.starts_with("RCPT") {
            // What Postfix says to RCPT without a MAIL: nothing about the address.
            if mails == 1 {
                reply("503 5.5.1 Error: need MAIL command\r\n")
            } else {
                reply("250 2.1.5 Ok\r\n")
            }
        } else {
            reply("250 2.0.0 Ok\r\n")
        }
    });
    let fake = Fake::start(greeting(), None, handler).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    let r = rcpts(&["alice@example.test", "bob@example.test"]);
    let out = s.probe(&from(), &r).await.unwrap();
    assert_eq!(out.mail.as_ref().map(|m| m.code), Some(550));
    for o in &out.recipients {
        assert_eq!(*o, RecipientOutcome::NotProbed(NotProbed::MailRejected));
    }
    assert!(out.error.is_none());
    // Not counted as rejected recipients, and the session goes on.
    assert_eq!(s.stats().rcpts_rejected, 0);
    assert!(s.is_usable());
    let out = s.probe(&from(), &r).await.unwrap();
    assert!(out.recipients.iter().all(|o| code(o) == Some(250)));
}

#[tokio::test]
async fn rejected_mail_in_lockstep_sends_no_rcpt() {
    let handler = Box::new(|line: &str, _tls: bool| {
        if line.starts_with("EHLO") {
            reply(&fake::ehlo_reply(false, false))
        } else if line.starts_with("MAIL") {
            reply("451 4.3.0 try later\r\n")
        } else {
            reply("250 2.0.0 Ok\r\n")
        }
    });
    let fake = Fake::start(greeting(), None, handler).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    let out = s
        .probe(&from(), &rcpts(&["alice@example.test"]))
        .await
        .unwrap();
    assert_eq!(
        out.recipients[0],
        RecipientOutcome::NotProbed(NotProbed::MailRejected)
    );
    s.quit().await.unwrap();
    assert_eq!(
        fake.connection(0).await.verbs(),
        ["EHLO", "MAIL", "RSET", "QUIT"]
    );
}

#[tokio::test]
async fn server_drops_the_connection() {
    let handler = Box::new(|line: &str, _tls: bool| {
        if line.starts_with("EHLO") {
            reply(&fake::ehlo_reply(false, false))
        } else if line.starts_with("MAIL") {
            reply("250 2.1.0 Ok\r\n")
        } else {
            Action::Drop
        }
    });
    let fake = Fake::start(greeting(), None, handler).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    let out = s
        .probe(&from(), &rcpts(&["alice@example.test", "bob@example.test"]))
        .await
        .unwrap();
    assert!(matches!(out.error, Some(Error::Eof)), "{:?}", out.error);
    assert_eq!(
        out.error.as_ref().map(Error::as_metric_label),
        Some("connection_failed")
    );
    for o in &out.recipients {
        assert_eq!(*o, RecipientOutcome::NotProbed(NotProbed::ConnectionLost));
    }
    assert!(!s.is_usable());
    assert!(s.failure().is_some());
}

#[tokio::test]
async fn multi_line_greeting_client_waits_for_last_line() {
    let greeting = vec![
        (Duration::ZERO, "220-mx.example.test ESMTP\r\n"),
        // postscreen's pregreet test: the fake listens for 300 ms before the last line.
        (
            Duration::from_millis(300),
            "220 mx.example.test ESMTP Postfix\r\n",
        ),
    ];
    let fake = Fake::start(greeting, None, postfix(true, false, KNOWN)).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    assert_eq!(s.greeting().map(|g| g.lines.len()), Some(2));
    s.quit().await.unwrap();
    let seen = fake.connection(0).await;
    assert!(
        seen.early.is_empty(),
        "client spoke early: {:?}",
        seen.early
    );
    assert_eq!(seen.verbs(), ["EHLO", "QUIT"]);
}

#[tokio::test(start_paused = true)]
async fn greeting_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        // Hold the socket open and say nothing.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(sock);
    });
    let err = Session::connect(addr, None, &config()).await.unwrap_err();
    assert!(err.is_timeout() && err.is_transient(), "{err}");
    assert!(matches!(err, Error::Timeout(Phase::Greeting)));
    silent.abort();
}

#[tokio::test]
async fn helo_fallback_when_ehlo_unknown() {
    let handler = Box::new(|line: &str, _tls: bool| {
        if line.starts_with("EHLO") {
            reply("502 5.5.2 Error: command not recognized\r\n")
        } else if line.starts_with("HELO") {
            reply("250 mx.example.test\r\n")
        } else if line.starts_with("RCPT") {
            reply("250 2.1.5 Ok\r\n")
        } else {
            reply("250 Ok\r\n")
        }
    });
    let fake = Fake::start(greeting(), None, handler).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    assert!(!s.pipelining());
    let out = s
        .probe(&from(), &rcpts(&["alice@example.test"]))
        .await
        .unwrap();
    assert_eq!(code(&out.recipients[0]), Some(250));
    s.quit().await.unwrap();
    assert_eq!(
        fake.connection(0).await.verbs(),
        ["EHLO", "HELO", "MAIL", "RCPT", "RSET", "QUIT"]
    );
}

#[tokio::test]
async fn negative_greeting_is_refused_with_quit() {
    let greeting = vec![(
        Duration::ZERO,
        "554 5.7.1 mx.example.test no service for you\r\n",
    )];
    let fake = Fake::start(greeting, None, postfix(true, false, KNOWN)).await;
    let err = Session::connect(fake.addr, None, &config())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused { phase: Phase::Greeting, ref reply } if reply.code == 554)
    );
    assert!(!err.is_transient());
    assert_eq!(fake.connection(0).await.verbs(), ["QUIT"]);
}

#[tokio::test]
async fn greeting_421_is_service_closing() {
    let greeting = vec![(
        Duration::ZERO,
        "421 4.7.0 mx.example.test Error: too many connections from 127.0.0.1\r\n",
    )];
    let fake = Fake::start(greeting, None, postfix(true, false, KNOWN)).await;
    let err = Session::connect(fake.addr, None, &config())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ServiceClosing(_)) && err.is_transient());
    assert_eq!(err.as_metric_label(), "service_unavailable");
}

#[tokio::test]
async fn malformed_reply_is_protocol_error() {
    let greeting = vec![(Duration::ZERO, "SSH-2.0-OpenSSH_9.2\r\n")];
    let fake = Fake::start(greeting, None, postfix(true, false, KNOWN)).await;
    let err = Session::connect(fake.addr, None, &config())
        .await
        .unwrap_err();
    assert_eq!(err.as_metric_label(), "protocol_error");
}

#[tokio::test]
async fn mixed_domains_are_refused_before_anything_is_written() {
    let fake = Fake::start(greeting(), None, postfix(true, false, KNOWN)).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    let err = s
        .probe(&from(), &rcpts(&["a@example.test", "b@other.test"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Plan(_)));
    assert!(s.is_usable());
    s.quit().await.unwrap();
    assert_eq!(fake.connection(0).await.verbs(), ["EHLO", "QUIT"]);
}

#[tokio::test]
async fn transcript_shows_escaped_crlf() {
    let fake = Fake::start(greeting(), None, postfix(true, false, KNOWN)).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    s.probe(&from(), &rcpts(&["alice@example.test"]))
        .await
        .unwrap();
    let t = s.transcript().unwrap().lines().to_vec();
    let connected = format!("-- connected to {} from 127.0.0.1:", fake.addr);
    assert!(t[0].starts_with(&connected), "{:?}", t[0]);
    assert_eq!(
        t[1],
        "S: 220 mx.example.test ESMTP Postfix (Debian/GNU)\\r\\n"
    );
    assert_eq!(t[2], "C: EHLO probe.example.test\\r\\n");
    assert!(t.contains(&"C: RCPT TO:<alice@example.test>\\r\\n".to_owned()));
    assert!(t.contains(&"S: 250 2.1.5 Ok\\r\\n".to_owned()));
}

#[tokio::test]
async fn egress_address_is_bound() {
    let fake = Fake::start(greeting(), None, postfix(true, false, KNOWN)).await;
    let mut cfg = config();
    cfg.local_addr = Some("127.0.0.2".parse().unwrap());
    let mut s = Session::connect(fake.addr, None, &cfg).await.unwrap();
    s.quit().await.unwrap();
    let seen = fake.connection(0).await;
    assert_eq!(
        seen.peer.map(|p| p.ip().to_string()).as_deref(),
        Some("127.0.0.2")
    );
}
