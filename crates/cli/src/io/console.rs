//! Lines for the operator on stdout and stderr that never panic. `println!` and `eprintln!`
//! panic when the stream is a closed pipe (`rollcall verify ... 2>&1 | head -1`: exit 101 and a
//! panic message in place of the summary); here a line nobody can read any more is dropped,
//! and the run goes on to its own exit code. Owns only that; what the lines say is the
//! commands' business.

use std::fmt::Display;
use std::io::{self, Write};

/// Writes `line` and a newline to stderr; a write error is ignored (nobody is reading).
pub fn err_line(line: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Writes `line` and a newline to stdout, flushed; a write error is ignored.
pub fn out_line(line: impl Display) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Shows text that came from the network (a server's reply, a DNS name) on a terminal:
/// control characters (C0, DEL, C1: ESC starts a terminal escape sequence, CR rewrites the
/// line) and bidirectional overrides (which reorder what is shown) are written as `\xNN` or
/// `\u{NNNN}`, so a server can neither drive the operator's terminal nor fake its output.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{0}'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || is_bidi_control(c) => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Unicode bidirectional formatting characters (UAX #9 2): embeddings, overrides, isolates and
/// marks.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert_eq!(
            shown("550 \u{1b}]0;owned\u{7}\u{1b}[2J user\r\nunknown\t\u{9b}31m \u{202e}gnp"),
            "550 \\x1b]0;owned\\x07\\x1b[2J user\\x0d\\x0aunknown\\x09\\u{009b}31m \\u{202e}gnp"
        );
        assert_eq!(
            shown("5.1.1 <bob@example.com>: Recipient address rejected: é"),
            "5.1.1 <bob@example.com>: Recipient address rejected: é"
        );
    }
}
