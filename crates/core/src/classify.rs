//! Classification of one SMTP reply: what it means for the address (or session) it answers.
//!
//! Owns `classify`; its vocabulary (`RetryKind`, `Classification`) is in `classify/meaning.rs`,
//! and the reply and the command it answers are smtp-proto's `Reply` and `CommandKind`. A reply
//! is data, never an error: a 550 is evidence about a mailbox. The decision reads (command,
//! basic code, enhanced code) first, from the table in `classify/rules.rs`, and the text last,
//! only in the rows where servers are known to use one code for different things (Exchange
//! Online's `5.4.1` for a missing recipient, Yandex's `5.7.1 No such user!`, `4.7.1` for
//! greylisting, rate limits and relaying alike...). It does not combine replies into a verdict
//! (`decision` does) and does not parse the wire format (the smtp-proto crate does).

use rollcall_smtp_proto::{CommandKind, EnhancedCode, Reply};

mod meaning;
mod rules;

pub use meaning::{Classification, RetryKind};

/// Classifies one reply to `command`.
///
/// The enhanced code is the one the reply parser found; when it found none, the code is looked
/// for at the start of the reply's text and in qmail's trailing `(#5.1.1)` form. An enhanced
/// code whose class disagrees with the basic code is ignored (RFC 3463 2: the classes must
/// match). The text is `Reply::text` (the lines joined by a space, bounded); it is matched
/// case-insensitively and only where the table says so.
pub fn classify(command: CommandKind, reply: &Reply) -> Classification {
    classify_with(command, reply, |_| None)
}

/// A reply as the tables read it: the basic code, the enhanced code (found as `classify`
/// says), and the text lowercased with white space collapsed.
pub struct ReadReply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub text: String,
}

/// `classify`, with `first` asked before the generic table (a provider's own rows: see
/// `providers`); `None` from it leaves the decision to the table. A `421` is not asked about:
/// the server is closing the session (RFC 5321 3.8), whatever a provider's text says.
pub fn classify_with(
    command: CommandKind,
    reply: &Reply,
    first: impl FnOnce(&ReadReply) -> Option<Classification>,
) -> Classification {
    let code = reply.code;
    if !(200..=599).contains(&code) {
        return Classification::ProtocolError;
    }
    let class = (code / 100) as u8;
    let text = reply.text();
    let enhanced = reply
        .enhanced
        .or_else(|| EnhancedCode::parse_prefix(text.trim_start()).map(|(c, _)| c))
        .or_else(|| EnhancedCode::find_qmail_suffix(&text))
        .filter(|e| e.class == class);
    let read = ReadReply {
        code,
        enhanced,
        text: normalise_text(&text),
    };
    let first = if code == 421 { None } else { first(&read) };
    first.unwrap_or_else(|| rules::decide(command, code, enhanced, &read.text))
}

/// Lowercase, with runs of white space (line breaks of a multi-line reply included) collapsed
/// to one space, so table phrases match however the server wrapped its lines.
fn normalise_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandKind::*;

    fn c(command: CommandKind, code: u16, enhanced: &str, text: &str) -> String {
        classify(
            command,
            &Reply::new(code, EnhancedCode::parse(enhanced), text),
        )
        .label()
    }

    #[test]
    fn four_hundreds_are_never_undeliverable() {
        for code in 400..=499 {
            for enhanced in ["", "4.1.1", "4.2.1", "4.5.3", "4.7.1", "4.2.2", "4.0.0"] {
                for text in ["User unknown", "No such user", "relay access denied", ""] {
                    let label = c(RcptTo, code, enhanced, text);
                    assert!(
                        !label.starts_with("undeliverable"),
                        "{code} {enhanced} {text}"
                    );
                    assert!(
                        label.starts_with("retry")
                            || label == "session_closing"
                            || label == "risky:mailbox_full",
                        "{code} {enhanced} {text}: {label}"
                    );
                }
            }
        }
    }

    #[test]
    fn code_outside_smtp_range_is_a_protocol_error() {
        assert_eq!(c(RcptTo, 199, "", ""), "protocol_error");
        assert_eq!(c(RcptTo, 600, "", ""), "protocol_error");
        assert_eq!(c(RcptTo, 0, "", ""), "protocol_error");
    }

    #[test]
    fn mismatched_enhanced_class_is_ignored() {
        // A 550 carrying 4.1.1 is read as a bare 550 (text decides), not as a 4xx.
        assert_eq!(
            c(RcptTo, 550, "4.1.1", "Requested action not taken"),
            "undeliverable:rejected"
        );
        assert_eq!(c(RcptTo, 450, "5.1.1", "x"), "retry:deferred");
    }

    #[test]
    fn enhanced_code_found_in_text_when_parser_gave_none() {
        assert_eq!(
            c(RcptTo, 550, "", "5.1.1 <a@b.example>: nope"),
            "undeliverable:mailbox_not_found"
        );
        assert_eq!(
            c(
                RcptTo,
                550,
                "",
                "sorry, no mailbox here by that name. (#5.1.1)"
            ),
            "undeliverable:mailbox_not_found"
        );
    }

    #[test]
    fn text_normalisation() {
        assert_eq!(
            normalise_text("  User\r\n  UNKNOWN\tHere "),
            "user unknown here"
        );
    }
}
