//! Server replies: the incremental parser and the `Reply` value.
//!
//! Owns the wire grammar of RFC 5321 4.2 (multi-line replies, one code per reply) and the
//! enhanced status codes of RFC 3463. Does not own what a reply *means* for a command (the
//! session does) nor any verdict (classification lives in the core crate).

use std::borrow::Cow;
use std::fmt;

/// Longest reply line accepted, CRLF excluded. RFC 5321 4.5.3.1.5 says 512 octets; real servers
/// exceed it, so we allow more but stay bounded.
pub const MAX_LINE_LEN: usize = 4096;
/// Most lines accepted in one reply (EHLO replies are the longest seen, ~20 lines).
pub const MAX_LINES: usize = 256;
/// `Reply::text()` never returns more than this many bytes.
pub const MAX_TEXT_LEN: usize = 1024;

/// Why bytes from the server are not an SMTP reply. The connection is unusable afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line does not start with a three-digit reply code (RFC 5321 4.2).
    #[error("malformed reply line (no valid reply code)")]
    BadCode,
    /// The fourth byte is neither SP, `-` nor end of line.
    #[error("malformed reply line (bad separator after the code)")]
    BadSeparator,
    /// A continuation line carries a different code than the first line (RFC 5321 4.2.1).
    #[error("reply lines disagree on the code: {first} then {other}")]
    MixedCodes { first: u16, other: u16 },
    /// A line longer than [`MAX_LINE_LEN`].
    #[error("reply line longer than {MAX_LINE_LEN} bytes")]
    LineTooLong,
    /// A reply with more than [`MAX_LINES`] lines.
    #[error("reply longer than {MAX_LINES} lines")]
    TooManyLines,
}

/// An RFC 3463 enhanced status code `class.subject.detail`, e.g. `5.1.1`. With the `serde`
/// feature it is written and read as that dotted string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }

    /// Parses `x.y.z` (RFC 3463 2: class 2, 4 or 5; subject and detail 1-3 digits).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let class: u8 = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        let num = |p: &str| -> Option<u16> {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        Some(Self::new(class, num(subject)?, num(detail)?))
    }

    /// Parses a code at the start of `text` (as servers put it after the basic code, RFC 2034
    /// 4), followed by white space or the end. Returns the code and the rest of the text.
    pub fn parse_prefix(text: &str) -> Option<(Self, &str)> {
        let end = text
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(text.len());
        let code = Self::parse(&text[..end])?;
        Some((code, text[end..].trim_start()))
    }

    /// Finds qmail's trailing form, `... (#5.1.1)`, anywhere in the text.
    pub fn find_qmail_suffix(text: &str) -> Option<Self> {
        let start = text.rfind("(#")? + 2;
        let end = start + text[start..].find(')')?;
        Self::parse(&text[start..end])
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for EnhancedCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for EnhancedCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&s).ok_or_else(|| {
            let shown: String = s.chars().filter(|c| !c.is_control()).take(32).collect();
            serde::de::Error::custom(format_args!("unknown enhanced status code {shown:?}"))
        })
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete server reply. The code applies to every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit reply code, 200..=599.
    pub code: u16,
    /// Enhanced status code of the first line, if the server sent one.
    pub enhanced: Option<EnhancedCode>,
    /// Text of each line, without the code, separator, enhanced code or line ending.
    /// Invalid UTF-8 is replaced (servers send Latin-1 now and then).
    pub lines: Vec<String>,
}

impl Reply {
    /// Builds a reply value (for tests and fakes).
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: &str) -> Self {
        Self {
            code,
            enhanced,
            lines: vec![text.to_owned()],
        }
    }

    /// 2xx (RFC 5321 4.2.1: positive completion).
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx (positive intermediate; only DATA earns it, which rollcall never sends).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: transient negative, try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: permanent negative.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// 421: the server is closing the transmission channel (RFC 5321 3.8).
    pub fn is_closing(&self) -> bool {
        self.code == 421
    }

    /// The lines joined with a space, cut to at most [`MAX_TEXT_LEN`] bytes (on a char boundary).
    /// Borrowed for the common one-line reply: every RCPT reply is read this way, some twice.
    pub fn text(&self) -> Cow<'_, str> {
        if let [line] = self.lines.as_slice()
            && line.len() <= MAX_TEXT_LEN
        {
            return Cow::Borrowed(line);
        }
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(line);
            if out.len() >= MAX_TEXT_LEN {
                break;
            }
        }
        if out.len() > MAX_TEXT_LEN {
            let mut cut = MAX_TEXT_LEN;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
        Cow::Owned(out)
    }

    /// The reply as it appeared on the wire (CRLF line endings), for transcripts.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.push_str(&self.code.to_string());
            out.push(sep);
            if let (0, Some(e)) = (i, self.enhanced) {
                out.push_str(&e.to_string());
                if !line.is_empty() {
                    out.push(' ');
                }
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        write!(f, " {}", self.text())
    }
}

