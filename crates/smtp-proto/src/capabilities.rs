//! EHLO capabilities: what the server advertised in its most recent EHLO reply.
//!
//! Owns the keyword parsing (RFC 5321 4.1.1.1, keywords case-insensitive) for the extensions
//! rollcall acts on. Does not decide when a capability is used; the session does.

use crate::reply::Reply;

/// Keyword lines kept from one EHLO reply (bounded by the reply parser's line limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The first line of the EHLO reply (the server's name and greeting text).
    pub server_name: String,
    /// Every keyword line, keyword upper-cased, parameters as sent (`SIZE 10240000`).
    pub keywords: Vec<String>,
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 1870: `Some(0)` means "SIZE without a fixed limit".
    pub size: Option<u64>,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 2034.
    pub enhanced_status_codes: bool,
    /// RFC 3030.
    pub chunking: bool,
    /// RFC 9422 `LIMITS RCPTMAX=n`: most recipients per transaction.
    pub rcpt_max: Option<u32>,
    /// RFC 9422 `LIMITS MAILMAX=n`: most transactions per session.
    pub mail_max: Option<u32>,
}

impl Capabilities {
    /// Reads a positive EHLO reply. The first line is the server's name, the rest are keywords.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut caps = Self {
            server_name: reply.lines.first().cloned().unwrap_or_default(),
            ..Self::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            let params: Vec<&str> = words.collect();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "STARTTLS" => caps.starttls = true,
                "SIZE" => {
                    caps.size = Some(params.first().and_then(|p| p.parse().ok()).unwrap_or(0));
                }
                "SMTPUTF8" => caps.smtputf8 = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "CHUNKING" => caps.chunking = true,
                "LIMITS" => {
                    for p in &params {
                        let Some((name, value)) = p.split_once('=') else {
                            continue;
                        };
                        let value = value.parse::<u32>().ok().filter(|v| *v > 0);
                        match name.to_ascii_uppercase().as_str() {
                            "RCPTMAX" => caps.rcpt_max = value,
                            "MAILMAX" => caps.mail_max = value,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            let mut kept = keyword;
            for p in params {
                kept.push(' ');
                kept.push_str(p);
            }
            caps.keywords.push(kept);
        }
        caps
    }

    /// True if `keyword` (any case) was advertised.
    pub fn has(&self, keyword: &str) -> bool {
        self.keywords.iter().any(|k| {
            k.split(' ')
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::parse_reply;

    fn caps(s: &str) -> Capabilities {
        Capabilities::from_ehlo(&parse_reply(s.as_bytes()).unwrap().unwrap().0)
    }

    #[test]
    fn postfix_defaults() {
        let c = caps(
            "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
        );
        assert_eq!(c.server_name, "mx.example.test");
        assert!(c.pipelining && c.starttls && c.smtputf8 && c.eight_bit_mime);
        assert!(c.enhanced_status_codes && c.chunking);
        assert_eq!(c.size, Some(10_240_000));
        assert_eq!(c.keywords.len(), 10);
        assert_eq!(c.keywords[1], "SIZE 10240000");
        assert!(c.has("dsn") && !c.has("AUTH"));
        assert_eq!((c.rcpt_max, c.mail_max), (None, None));
    }

    #[test]
    fn case_insensitive_and_limits() {
        let c =
            caps("250-mx\r\n250-pipelining\r\n250-size\r\n250 Limits rcptmax=50 MAILMAX=0 X=1\r\n");
        assert!(c.pipelining && !c.starttls);
        assert_eq!(c.size, Some(0));
        assert_eq!(c.rcpt_max, Some(50));
        assert_eq!(c.mail_max, None);
        assert_eq!(c.keywords[0], "PIPELINING");
    }

    #[test]
    fn no_keywords() {
        let c = caps("250 mx.example.test\r\n");
        assert_eq!(
            c,
            Capabilities {
                server_name: "mx.example.test".into(),
                ..Capabilities::default()
            }
        );
    }
}
