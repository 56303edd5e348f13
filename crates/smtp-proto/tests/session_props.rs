//! Property test of the session: random calls and random server replies, watched by a
//! reference checker written here from RFC 5321 / 2920 / 3207 (it shares no code with the
//! session). It reads the bytes the session let through, plays the server's side of the
//! conversation, and fails the test on any command a server would see out of order, any group
//! without PIPELINING, anything written after EHLO/STARTTLS/QUIT/NOOP before their reply, more
//! than 4096 unanswered bytes, or a RCPT wrongly reported as probed / not probed.

use std::collections::VecDeque;

use proptest::prelude::*;
use rollcall_smtp_proto::{ClientName, CommandKind, Mailbox, ReversePath, Session, parse_reply};

/// Random call sequences tried (each up to 80 calls).
const CASES: u32 = 3000;

#[derive(Debug, Clone)]
enum Op {
    Ehlo,
    Helo,
    StartTls,
    TlsEstablished,
    Mail {
        utf8_path: bool,
        utf8_param: bool,
    },
    Rcpt(usize),
    Rset,
    Noop,
    Quit,
    /// Deliver a reply to the oldest unanswered command; `pick` chooses among realistic
    /// replies for that command, `caps` the EHLO keywords.
    Reply {
        pick: u8,
        caps: u8,
    },
    /// A 421 out of the blue (server idle timeout).
    Unsolicited421,
    ConnectionLost,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Ehlo),
        1 => Just(Op::Helo),
        1 => Just(Op::StartTls),
        1 => Just(Op::TlsEstablished),
        3 => (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Op::Mail { utf8_path: a && b, utf8_param: b }),
        6 => (0usize..4).prop_map(Op::Rcpt),
        2 => Just(Op::Rset),
        1 => Just(Op::Noop),
        1 => Just(Op::Quit),
        12 => (any::<u8>(), any::<u8>()).prop_map(|(pick, caps)| Op::Reply { pick, caps }),
        1 => Just(Op::Unsolicited421),
        1 => Just(Op::ConnectionLost),
    ]
}

const ADDRS: [&str; 4] = [
    "a@x.test",
    "bob.smith@x.test",
    "pelé@x.test",
    "c+tag@x.test",
];

/// The server's view, as the reference sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connected,
    Greeted,
    Refused,
    Hello,
    Mail,
    TlsPending,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Mail,
    Rcpt,
    Rset,
    Noop,
    Quit,
}

#[derive(Debug, Clone, Copy, Default)]
struct Ext {
    pipelining: bool,
    starttls: bool,
    smtputf8: bool,
}

#[derive(Debug, Clone)]
struct Sent {
    verb: Verb,
    len: usize,
    /// RCPT written after a MAIL that was later rejected.
    orphan: bool,
    /// MAIL with the SMTPUTF8 parameter.
    utf8: bool,
}

#[derive(Debug)]
struct Reference {
    phase: Phase,
    ext: Ext,
    tls: bool,
    /// The accepted MAIL of the open transaction carried SMTPUTF8.
    tx_utf8: bool,
    queue: VecDeque<Sent>,
}

impl Reference {
    fn new() -> Self {
        let mut queue = VecDeque::new();
        queue.push_back(Sent {
            verb: Verb::Greeting,
            len: 0,
            orphan: false,
            utf8: false,
        });
        Self {
            phase: Phase::Connected,
            ext: Ext::default(),
            tls: false,
            tx_utf8: false,
            queue,
        }
    }

    /// The phase once every unanswered command has succeeded, and whether the open
    /// transaction (if any) declared SMTPUTF8.
    fn optimistic(&self) -> (Phase, bool) {
        let mut phase = self.phase;
        let mut utf8 = self.tx_utf8;
        for s in &self.queue {
            match s.verb {
                Verb::Mail => {
                    phase = Phase::Mail;
                    utf8 = s.utf8;
                }
                Verb::Rset => phase = Phase::Hello,
                _ => {}
            }
        }
        (phase, utf8)
    }

