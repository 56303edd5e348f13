//! The server-side SMTP command parser: one command line (without its line ending) in, one
//! [`Command`] out. Written independently of the client codec on purpose, and strict where
//! RFC 5321 is strict (`MAIL FROM:<path>` with no space after the colon, 4.1.1.2), so that it
//! catches a client's mistakes instead of sharing them. Owns no session state.

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Ehlo(String),
    Helo(String),
    /// `MAIL FROM:<path> params`; `path` is without the angle brackets.
    Mail {
        path: String,
        params: Vec<String>,
    },
    /// `RCPT TO:<path> params`.
    Rcpt {
        path: String,
        params: Vec<String>,
    },
    Rset,
    Noop,
    Quit,
    StartTls,
    Data,
    /// A known command the server refuses outright; carries the full reply.
    Refused(&'static str),
    /// A known command with bad arguments; carries the full reply.
    Syntax(&'static str),
    /// Not an SMTP command.
    Unknown,
}

/// A parsed line and whether its verb must end a pipelined group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub command: Command,
    /// RFC 2920 3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP (and RFC 3207: STARTTLS; and
    /// HELO) change state, so they may only appear last in a group.
    pub ends_group: bool,
}

pub(crate) const UNKNOWN: &str = "500 5.5.2 Error: command not recognized";

/// Parses one command line.
pub(crate) fn parse(line: &[u8]) -> Parsed {
    let Ok(text) = std::str::from_utf8(line) else {
        return Parsed {
            command: Command::Syntax("500 5.5.2 Error: bad UTF-8 syntax"),
            ends_group: false,
        };
    };
    let (verb, rest) = match text.find(' ') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let ends_group = matches!(
        verb.as_str(),
        "EHLO" | "HELO" | "DATA" | "VRFY" | "EXPN" | "TURN" | "QUIT" | "NOOP" | "STARTTLS"
    );
    // Control characters (other than in NOOP's free text) are never valid in a command.
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Parsed {
            command: Command::Syntax("500 5.5.2 Error: bad syntax"),
            ends_group,
        };
    }
    let no_args = |c: Command, syntax: &'static str| {
        if rest.trim().is_empty() {
            c
        } else {
            Command::Syntax(syntax)
        }
    };
    let command = match verb.as_str() {
        "EHLO" | "HELO" => {
            let arg = rest.trim();
            if arg.is_empty() || arg.contains(' ') {
                Command::Syntax(if verb == "EHLO" {
                    "501 5.5.4 Syntax: EHLO hostname"
                } else {
                    "501 5.5.4 Syntax: HELO hostname"
                })
            } else if verb == "EHLO" {
                Command::Ehlo(arg.to_string())
            } else {
                Command::Helo(arg.to_string())
            }
        }
        "MAIL" => match path_and_params(rest, "FROM:") {
            Some((path, params)) => Command::Mail { path, params },
            None => Command::Syntax("501 5.5.4 Syntax: MAIL FROM:<address>"),
        },
        "RCPT" => match path_and_params(rest, "TO:") {
            Some((path, params)) => Command::Rcpt { path, params },
            None => Command::Syntax("501 5.5.4 Syntax: RCPT TO:<address>"),
        },
        "RSET" => no_args(Command::Rset, "501 5.5.4 Syntax: RSET"),
        "NOOP" => Command::Noop,
        "QUIT" => no_args(Command::Quit, "501 5.5.4 Syntax: QUIT"),
        "STARTTLS" => no_args(Command::StartTls, "501 5.5.4 Syntax: STARTTLS"),
        "DATA" => no_args(Command::Data, "501 5.5.4 Syntax: DATA"),
        "VRFY" => Command::Refused("502 5.5.1 VRFY command is disabled"),
        "EXPN" | "TURN" | "ETRN" | "HELP" | "BDAT" => {
            Command::Refused("502 5.5.1 Error: command not implemented")
        }
        "AUTH" => Command::Refused("503 5.5.1 Error: authentication not enabled"),
        _ => Command::Unknown,
    };
    Parsed {
        command,
        ends_group,
    }
}

/// `FROM:<path> P1 P2` -> (path, [P1, P2]). The keyword is case-insensitive; the path must
/// follow the colon at once and be enclosed in angle brackets.
fn path_and_params(rest: &str, keyword: &str) -> Option<(String, Vec<String>)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let after = &rest[keyword.len()..];
    let inner = after.strip_prefix('<')?;
    let close = inner.find('>')?;
    let path = &inner[..close];
    if path.contains('<') || (path.contains(' ') && !path.starts_with('"')) {
        return None;
    }
    let tail = &inner[close + 1..];
    if !tail.is_empty() && !tail.starts_with(' ') {
        return None;
    }
    let params = tail
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    Some((path.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Command {
        parse(s.as_bytes()).command
    }

    #[test]
    fn parses_the_verifier_commands() {
        assert_eq!(cmd("EHLO probe.test"), Command::Ehlo("probe.test".into()));
        assert_eq!(cmd("helo probe.test"), Command::Helo("probe.test".into()));
        assert_eq!(
            cmd("MAIL FROM:<a@b.test> SIZE=10"),
            Command::Mail {
                path: "a@b.test".into(),
                params: vec!["SIZE=10".into()]
            }
        );
        assert_eq!(
            cmd("mail from:<>"),
            Command::Mail {
                path: String::new(),
                params: vec![]
            }
        );
        assert_eq!(
            cmd("RCPT TO:<x@y.test>"),
            Command::Rcpt {
                path: "x@y.test".into(),
                params: vec![]
            }
        );
        assert_eq!(cmd("RSET"), Command::Rset);
        assert_eq!(cmd("quit"), Command::Quit);
        assert_eq!(cmd("STARTTLS"), Command::StartTls);
    }

    #[test]
    fn strict_where_rfc_5321_is_strict() {
        assert!(matches!(cmd("MAIL FROM: <a@b.test>"), Command::Syntax(_)));
        assert!(matches!(cmd("MAIL FROM:a@b.test"), Command::Syntax(_)));
        assert!(matches!(cmd("RCPT TO:<a@b.test"), Command::Syntax(_)));
        assert!(matches!(cmd("RCPT TO:<a@b.test>x"), Command::Syntax(_)));
        assert!(matches!(cmd("RSET now"), Command::Syntax(_)));
        assert!(matches!(cmd("EHLO"), Command::Syntax(_)));
        assert!(matches!(cmd("RCPT TO:<a\u{1}@b.test>"), Command::Syntax(_)));
        assert_eq!(cmd("XYZZY"), Command::Unknown);
        assert!(matches!(parse(&[0xff, 0xfe]).command, Command::Syntax(_)));
    }

    #[test]
    fn group_enders_follow_rfc_2920() {
        for s in [
            "EHLO a", "HELO a", "QUIT", "STARTTLS", "DATA", "NOOP", "VRFY x",
        ] {
            assert!(parse(s.as_bytes()).ends_group, "{s}");
        }
        for s in ["MAIL FROM:<>", "RCPT TO:<a@b.test>", "RSET"] {
            assert!(!parse(s.as_bytes()).ends_group, "{s}");
        }
    }
}
