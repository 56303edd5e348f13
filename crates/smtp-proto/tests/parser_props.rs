//! Property tests of the reply parser: it never panics, and a valid reply parses the same
//! however the bytes are split across reads.

use proptest::prelude::*;
use rollcall_smtp_proto::{EnhancedCode, ReplyParser, parse_reply};

/// Cases for each property here (the default is 256).
const CASES: u32 = 4000;

fn text_line() -> impl Strategy<Value = String> {
    // Printable ASCII, spaces and some UTF-8; never CR or LF (they end lines).
    proptest::string::string_regex("[ -~éü€]{0,80}").unwrap()
}

#[derive(Debug, Clone)]
struct WireReply {
    code: u16,
    enhanced: Option<(u8, u16, u16)>,
    lines: Vec<String>,
    bare_lf: bool,
}

impl WireReply {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let end: &[u8] = if self.bare_lf { b"\n" } else { b"\r\n" };
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i + 1 == self.lines.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}", self.code, sep).as_bytes());
            if let Some((c, s, d)) = self.enhanced {
                out.extend_from_slice(format!("{c}.{s}.{d} ").as_bytes());
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(end);
        }
        out
    }
}

fn wire_reply() -> impl Strategy<Value = WireReply> {
    (
        prop_oneof![Just(2u16), Just(4), Just(5)],
        0u16..=5,
        0u16..=9,
        any::<bool>(),
        0u16..=999,
        0u16..=999,
        proptest::collection::vec(text_line(), 1..12),
        any::<bool>(),
    )
        .prop_map(|(c, t, u, has_enh, s, d, lines, bare_lf)| WireReply {
            code: c * 100 + t * 10 + u,
            enhanced: has_enh.then_some((c as u8, s, d)),
            lines,
            bare_lf,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Arbitrary bytes: Ok(None), Ok(Some) or Err, never a panic; a complete reply's byte
    /// count is within the input and re-parsing exactly those bytes gives the same reply.
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
        if let Ok(Some((reply, used))) = parse_reply(&bytes) {
            prop_assert!(used <= bytes.len() && used > 0);
            prop_assert!((200..600).contains(&reply.code));
            let again = parse_reply(&bytes[..used]);
            prop_assert_eq!(again, Ok(Some((reply, used))));
        }
    }

    /// Replies that look almost right (valid codes, random separators and bytes).
    #[test]
    fn never_panics_on_reply_like_bytes(
        parts in proptest::collection::vec(
            ("[2-5][0-5][0-9]", prop_oneof![Just(" "), Just("-"), Just(""), Just("x")], "[ -~\r\n]{0,30}", prop_oneof![Just("\r\n"), Just("\n"), Just("\r"), Just("")]),
            0..20,
        )
    ) {
        let mut bytes = Vec::new();
        for (code, sep, text, end) in parts {
            bytes.extend_from_slice(code.as_bytes());
            bytes.extend_from_slice(sep.as_bytes());
            bytes.extend_from_slice(text.as_bytes());
            bytes.extend_from_slice(end.as_bytes());
        }
        let _ = parse_reply(&bytes);
    }

    /// A valid reply split at any point: the prefix asks for more, the whole parses the same.
    #[test]
    fn split_anywhere_parses_the_same(w in wire_reply(), cut in any::<prop::sample::Index>(), trailing in "[ -~]{0,10}") {
        let bytes = w.encode();
        let (whole, used) = parse_reply(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(whole.code, w.code);
        prop_assert_eq!(whole.lines.len(), w.lines.len());
        prop_assert_eq!(
            whole.enhanced,
            w.enhanced.map(|(c, s, d)| EnhancedCode::new(c, s, d))
        );
        let at = cut.index(bytes.len());
        prop_assert_eq!(parse_reply(&bytes[..at]), Ok(None));
        // Bytes after the reply (the next reply, pipelined) are left alone.
        let mut more = bytes.clone();
        more.extend_from_slice(trailing.as_bytes());
        prop_assert_eq!(parse_reply(&more), Ok(Some((whole, used))));
    }

    /// Any bytes fed in any chunks to one kept parser: the same outcome as parsing the whole
    /// at once (as `parse_reply` on the buffer after each read), and each byte examined at most twice (the work per byte is flat, however a
    /// server cuts its reply into segments).
    #[test]
    fn resumed_parser_agrees_and_does_linear_work(
        bytes in prop_oneof![
            wire_reply().prop_map(|w| w.encode()),
            proptest::collection::vec(any::<u8>(), 0..2000),
        ],
        chunks in proptest::collection::vec(1usize..64, 1..200),
    ) {
        let expected = parse_reply(&bytes);
        let mut parser = ReplyParser::new();
        let mut got = Ok(None);
        let mut end = 0;
        for size in chunks.iter().cycle() {
            end = (end + size).min(bytes.len());
            got = parser.parse(&bytes[..end]);
            if !matches!(got, Ok(None)) || end == bytes.len() {
                break;
            }
        }
        // Errors may name a different fault (a partial line is judged on its first bytes),
        // but an error is an error and a reply is the same reply.
        match expected {
            Ok(_) => prop_assert_eq!(got, expected),
            Err(_) => prop_assert!(got.is_err()),
        }
        prop_assert!(parser.bytes_examined() <= 2 * bytes.len() as u64);
    }
}