    /// Called with the bytes the session returned: is this command in order?
    fn written(&mut self, bytes: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "non UTF-8 command".to_string())?;
        let body = text.strip_suffix("\r\n").ok_or("no CRLF")?;
        if body.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(format!("control byte in {body:?}"));
        }
        let (verb, utf8) = if body.starts_with("EHLO ") {
            (Verb::Ehlo, false)
        } else if body.starts_with("HELO ") {
            (Verb::Helo, false)
        } else if body == "STARTTLS" {
            (Verb::StartTls, false)
        } else if let Some(rest) = body.strip_prefix("MAIL FROM:<") {
            let utf8 = rest.ends_with("> SMTPUTF8");
            if !rest.is_ascii() && !utf8 {
                return Err("UTF-8 reverse path without SMTPUTF8".into());
            }
            (Verb::Mail, utf8)
        } else if let Some(rest) = body.strip_prefix("RCPT TO:<") {
            (Verb::Rcpt, !rest.is_ascii())
        } else if body == "RSET" {
            (Verb::Rset, false)
        } else if body == "NOOP" {
            (Verb::Noop, false)
        } else if body == "QUIT" {
            (Verb::Quit, false)
        } else {
            return Err(format!("unknown command {body:?}"));
        };

        // RFC 2920: grouping only under PIPELINING, only MAIL/RCPT/RSET before the last.
        if let Some(last) = self.queue.back() {
            let groupable = |v: Verb| matches!(v, Verb::Mail | Verb::Rcpt | Verb::Rset);
            if !groupable(last.verb) {
                return Err(format!(
                    "{verb:?} written before the reply to {:?}",
                    last.verb
                ));
            }
            if !groupable(verb) {
                return Err(format!("{verb:?} written with commands unanswered"));
            }
            if !self.ext.pipelining {
                return Err(format!("{verb:?} pipelined without PIPELINING"));
            }
            let in_flight: usize = self.queue.iter().map(|s| s.len).sum::<usize>() + bytes.len();
            if in_flight > 4096 {
                return Err(format!("{in_flight} bytes unanswered"));
            }
        }

        // RFC 5321 4.1.4 order, judged on the optimistic server phase.
        let (phase, tx_utf8) = self.optimistic();
        let ok = match verb {
            Verb::Greeting => false,
            Verb::Ehlo | Verb::Helo => matches!(phase, Phase::Greeted | Phase::Hello),
            Verb::StartTls => phase == Phase::Hello && self.ext.starttls && !self.tls,
            Verb::Mail => phase == Phase::Hello && (!utf8 || self.ext.smtputf8),
            Verb::Rcpt => phase == Phase::Mail && (!utf8 || tx_utf8),
            Verb::Rset => matches!(phase, Phase::Hello | Phase::Mail),
            Verb::Noop => matches!(phase, Phase::Greeted | Phase::Hello | Phase::Mail),
            Verb::Quit => matches!(
                phase,
                Phase::Greeted | Phase::Refused | Phase::Hello | Phase::Mail
            ),
        };
        if !ok {
            return Err(format!(
                "{verb:?} out of order in {phase:?} (tls={})",
                self.tls
            ));
        }
        self.queue.push_back(Sent {
            verb,
            len: bytes.len(),
            orphan: false,
            utf8,
        });
        Ok(())
    }

    /// Chooses a realistic reply for the oldest unanswered command.
    fn reply_for(&self, pick: u8, caps: u8) -> Option<(String, Ext)> {
        let front = self.queue.front()?;
        let ext = Ext {
            pipelining: caps & 1 != 0,
            starttls: caps & 2 != 0,
            smtputf8: caps & 4 != 0,
        };
        let choices: &[&str] = match front.verb {
            Verb::Greeting => &[
                "220 mx ESMTP\r\n",
                "220-mx\r\n220 mx\r\n",
                "554 5.7.1 no\r\n",
                "421 4.7.0 busy\r\n",
            ],
            Verb::Ehlo => &[
                "EHLO",
                "EHLO",
                "EHLO",
                "500 5.5.2 what\r\n",
                "502 5.5.2 no\r\n",
                "421 4.7.0 bye\r\n",
            ],
            Verb::Helo => &["250 mx\r\n", "501 5.5.4 bad\r\n", "421 4.7.0 bye\r\n"],
            Verb::StartTls => &[
                "220 2.0.0 Ready to start TLS\r\n",
                "454 4.7.0 TLS not available\r\n",
                "421 4.7.0 bye\r\n",
            ],
            Verb::Mail => &[
                "250 2.1.0 Ok\r\n",
                "250 2.1.0 Ok\r\n",
                "451 4.3.0 later\r\n",
                "550 5.7.1 sender rejected\r\n",
                "421 4.7.0 bye\r\n",
            ],
            Verb::Rcpt => &[
                "250 2.1.5 Ok\r\n",
                "550 5.1.1 unknown\r\n",
                "450 4.2.0 greylisted\r\n",
                "503 5.5.1 Error: need MAIL command\r\n",
                "452 4.5.3 too many\r\n",
                "421 4.7.0 too many errors\r\n",
            ],
            // RFC 5321 4.1.1.5 / 4.1.1.9 / 4.1.1.10: RSET and NOOP get 250, QUIT gets 221.
            Verb::Rset | Verb::Noop => &[
                "250 2.0.0 Ok\r\n",
                "250 2.0.0 Ok\r\n",
                "421 4.4.2 timeout\r\n",
            ],
            Verb::Quit => &["221 2.0.0 Bye\r\n"],
        };
        let pick = choices[pick as usize % choices.len()];
        if pick == "EHLO" {
            let mut s = String::from("250-mx.example.test\r\n");
            if ext.pipelining {
                s.push_str("250-PIPELINING\r\n");
            }
            if ext.starttls {
                s.push_str("250-starttls\r\n");
            }
            if ext.smtputf8 {
                s.push_str("250-SMTPUTF8\r\n");
            }
            s.push_str("250 8BITMIME\r\n");
            return Some((s, ext));
        }
        Some((pick.to_string(), Ext::default()))
    }

    /// The server answered: returns the expected `not_probed` for a RCPT.
    fn answered(&mut self, code: u16, ext: Ext) -> (Verb, bool) {
        let Some(sent) = self.queue.pop_front() else {
            unreachable!("no reply without a command")
        };
        let ok = (200..300).contains(&code);
        if code == 421 || sent.verb == Verb::Quit {
            self.phase = Phase::Closed;
            self.queue.clear();
            return (sent.verb, sent.verb == Verb::Rcpt);
        }
        match sent.verb {
            Verb::Greeting => self.phase = if ok { Phase::Greeted } else { Phase::Refused },
            Verb::Ehlo if ok => {
                self.phase = Phase::Hello;
                self.ext = ext;
            }
            Verb::Helo if ok => {
                self.phase = Phase::Hello;
                self.ext = Ext::default();
            }
            Verb::StartTls if ok => self.phase = Phase::TlsPending,
            Verb::Mail if ok => {
                self.phase = Phase::Mail;
                self.tx_utf8 = sent.utf8;
            }
            Verb::Mail => {
                for s in self.queue.iter_mut() {
                    if s.verb != Verb::Rcpt {
                        break;
                    }
                    s.orphan = true;
                }
            }
            Verb::Rset => self.phase = Phase::Hello,
            _ => {}
        }
        (sent.verb, sent.orphan)
    }
}

