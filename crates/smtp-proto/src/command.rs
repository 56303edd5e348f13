//! Client commands: one type per command, each encoding its exact wire bytes (CRLF included).
//!
//! Owns the encoding only. Whether a command may be sent now is the session's decision; whether
//! an address is well-formed was decided when its `Mailbox` was built (`path` module), so
//! nothing here can emit a control character that a caller supplied.

use std::fmt;

use crate::path::{ClientName, Mailbox, ReversePath};

/// Which command a reply answers (the session reports replies with this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// Not a command: the server's opening reply (RFC 5321 3.1).
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    MailFrom,
    RcptTo,
    Rset,
    Noop,
    Quit,
}

impl CommandKind {
    /// Every command kind.
    pub const ALL: [CommandKind; 9] = [
        Self::Greeting,
        Self::Ehlo,
        Self::Helo,
        Self::StartTls,
        Self::MailFrom,
        Self::RcptTo,
        Self::Rset,
        Self::Noop,
        Self::Quit,
    ];

    /// The stable snake_case name (fixtures, labels): `greeting`, `ehlo`, `helo`, `starttls`,
    /// `mail_from`, `rcpt_to`, `rset`, `noop`, `quit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Greeting => "greeting",
            Self::Ehlo => "ehlo",
            Self::Helo => "helo",
            Self::StartTls => "starttls",
            Self::MailFrom => "mail_from",
            Self::RcptTo => "rcpt_to",
            Self::Rset => "rset",
            Self::Noop => "noop",
            Self::Quit => "quit",
        }
    }

    /// The kind whose [`as_str`](Self::as_str) name is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// RFC 2920 3.1: only these may be followed by another command before their reply arrives.
    pub fn is_groupable(self) -> bool {
        matches!(self, Self::MailFrom | Self::RcptTo | Self::Rset)
    }

    /// The verb as written on the wire (for logs and metrics labels).
    pub fn verb(self) -> &'static str {
        match self {
            Self::Greeting => "GREETING",
            Self::Ehlo => "EHLO",
            Self::Helo => "HELO",
            Self::StartTls => "STARTTLS",
            Self::MailFrom => "MAIL",
            Self::RcptTo => "RCPT",
            Self::Rset => "RSET",
            Self::Noop => "NOOP",
            Self::Quit => "QUIT",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// A command that knows its wire form.
pub trait Command {
    const KIND: CommandKind;
    /// Appends the exact bytes, CRLF included.
    fn encode(&self, out: &mut Vec<u8>);

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// `EHLO name` (RFC 5321 4.1.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ehlo(pub ClientName);

/// `HELO name`, the fallback when EHLO is not recognised (RFC 5321 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helo(pub ClientName);

/// `STARTTLS` (RFC 3207 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartTls;

/// `MAIL FROM:<path>` with ` SMTPUTF8` when the transaction carries a UTF-8 address
/// (RFC 6531 3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    pub path: ReversePath,
    pub smtputf8: bool,
}

/// `RCPT TO:<path>` (RFC 5321 4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo(pub Mailbox);

/// `RSET` (RFC 5321 4.1.1.5): ends the transaction, keeps the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rset;

/// `NOOP` (RFC 5321 4.1.1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noop;

/// `QUIT` (RFC 5321 4.1.1.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quit;

impl Command for Ehlo {
    const KIND: CommandKind = CommandKind::Ehlo;
    fn encode(&self, out: &mut Vec<u8>) {
        line(out, &["EHLO ", self.0.as_str()]);
    }
}

impl Command for Helo {
    const KIND: CommandKind = CommandKind::Helo;
    fn encode(&self, out: &mut Vec<u8>) {
        line(out, &["HELO ", self.0.as_str()]);
    }
}

impl Command for StartTls {
    const KIND: CommandKind = CommandKind::StartTls;
    fn encode(&self, out: &mut Vec<u8>) {
        line(out, &["STARTTLS"]);
    }
}

impl Command for MailFrom {
    const KIND: CommandKind = CommandKind::MailFrom;
    fn encode(&self, out: &mut Vec<u8>) {
        let path = match &self.path {
            ReversePath::Null => "",
            ReversePath::Mailbox(m) => m.as_str(),
        };
        let param = if self.smtputf8 { " SMTPUTF8" } else { "" };
        line(out, &["MAIL FROM:<", path, ">", param]);
    }
}

impl Command for RcptTo {
    const KIND: CommandKind = CommandKind::RcptTo;
    fn encode(&self, out: &mut Vec<u8>) {
        line(out, &["RCPT TO:<", self.0.as_str(), ">"]);
    }
}

impl Command for Rset {
    const KIND: CommandKind = CommandKind::Rset;
    fn encode(&self, out: &mut Vec<u8>) {
        line(out, &["RSET"]);
    }
}

impl Command for Noop {
    const KIND: CommandKind = CommandKind::Noop;
    fn encode(&self, out: &mut Vec<u8>) {
        line(out, &["NOOP"]);
    }
}

impl Command for Quit {
    const KIND: CommandKind = CommandKind::Quit;
    fn encode(&self, out: &mut Vec<u8>) {
        line(out, &["QUIT"]);
    }
}

fn line(out: &mut Vec<u8>, parts: &[&str]) {
    // One allocation for the whole line, not one per part as the buffer grows.
    out.reserve(parts.iter().map(|p| p.len()).sum::<usize>() + 2);
    for p in parts {
        out.extend_from_slice(p.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Renders wire bytes for a log or transcript: CR and LF as `\r` `\n`, other control bytes and
/// invalid UTF-8 as `\xNN`, so one wire line is always one log line.
pub fn escape_wire(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 4);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn command_names_round_trip() {
        for k in CommandKind::ALL {
            assert_eq!(CommandKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(CommandKind::from_name("RCPT"), None);
    }

    #[test]
    fn exact_wire_bytes() {
        let name = ClientName::parse("probe.example.test").unwrap();
        assert_eq!(
            Ehlo(name.clone()).to_bytes(),
            b"EHLO probe.example.test\r\n"
        );
        assert_eq!(Helo(name).to_bytes(), b"HELO probe.example.test\r\n");
        assert_eq!(StartTls.to_bytes(), b"STARTTLS\r\n");
        let null = MailFrom {
            path: ReversePath::Null,
            smtputf8: false,
        };
        assert_eq!(null.to_bytes(), b"MAIL FROM:<>\r\n");
        let utf8 = MailFrom {
            path: ReversePath::Mailbox(mb("pelé@exemple.test")),
            smtputf8: true,
        };
        assert_eq!(
            utf8.to_bytes(),
            "MAIL FROM:<pelé@exemple.test> SMTPUTF8\r\n".as_bytes()
        );
        assert_eq!(RcptTo(mb("a@b.test")).to_bytes(), b"RCPT TO:<a@b.test>\r\n");
        assert_eq!(Rset.to_bytes(), b"RSET\r\n");
        assert_eq!(Noop.to_bytes(), b"NOOP\r\n");
        assert_eq!(Quit.to_bytes(), b"QUIT\r\n");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_wire(b"EHLO x\r\n"), "EHLO x\\r\\n");
        assert_eq!(escape_wire(b"a\0b\xff\\"), "a\\x00b\\xff\\\\");
        assert_eq!(escape_wire("é".as_bytes()), "é");
    }

    #[test]
    fn groupable() {
        assert!(CommandKind::RcptTo.is_groupable());
        assert!(!CommandKind::Ehlo.is_groupable());
        assert!(!CommandKind::Quit.is_groupable());
        assert!(!CommandKind::Noop.is_groupable());
    }
}
