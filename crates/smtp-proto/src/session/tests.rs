//! Unit tests of the session state machine (the property tests live in `tests/`).

use super::*;
use crate::reply::parse_reply;

fn reply(s: &str) -> Reply {
    parse_reply(s.as_bytes()).unwrap().unwrap().0
}

fn name() -> ClientName {
    ClientName::parse("probe.example.test").unwrap()
}

fn mb(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

const EHLO_PIPE: &str = "250-mx.example.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n";
const EHLO_PLAIN: &str = "250-mx.example.test\r\n250 STARTTLS\r\n";

fn ready(ehlo: &str) -> Session {
    let mut s = Session::new();
    s.on_reply(reply("220 mx ESMTP\r\n")).unwrap();
    s.ehlo(&name()).unwrap();
    s.on_reply(reply(ehlo)).unwrap();
    s
}

#[test]
fn never_speaks_before_greeting() {
    let mut s = Session::new();
    assert!(matches!(
        s.ehlo(&name()),
        Err(SequenceError::AwaitingReply {
            pending: CommandKind::Greeting,
            ..
        })
    ));
    assert!(s.quit().is_err());
    let ev = s.on_reply(reply("220 hi\r\n")).unwrap();
    assert_eq!(ev.command, Some(CommandKind::Greeting));
    assert_eq!(s.state(), &State::Greeted);
    assert_eq!(s.ehlo(&name()).unwrap(), b"EHLO probe.example.test\r\n");
}

#[test]
fn mail_needs_ehlo_and_rcpt_needs_mail() {
    let mut s = Session::new();
    s.on_reply(reply("220 hi\r\n")).unwrap();
    assert!(matches!(
        s.mail_from(&ReversePath::Null, false),
        Err(SequenceError::NotNow { .. })
    ));
    assert!(matches!(
        s.rcpt_to(&mb("a@x.test")),
        Err(SequenceError::NotNow { .. })
    ));
    let mut s = ready(EHLO_PLAIN);
    assert!(matches!(
        s.rcpt_to(&mb("a@x.test")),
        Err(SequenceError::NotNow { .. })
    ));
}

#[test]
fn lockstep_without_pipelining() {
    let mut s = ready(EHLO_PLAIN);
    s.mail_from(&ReversePath::Null, false).unwrap();
    assert_eq!(
        s.rcpt_to(&mb("a@x.test")),
        Err(SequenceError::NoPipelining {
            command: CommandKind::RcptTo
        })
    );
    s.on_reply(reply("250 2.1.0 Ok\r\n")).unwrap();
    s.rcpt_to(&mb("a@x.test")).unwrap();
    s.on_reply(reply("250 2.1.5 Ok\r\n")).unwrap();
    assert!(matches!(
        s.mail_from(&ReversePath::Null, false),
        Err(SequenceError::NotNow { .. })
    ));
    s.rset().unwrap();
    s.on_reply(reply("250 2.0.0 Ok\r\n")).unwrap();
    assert!(matches!(s.state(), State::Ready(_)));
}

#[test]
fn pipelined_group_and_enders() {
    let mut s = ready(EHLO_PIPE);
    s.mail_from(&ReversePath::Null, false).unwrap();
    s.rcpt_to(&mb("a@x.test")).unwrap();
    s.rcpt_to(&mb("b@x.test")).unwrap();
    assert!(matches!(s.quit(), Err(SequenceError::AwaitingReply { .. })));
    assert!(matches!(s.noop(), Err(SequenceError::AwaitingReply { .. })));
    s.rset().unwrap();
    // RSET then the next MAIL may share the group.
    s.mail_from(&ReversePath::Null, false).unwrap();
    assert_eq!(s.outstanding(), 5);
    for _ in 0..5 {
        assert!(!s.on_reply(reply("250 ok\r\n")).unwrap().not_probed);
    }
    assert!(matches!(s.state(), State::InTransaction { rcpts: 0, .. }));
}

#[test]
fn window_is_bounded() {
    let mut s = ready(EHLO_PIPE);
    s.mail_from(&ReversePath::Null, false).unwrap();
    let mut refused = None;
    for i in 0..1000 {
        match s.rcpt_to(&mb(&format!("user{i}@x.test"))) {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(matches!(refused, Some(SequenceError::WindowFull { .. })));
    assert!(s.in_flight() <= MAX_IN_FLIGHT);
    // Each answered command frees its bytes (MAIL 14, RCPT 25).
    s.on_reply(reply("250 ok\r\n")).unwrap();
    s.on_reply(reply("250 ok\r\n")).unwrap();
    assert!(s.rcpt_to(&mb("more@x.test")).is_ok());
}

#[test]
fn rejected_mail_orphans_following_rcpts() {
    let mut s = ready(EHLO_PIPE);
    s.mail_from(&ReversePath::Null, false).unwrap();
    s.rcpt_to(&mb("a@x.test")).unwrap();
    s.rcpt_to(&mb("b@x.test")).unwrap();
    let ev = s.on_reply(reply("550 5.7.1 sender rejected\r\n")).unwrap();
    assert_eq!(ev.command, Some(CommandKind::MailFrom));
    assert!(!ev.not_probed);
    // No RSET written: a rejected MAIL returns to Ready at once.
    assert!(matches!(s.state(), State::Ready(_)));
    let ev = s
        .on_reply(reply("503 5.5.1 Error: need MAIL command\r\n"))
        .unwrap();
    assert!(ev.not_probed && ev.command == Some(CommandKind::RcptTo));
    assert!(
        s.on_reply(reply("503 5.5.1 Error: need MAIL command\r\n"))
            .unwrap()
            .not_probed
    );
    assert_eq!(s.outstanding(), 0);
    assert!(s.mail_from(&ReversePath::Null, false).is_ok());
}

#[test]
fn rejected_mail_with_rset_already_written() {
    let mut s = ready(EHLO_PIPE);
    s.mail_from(&ReversePath::Null, false).unwrap();
    s.rcpt_to(&mb("a@x.test")).unwrap();
    s.rset().unwrap();
    s.on_reply(reply("451 4.3.0 try later\r\n")).unwrap();
    assert!(s.on_reply(reply("503 5.5.1 no\r\n")).unwrap().not_probed);
    assert!(!s.on_reply(reply("250 ok\r\n")).unwrap().not_probed);
    assert!(matches!(s.state(), State::Ready(_)));
}

#[test]
fn service_closing_421_closes_everything() {
    let mut s = ready(EHLO_PIPE);
    s.mail_from(&ReversePath::Null, false).unwrap();
    s.rcpt_to(&mb("a@x.test")).unwrap();
    s.rcpt_to(&mb("b@x.test")).unwrap();
    s.on_reply(reply("250 ok\r\n")).unwrap();
    let ev = s
        .on_reply(reply("421 4.7.0 mx Error: too many errors\r\n"))
        .unwrap();
    assert!(ev.closed && ev.not_probed);
    assert_eq!(ev.unanswered, vec![CommandKind::RcptTo]);
    assert!(s.is_closed());
    assert_eq!(s.quit(), Err(SequenceError::Closed));
    assert_eq!(s.on_reply(reply("250 ok\r\n")), Err(SequenceError::Closed));
}

#[test]
fn unsolicited_421_and_other_replies() {
    let mut s = ready(EHLO_PIPE);
    assert_eq!(
        s.on_reply(reply("250 what\r\n")),
        Err(SequenceError::UnsolicitedReply { code: 250 })
    );
    let ev = s
        .on_reply(reply("421 4.4.2 mx Error: timeout exceeded\r\n"))
        .unwrap();
    assert!(ev.closed && ev.command.is_none());
    assert!(s.is_closed());
}

#[test]
fn starttls_resets_capabilities() {
    let mut s = ready(EHLO_PIPE);
    s.starttls().unwrap();
    s.on_reply(reply("220 2.0.0 Ready to start TLS\r\n"))
        .unwrap();
    assert_eq!(s.state(), &State::TlsHandshake);
    assert!(s.ehlo(&name()).is_err());
    s.tls_established().unwrap();
    assert!(s.is_tls() && s.capabilities().is_none());
    // RFC 3207 4.2: EHLO again before MAIL.
    assert!(matches!(
        s.mail_from(&ReversePath::Null, false),
        Err(SequenceError::NotNow { .. })
    ));
    s.ehlo(&name()).unwrap();
    s.on_reply(reply("250-mx\r\n250 PIPELINING\r\n")).unwrap();
    assert_eq!(s.starttls(), Err(SequenceError::AlreadyTls));
    assert!(s.mail_from(&ReversePath::Null, false).is_ok());
}

#[test]
fn starttls_only_when_advertised() {
    let mut s = ready("250-mx\r\n250 PIPELINING\r\n");
    assert_eq!(s.starttls(), Err(SequenceError::NotAdvertised("STARTTLS")));
    let mut s = ready(EHLO_PLAIN);
    s.starttls().unwrap();
    s.on_reply(reply("454 4.7.0 TLS not available\r\n"))
        .unwrap();
    assert!(matches!(s.state(), State::Ready(_)));
    assert_eq!(s.tls_established(), Err(SequenceError::NoHandshakePending));
}

#[test]
fn helo_fallback() {
    let mut s = Session::new();
    s.on_reply(reply("220 old\r\n")).unwrap();
    s.ehlo(&name()).unwrap();
    s.on_reply(reply("502 5.5.2 Error: command not recognized\r\n"))
        .unwrap();
    assert!(s.ehlo_refused());
    s.helo(&name()).unwrap();
    s.on_reply(reply("250 old\r\n")).unwrap();
    assert_eq!(s.capabilities(), Some(&Capabilities::default()));
    assert!(!s.pipelining());
}

#[test]
fn negative_greeting_allows_only_quit() {
    let mut s = Session::new();
    s.on_reply(reply("554 5.7.1 go away\r\n")).unwrap();
    assert_eq!(s.state(), &State::Refused);
    assert!(s.ehlo(&name()).is_err());
    assert_eq!(s.quit().unwrap(), b"QUIT\r\n");
    let ev = s.on_reply(reply("221 bye\r\n")).unwrap();
    assert!(ev.closed && s.is_closed());
}

#[test]
fn utf8_needs_smtputf8() {
    let mut s = ready(EHLO_PLAIN);
    let utf = ReversePath::Mailbox(mb("pelé@x.test"));
    assert_eq!(
        s.mail_from(&utf, false),
        Err(SequenceError::NotAdvertised("SMTPUTF8"))
    );
    let mut s = ready(EHLO_PIPE);
    s.mail_from(&ReversePath::Null, false).unwrap();
    assert_eq!(
        s.rcpt_to(&mb("pelé@x.test")),
        Err(SequenceError::Utf8NotDeclared)
    );
    let mut s = ready(EHLO_PIPE);
    let bytes = s.mail_from(&ReversePath::Null, true).unwrap();
    assert_eq!(bytes, b"MAIL FROM:<> SMTPUTF8\r\n");
    assert!(s.rcpt_to(&mb("pelé@x.test")).is_ok());
}

#[test]
fn close_reports_unanswered() {
    let mut s = ready(EHLO_PIPE);
    s.mail_from(&ReversePath::Null, false).unwrap();
    s.rcpt_to(&mb("a@x.test")).unwrap();
    assert_eq!(s.close(), vec![CommandKind::MailFrom, CommandKind::RcptTo]);
    assert!(s.is_closed());
}