fn kind_matches(k: CommandKind, v: Verb) -> bool {
    matches!(
        (k, v),
        (CommandKind::Greeting, Verb::Greeting)
            | (CommandKind::Ehlo, Verb::Ehlo)
            | (CommandKind::Helo, Verb::Helo)
            | (CommandKind::StartTls, Verb::StartTls)
            | (CommandKind::MailFrom, Verb::Mail)
            | (CommandKind::RcptTo, Verb::Rcpt)
            | (CommandKind::Rset, Verb::Rset)
            | (CommandKind::Noop, Verb::Noop)
            | (CommandKind::Quit, Verb::Quit)
    )
}

#[derive(Debug, Default)]
struct Coverage {
    groups_over_one: usize,
    transactions: usize,
}

fn run(ops: &[Op], cov: &mut Coverage) -> Result<(), TestCaseError> {
    let mut s = Session::new();
    let mut r = Reference::new();
    let name = ClientName::parse("probe.example.test").unwrap();
    let addrs: Vec<Mailbox> = ADDRS.iter().map(|a| Mailbox::parse(a).unwrap()).collect();
    let utf8_from = ReversePath::Mailbox(Mailbox::parse("expéditeur@x.test").unwrap());
    for op in ops {
        let written = match op {
            Op::Ehlo => Some(s.ehlo(&name)),
            Op::Helo => Some(s.helo(&name)),
            Op::StartTls => Some(s.starttls()),
            Op::Mail {
                utf8_path,
                utf8_param,
            } => {
                let path = if *utf8_path {
                    &utf8_from
                } else {
                    &ReversePath::Null
                };
                let liveness = r.queue.is_empty() && r.phase == Phase::Hello;
                let res = s.mail_from(path, *utf8_param);
                if liveness && !*utf8_path && !*utf8_param {
                    prop_assert!(res.is_ok(), "MAIL refused in Hello: {:?}", res);
                }
                if res.is_ok() {
                    cov.transactions += 1;
                }
                Some(res)
            }
            Op::Rcpt(i) => Some(s.rcpt_to(&addrs[*i])),
            Op::Rset => Some(s.rset()),
            Op::Noop => Some(s.noop()),
            Op::Quit => Some(s.quit()),
            Op::TlsEstablished => {
                let res = s.tls_established();
                let expected = r.phase == Phase::TlsPending;
                prop_assert_eq!(res.is_ok(), expected, "tls_established in {:?}", r.phase);
                if expected {
                    // RFC 3207 4.2: the server forgets everything it knew.
                    r.phase = Phase::Greeted;
                    r.ext = Ext::default();
                    r.tls = true;
                }
                None
            }
            Op::Reply { pick, caps } => {
                if let Some((wire, ext)) = r.reply_for(*pick, *caps) {
                    let reply = parse_reply(wire.as_bytes()).unwrap().unwrap().0;
                    let code = reply.code;
                    let ev = s
                        .on_reply(reply)
                        .map_err(|e| TestCaseError::fail(format!("on_reply: {e}")))?;
                    let (verb, orphan) = r.answered(code, ext);
                    prop_assert!(
                        ev.command.is_some_and(|k| kind_matches(k, verb)),
                        "{:?} vs {:?}",
                        ev.command,
                        verb
                    );
                    if verb == Verb::Rcpt {
                        prop_assert_eq!(ev.not_probed, orphan, "not_probed for {}", code);
                    } else {
                        prop_assert!(!ev.not_probed);
                    }
                    prop_assert_eq!(ev.closed, r.phase == Phase::Closed);
                } else if r.phase != Phase::Closed {
                    // Nothing outstanding: a stray reply is refused, not swallowed.
                    let stray = parse_reply(b"250 what\r\n").unwrap().unwrap().0;
                    prop_assert!(s.on_reply(stray).is_err());
                }
                None
            }
            Op::Unsolicited421 => {
                if r.queue.is_empty() && r.phase != Phase::Closed {
                    let ev = s.on_reply(parse_reply(b"421 4.4.2 idle\r\n").unwrap().unwrap().0);
                    prop_assert!(ev.is_ok_and(|e| e.closed && e.command.is_none()));
                    r.phase = Phase::Closed;
                }
                None
            }
            Op::ConnectionLost => {
                let lost = s.close();
                prop_assert_eq!(lost.len(), r.queue.len());
                r.phase = Phase::Closed;
                r.queue.clear();
                None
            }
        };
        if let Some(Ok(bytes)) = written {
            if !r.queue.is_empty() && r.queue.front().is_some_and(|f| f.verb != Verb::Greeting) {
                cov.groups_over_one += 1;
            }
            if r.phase == Phase::Closed
                || r.phase == Phase::TlsPending
                || r.phase == Phase::Connected
            {
                return Err(TestCaseError::fail(format!(
                    "wrote {:?} in {:?}",
                    String::from_utf8_lossy(&bytes),
                    r.phase
                )));
            }
            r.written(&bytes).map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(s.is_closed(), r.phase == Phase::Closed);
    }
    Ok(())
}

/// Biases the sequence toward a working session so that deep states are reached often.
fn prefix() -> Vec<Op> {
    vec![
        Op::Reply { pick: 0, caps: 0 },
        Op::Ehlo,
        Op::Reply { pick: 0, caps: 7 },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn never_out_of_order(warm in any::<bool>(), ops in proptest::collection::vec(op(), 1..80)) {
        let mut all = if warm { prefix() } else { Vec::new() };
        all.extend(ops);
        let mut cov = Coverage::default();
        run(&all, &mut cov)?;
    }
}

/// The generator reaches the interesting states: pipelined groups and transactions do happen
/// (otherwise the property above would be vacuous).
#[test]
fn generator_reaches_pipelined_groups() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(op(), 40..80);
    let mut cov = Coverage::default();
    for _ in 0..500 {
        let mut all = prefix();
        all.extend(strategy.new_tree(&mut runner).unwrap().current());
        run(&all, &mut cov).unwrap();
    }
    assert!(cov.groups_over_one > 100, "{cov:?}");
    assert!(cov.transactions > 100, "{cov:?}");
}
