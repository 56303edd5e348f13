//! Servers that speak when nobody asked: extra reply lines after the greeting, a second reply
//! to one command, replies beyond a pipelined group. None of those bytes may ever be matched to
//! a later command (the unknown user would come out accepted, and the domain catch-all); the
//! session ends as a protocol error and what its transaction heard is not trusted.

mod fake;

use std::time::Duration;

use fake::{Action, Fake, config, postfix};
use rollcall_smtp::proto::{Mailbox, ReversePath};
use rollcall_smtp::{Error, NotProbed, RecipientOutcome, Session};

const KNOWN: &[&str] = &["alice@example.test"];

fn rcpts(list: &[&str]) -> Vec<Mailbox> {
    list.iter().map(|a| Mailbox::parse(a).unwrap()).collect()
}

fn from() -> ReversePath {
    ReversePath::parse("probe@verifier.example").unwrap()
}

/// A Postfix-like handler that answers `RCPT` for `nobody1@` with its 550 and then an extra
/// `250` nobody asked for (in the same write).
fn double_reply(pipelining: bool) -> fake::Handler {
    let mut inner = postfix(pipelining, false, KNOWN);
    Box::new(move |line, tls| match inner(line, tls) {
        Action::Reply(r) if line.eq_ignore_ascii_case("RCPT TO:<nobody1@example.test>") => {
            Action::Reply(format!("{r}250 2.1.5 Ok\r\n"))
        }
        other => other,
    })
}

#[tokio::test]
async fn extra_line_after_the_greeting_is_never_matched_to_a_later_command() {
    // `250 extra` arrives with the greeting. Matched in order, it would answer EHLO, the real
    // EHLO reply would answer MAIL, and MAIL's 250 would answer the RCPT of an unknown user.
    let greeting = vec![(Duration::ZERO, "220 hi\r\n250 extra\r\n")];
    let fake = Fake::start(greeting, None, postfix(false, false, KNOWN)).await;
    let result = Session::connect(fake.addr, None, &config()).await;
    if let Ok(mut s) = result {
        let out = s
            .probe(&from(), &rcpts(&["nobody@example.test"]))
            .await
            .unwrap();
        panic!(
            "session accepted; the unknown user got {:?}",
            out.recipients[0]
        );
    }
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Unsolicited { .. }), "{err}");
    assert_eq!(err.as_metric_label(), "protocol_error");
    assert!(!err.is_transient());
    // Nothing after the greeting was written: EHLO itself waited for a quiet line.
    let seen = fake.connection(0).await;
    assert!(seen.commands.is_empty(), "{:?}", seen.commands);
}

#[tokio::test]
async fn second_reply_to_a_lockstep_rcpt_taints_the_transaction() {
    // Lockstep: the extra 250 after nobody1's 550 would answer nobody2's RCPT.
    let fake = Fake::start(fake::greeting(), None, double_reply(false)).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    let r = rcpts(&["nobody1@example.test", "nobody2@example.test"]);
    let out = s.probe(&from(), &r).await.unwrap();
    assert!(
        matches!(out.error, Some(Error::Unsolicited { .. })),
        "{:?}",
        out.error
    );
    // Which reply answered which RCPT is unknowable now: neither counts.
    for outcome in &out.recipients {
        assert_eq!(
            *outcome,
            RecipientOutcome::NotProbed(NotProbed::ConnectionLost)
        );
    }
    assert!(!s.is_usable());
    drop(s);
    // nobody2's RCPT was never written: the extra 250 was waiting when its turn came.
    let seen = fake.connection(0).await;
    assert_eq!(seen.verbs(), ["EHLO", "MAIL", "RCPT"]);
}

#[tokio::test]
async fn reply_beyond_the_pipelined_group_taints_the_transaction() {
    // Pipelined: MAIL, RCPT nobody1, RCPT alice, RSET get their four replies, then one more.
    let fake = Fake::start(fake::greeting(), None, double_reply(true)).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    assert!(s.pipelining());
    let r = rcpts(&["nobody1@example.test", "alice@example.test"]);
    let out = s.probe(&from(), &r).await.unwrap();
    assert!(
        matches!(out.error, Some(Error::Unsolicited { .. })),
        "{:?}",
        out.error
    );
    for outcome in &out.recipients {
        assert_eq!(
            *outcome,
            RecipientOutcome::NotProbed(NotProbed::ConnectionLost)
        );
    }
    assert!(!s.is_usable());
}

#[tokio::test]
async fn unprompted_421_on_an_idle_session_still_reads_as_service_closing() {
    // RFC 5321 3.8: a server may send 421 on its own before closing (idle timeout). That is
    // not a protocol error: the next command gets it, as before.
    let mut inner = postfix(true, false, KNOWN);
    let handler: fake::Handler = Box::new(move |line, tls| {
        if line.eq_ignore_ascii_case("RSET") {
            Action::ReplyClose(
                "250 2.0.0 Ok\r\n421 4.4.2 mx.example.test Error: timeout exceeded\r\n".into(),
            )
        } else {
            inner(line, tls)
        }
    });
    let fake = Fake::start(fake::greeting(), None, handler).await;
    let mut s = Session::connect(fake.addr, None, &config()).await.unwrap();
    let first = s
        .probe(&from(), &rcpts(&["alice@example.test"]))
        .await
        .unwrap();
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!(first.recipients[0].reply().map(|r| r.code), Some(250));
    let second = s
        .probe(&from(), &rcpts(&["alice@example.test"]))
        .await
        .unwrap();
    assert!(
        matches!(second.error, Some(Error::ServiceClosing(ref r)) if r.code == 421),
        "{:?}",
        second.error
    );
    assert_eq!(
        second.recipients[0],
        RecipientOutcome::NotProbed(NotProbed::SessionClosed)
    );
}
