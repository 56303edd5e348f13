//! A bounded record of the conversation (`C:` / `S:` lines, CRLF shown escaped), for the probe
//! tool and for debugging. Owns nothing else.

use rollcall_smtp_proto::escape_wire;

/// Longest transcript line kept, in bytes (longer ones are cut and marked).
const MAX_LINE: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    lines: Vec<String>,
    max_lines: usize,
    dropped: usize,
}

impl Transcript {
    pub fn new(max_lines: usize) -> Self {
        Self {
            lines: Vec::new(),
            max_lines,
            dropped: 0,
        }
    }

    /// Bytes the client wrote (one or more commands; one line each).
    pub fn client(&mut self, bytes: &[u8]) {
        self.record("C: ", bytes);
    }

    /// Bytes of one server reply as received (one line each).
    pub fn server(&mut self, bytes: &[u8]) {
        self.record("S: ", bytes);
    }

    /// A note that is not wire traffic (e.g. `TLS established TLSv1_3`).
    pub fn note(&mut self, text: &str) {
        self.push(format!("-- {text}"));
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Lines not kept because the transcript was full.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    fn record(&mut self, prefix: &str, bytes: &[u8]) {
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            self.push(format!("{prefix}{}", escape_wire(line)));
        }
    }

    fn push(&mut self, mut line: String) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str("...");
        }
        self.lines.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_escaped_and_bounded() {
        let mut t = Transcript::new(3);
        t.client(b"MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\n");
        t.server(b"250 ok\r\n");
        t.server(b"250 more\r\n");
        assert_eq!(
            t.lines(),
            [
                "C: MAIL FROM:<>\\r\\n",
                "C: RCPT TO:<a@x.test>\\r\\n",
                "S: 250 ok\\r\\n"
            ]
        );
        assert_eq!(t.dropped(), 1);
        let mut t = Transcript::new(1);
        t.server(&[b'a'; 5000]);
        assert!(t.lines()[0].len() <= MAX_LINE + 3);
    }
}