/// Parses one reply from the front of `buf`, from scratch.
///
/// `Ok(None)`: the bytes so far are a valid prefix, read more. `Ok(Some((reply, n)))`: a
/// complete reply used the first `n` bytes. `Err`: the server is not speaking SMTP (or is
/// hostile); drop the connection. Bare LF is accepted as a line end (tolerance for broken
/// servers); CR before LF is stripped. Never panics, never needs more than
/// `MAX_LINES * (MAX_LINE_LEN + 2)` bytes of input.
///
/// Every call scans `buf` from its first byte: a reader that calls it after each read pays for
/// the whole buffer each time. Such a reader keeps a [`ReplyParser`] instead.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    ReplyParser::new().parse(buf)
}

/// The reply parser with its place kept between reads, so that each byte a server sends is
/// examined a bounded number of times however it is cut into segments (a server dribbling a
/// long reply one byte per segment would otherwise cost time quadratic in the reply's size).
///
/// Contract: between calls the caller only appends to the buffer it passes; after a complete
/// reply (`Ok(Some((_, n)))`) it removes the first `n` bytes, and the parser starts again at the
/// front. After an `Err` (or to parse a different buffer) it starts again too. A buffer shorter
/// than what was already examined is taken as a new buffer.
#[derive(Debug, Clone, Default)]
pub struct ReplyParser {
    /// End of the complete, validated lines of the reply in progress (start of the line
    /// being read).
    line_start: usize,
    /// Bytes of `buf` already searched for the line's LF (absolute offset, >= `line_start`).
    searched: usize,
    code: Option<u16>,
    enhanced: Option<EnhancedCode>,
    lines: Vec<String>,
    /// Bytes examined since the parser was made: searched for a line end, or decoded as a
    /// complete line. Each byte counts at most twice.
    examined: u64,
}

impl ReplyParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes examined so far (for tests and metrics: the parser's work is linear in the bytes
    /// received, at most twice their number).
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    /// Forgets the reply in progress (keeps the work counter).
    pub fn reset(&mut self) {
        self.line_start = 0;
        self.searched = 0;
        self.code = None;
        self.enhanced = None;
        self.lines = Vec::new();
    }

    /// Like [`parse_reply`], resuming where the previous call on the same (grown) buffer
    /// stopped: the lines already complete are not decoded again and the partial line is not
    /// searched again.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        if buf.len() < self.searched {
            self.reset();
        }
        let result = self.resume(buf);
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    fn resume(&mut self, buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        loop {
            let from = self.searched.max(self.line_start);
            let Some(nl) = buf[from..].iter().position(|&b| b == b'\n') else {
                self.examined += (buf.len() - from) as u64;
                self.searched = buf.len();
                // Incomplete line: check what we have so far so a hostile server cannot make
                // us buffer forever, then ask for more. O(1): only its length and first bytes.
                check_partial_line(&buf[self.line_start..], self.code)?;
                return Ok(None);
            };
            self.examined += (nl + 1) as u64;
            let end = from + nl;
            let mut line = &buf[self.line_start..end];
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            if line.len() > MAX_LINE_LEN {
                return Err(ReplyError::LineTooLong);
            }
            self.examined += line.len() as u64;
            let (line_code, last, text) = split_line(line)?;
            match self.code {
                None => self.code = Some(line_code),
                Some(first) if first != line_code => {
                    return Err(ReplyError::MixedCodes {
                        first,
                        other: line_code,
                    });
                }
                Some(_) => {}
            }
            if self.lines.len() >= MAX_LINES {
                return Err(ReplyError::TooManyLines);
            }
            let text = String::from_utf8_lossy(text);
            let text = if self.lines.is_empty() {
                let (e, rest) = split_enhanced(&text);
                self.enhanced = e;
                rest.to_owned()
            } else {
                // Continuation lines often repeat the enhanced code (Gmail: `550-5.1.1 The
                // email account...`); drop it when it matches the first line's.
                match (split_enhanced(&text), self.enhanced) {
                    ((Some(e), rest), Some(first)) if e == first => rest.to_owned(),
                    _ => text.into_owned(),
                }
            };
            self.lines.push(text);
            self.line_start = end + 1;
            self.searched = end + 1;
            if last {
                let reply = Reply {
                    code: self.code.unwrap_or(line_code),
                    enhanced: self.enhanced,
                    lines: std::mem::take(&mut self.lines),
                };
                return Ok(Some((reply, self.line_start)));
            }
        }
    }
}

/// Validates what can be validated of a line that has not ended yet.
fn check_partial_line(rest: &[u8], code: Option<u16>) -> Result<(), ReplyError> {
    // A CR may still be followed by LF, so allow one extra byte.
    if rest.len() > MAX_LINE_LEN + 1 {
        return Err(ReplyError::LineTooLong);
    }
    let digits = rest.len().min(3);
    if rest[..digits]
        .iter()
        .enumerate()
        .any(|(i, &b)| !valid_code_digit(i, b))
    {
        return Err(ReplyError::BadCode);
    }
    if let (Some(first), true) = (code, rest.len() >= 3) {
        let c = code_of(&rest[..3]);
        if c != first {
            return Err(ReplyError::MixedCodes { first, other: c });
        }
    }
    if rest.len() >= 4 && rest[3] != b' ' && rest[3] != b'-' && rest[3] != b'\r' {
        return Err(ReplyError::BadSeparator);
    }
    Ok(())
}

/// RFC 5321 4.2: first digit 2-5, second 0-5, third 0-9.
fn valid_code_digit(i: usize, b: u8) -> bool {
    match i {
        0 => (b'2'..=b'5').contains(&b),
        1 => (b'0'..=b'5').contains(&b),
        _ => b.is_ascii_digit(),
    }
}

fn code_of(d: &[u8]) -> u16 {
    d.iter()
        .fold(0u16, |acc, &b| acc * 10 + u16::from(b - b'0'))
}

/// Splits a complete line (no line ending) into (code, is_last, text).
fn split_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
    if line.len() < 3
        || !line[..3]
            .iter()
            .enumerate()
            .all(|(i, &b)| valid_code_digit(i, b))
    {
        return Err(ReplyError::BadCode);
    }
    let code = code_of(&line[..3]);
    match line.get(3) {
        // RFC 5321 4.2: `Reply-code [ SP textstring ] CRLF` ends the reply; a bare code too.
        None => Ok((code, true, &[])),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(ReplyError::BadSeparator),
    }
}

/// Takes a leading `x.y.z ` off a line's text (RFC 3463 is carried at the start of the text).
fn split_enhanced(text: &str) -> (Option<EnhancedCode>, &str) {
    let (head, rest) = match text.split_once(' ') {
        Some((h, r)) => (h, r),
        None => (text, ""),
    };
    match EnhancedCode::parse(head) {
        Some(e) => (Some(e), rest),
        None => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(s: &str) -> (Reply, usize) {
        parse_reply(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let (r, n) = parse_all("250 2.1.5 Ok\r\n");
        assert_eq!(n, 14);
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, Some(EnhancedCode::new(2, 1, 5)));
        assert_eq!(r.lines, vec!["Ok"]);
        assert!(r.is_positive() && !r.is_transient() && !r.is_permanent());
    }

    #[test]
    fn postfix_unknown_user() {
        let s = "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table\r\n";
        let (r, _) = parse_all(s);
        assert!(r.is_permanent());
        assert_eq!(r.enhanced.map(|e| e.to_string()).as_deref(), Some("5.1.1"));
        assert!(r.text().starts_with("<nobody@example.test>: Recipient"));
        assert_eq!(r.to_wire(), s);
    }

    #[test]
    fn multi_line_ehlo() {
        let s = "250-mx.example.test\r\n250-PIPELINING\r\n250 CHUNKING\r\nextra";
        let (r, n) = parse_all(s);
        assert_eq!(n, s.len() - 5);
        assert_eq!(r.lines, vec!["mx.example.test", "PIPELINING", "CHUNKING"]);
        assert_eq!(r.enhanced, None);
    }

    #[test]
    fn gmail_style_repeated_enhanced_code_is_stripped() {
        let s = "550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 https://support.example.test/mail x1si\r\n";
        let (r, _) = parse_all(s);
        assert_eq!(r.enhanced, Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(r.lines[1], "https://support.example.test/mail x1si");
    }

    #[test]
    fn need_more_is_not_malformed() {
        assert_eq!(parse_reply(b""), Ok(None));
        assert_eq!(parse_reply(b"2"), Ok(None));
        assert_eq!(parse_reply(b"250-a\r\n250"), Ok(None));
        assert_eq!(parse_reply(b"250 ok\r"), Ok(None));
        assert_eq!(parse_reply(b"x"), Err(ReplyError::BadCode));
        assert_eq!(
            parse_reply(b"250-a\r\n251"),
            Err(ReplyError::MixedCodes {
                first: 250,
                other: 251
            })
        );
    }

    #[test]
    fn bare_lf_and_bare_code() {
        let (r, n) = parse_all("220 hi\n");
        assert_eq!((r.code, n), (220, 7));
        let (r, _) = parse_all("250\r\n");
        assert_eq!(r.lines, vec![""]);
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_reply(b"25\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse_reply(b"650 x\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse_reply(b"250x\r\n"), Err(ReplyError::BadSeparator));
        assert_eq!(
            parse_reply(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::MixedCodes {
                first: 250,
                other: 251
            })
        );
    }

    #[test]
    fn bounded() {
        let long = format!("250 {}\r\n", "a".repeat(MAX_LINE_LEN));
        assert_eq!(parse_reply(long.as_bytes()), Err(ReplyError::LineTooLong));
        let partial = format!("250 {}", "a".repeat(MAX_LINE_LEN));
        assert_eq!(
            parse_reply(partial.as_bytes()),
            Err(ReplyError::LineTooLong)
        );
        let many = "250-x\r\n".repeat(MAX_LINES) + "250 end\r\n";
        assert_eq!(parse_reply(many.as_bytes()), Err(ReplyError::TooManyLines));
        let ok = "250-x\r\n".repeat(MAX_LINES - 1) + "250 end\r\n";
        assert!(parse_reply(ok.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn enhanced_code_only_when_well_formed() {
        assert_eq!(parse_all("250 2.0 ok\r\n").0.enhanced, None);
        assert_eq!(parse_all("250 3.1.1 ok\r\n").0.enhanced, None);
        assert_eq!(parse_all("250 2.1.1234 ok\r\n").0.enhanced, None);
        let (r, _) = parse_all("421 4.7.0\r\n");
        assert_eq!(
            (r.enhanced, r.text().into_owned()),
            (Some(EnhancedCode::new(4, 7, 0)), String::new())
        );
    }

    #[test]
    fn text_is_bounded_on_char_boundary() {
        let r = Reply {
            code: 250,
            enhanced: None,
            lines: vec!["é".repeat(MAX_TEXT_LEN); 3],
        };
        let t = r.text();
        assert!(t.len() <= MAX_TEXT_LEN && !t.is_empty());
    }

    /// `lines` lines of `len` bytes each (CRLF included), one reply.
    fn long_reply(lines: usize, len: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for i in 0..lines {
            wire.extend_from_slice(if i + 1 == lines { b"250 " } else { b"250-" });
            wire.extend(std::iter::repeat_n(b'a', len - 6));
            wire.extend_from_slice(b"\r\n");
        }
        wire
    }

    #[test]
    fn dribbled_reply_costs_linear_work() {
        // A hostile server sends 64 lines of 4 KiB one byte per segment; the driver grows its
        // buffer by a byte and asks again after every read.
        let wire = long_reply(64, MAX_LINE_LEN);
        let mut parser = ReplyParser::new();
        let mut buf = Vec::new();
        let mut done = None;
        for &b in &wire {
            buf.push(b);
            if let Some(got) = parser.parse(&buf).unwrap() {
                done = Some(got);
            }
        }
        let (reply, used) = done.expect("complete reply");
        assert_eq!((reply.lines.len(), used), (64, wire.len()));
        assert_eq!(parse_reply(&wire), Ok(Some((reply, used))));
        // Each byte searched once for LF and decoded once as part of its line.
        assert!(
            parser.bytes_examined() <= 2 * wire.len() as u64,
            "{} bytes examined for {} received",
            parser.bytes_examined(),
            wire.len()
        );
    }

    #[test]
    fn parsing_from_scratch_after_every_read_is_quadratic() {
        // What a reader that does not keep its parser pays (the driver before ReplyParser):
        // every read re-examines the whole buffer.
        let wire = long_reply(8, 512);
        let mut examined = 0u64;
        for end in 1..=wire.len() {
            let mut fresh = ReplyParser::new();
            let _ = fresh.parse(&wire[..end]);
            examined += fresh.bytes_examined();
        }
        let n = wire.len() as u64;
        assert!(examined > n * n / 4, "{examined} for {n} bytes");
    }

    #[test]
    fn resumes_across_reads_and_starts_again_after_a_reply() {
        let wire = b"250-mx.example.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n550 5.1.1 no\r\n";
        let mut parser = ReplyParser::new();
        let mut buf = Vec::new();
        let mut replies = Vec::new();
        for chunk in wire.chunks(5) {
            buf.extend_from_slice(chunk);
            while let Some((reply, used)) = parser.parse(&buf).unwrap() {
                buf.drain(..used);
                replies.push(reply);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(replies.len(), 2);
        assert_eq!(
            replies[0].lines,
            vec!["mx.example.test", "PIPELINING", "CHUNKING"]
        );
        assert_eq!(
            (replies[1].code, replies[1].enhanced),
            (550, Some(EnhancedCode::new(5, 1, 1)))
        );
    }

    #[test]
    fn resumed_parser_still_rejects_and_bounds() {
        let mut parser = ReplyParser::new();
        assert_eq!(parser.parse(b"250-a\r\n2"), Ok(None));
        assert_eq!(
            parser.parse(b"250-a\r\n251"),
            Err(ReplyError::MixedCodes {
                first: 250,
                other: 251
            })
        );
        // After an error it starts again from the front.
        assert_eq!(
            parser.parse(b"220 hi\r\n").map(|r| r.map(|(_, n)| n)),
            Ok(Some(8))
        );
        let mut buf = b"250 ".to_vec();
        assert_eq!(parser.parse(&buf), Ok(None));
        buf.extend(std::iter::repeat_n(b'a', MAX_LINE_LEN));
        assert_eq!(parser.parse(&buf), Err(ReplyError::LineTooLong));
        // A buffer shorter than what was examined is a new buffer, not a continuation.
        assert_eq!(parser.parse(b"250-x\r\n250-y"), Ok(None));
        assert_eq!(
            parser.parse(b"221 bye\r\n").map(|r| r.map(|(r, _)| r.code)),
            Ok(Some(221))
        );
    }

    #[test]
    fn enhanced_code_parse_and_display() {
        let c = EnhancedCode::parse("5.1.10").unwrap();
        assert_eq!((c.class, c.subject, c.detail), (5, 1, 10));
        assert_eq!(c.to_string(), "5.1.10");
        assert_eq!(EnhancedCode::parse("5.7.606").unwrap().detail, 606);
        for bad in [
            "", "5.1", "5.1.1.1", "3.1.1", "5..1", "5.1.x", "55.1.1", "5.1000.1",
        ] {
            assert_eq!(EnhancedCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn enhanced_code_prefix_and_qmail_suffix() {
        let (c, rest) = EnhancedCode::parse_prefix("5.1.1 <a@b>: User unknown").unwrap();
        assert_eq!(c.to_string(), "5.1.1");
        assert_eq!(rest, "<a@b>: User unknown");
        assert!(EnhancedCode::parse_prefix("Ok").is_none());
        assert!(EnhancedCode::parse_prefix("5.1.1: x").is_none());
        let c = EnhancedCode::find_qmail_suffix("sorry, no mailbox here by that name. (#5.1.1)");
        assert_eq!(c.map(|c| c.to_string()).as_deref(), Some("5.1.1"));
        assert_eq!(EnhancedCode::find_qmail_suffix("(#oops)"), None);
    }

    #[test]
    fn latin1_is_replaced_not_rejected() {
        let (r, _) = parse_reply(b"550 M\xfcller unknown\r\n").unwrap().unwrap();
        assert!(r.text().contains("M\u{fffd}ller"));
    }
}
