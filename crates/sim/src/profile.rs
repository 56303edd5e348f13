//! One host's behaviour profile (`[profiles.NAME]`): its fields and Postfix-like defaults,
//! their validation, and the reply lines a profile may override (`*_reply`) with their
//! placeholders. Owns no session state: `session` decides when a reply is due and asks the
//! profile for its text.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How one SMTP host behaves. Every field has a Postfix-like default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Advertise PIPELINING (RFC 2920). Without it, any byte sent ahead is a violation.
    pub pipelining: bool,
    /// Advertise and accept STARTTLS (RFC 3207).
    pub starttls: bool,
    /// Advertise SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// Latency added once per server read that yields at least one complete command.
    pub latency_ms: u64,
    /// Delay before the (last line of the) greeting.
    pub greeting_delay_ms: u64,
    /// Send `220-` first and `220 ` after the greeting delay (postscreen style).
    pub multiline_greeting: bool,
    /// MAIL before EHLO/HELO is answered 503 (Postfix `smtpd_helo_required = yes`).
    pub helo_required: bool,
    /// Concurrent sessions allowed per client IP; the next one gets 421 and is closed.
    pub max_conns_per_ip: u32,
    /// New connections allowed per client IP per `rate_window_ms` (Postfix
    /// `smtpd_client_connection_rate_limit`); the next one is greeted with `421 4.7.0 <host>
    /// Error: too many connections from <ip>` and closed. `None`: no limit.
    pub conn_rate_per_ip: Option<u32>,
    /// MAIL FROM commands allowed per client IP per `rate_window_ms` (Postfix
    /// `smtpd_client_message_rate_limit`); the next gets `450 4.7.1 Error: too much mail from
    /// <ip>`. `None`: no limit.
    pub mail_rate_per_ip: Option<u32>,
    /// RCPT TO commands allowed per client IP per `rate_window_ms` (Postfix
    /// `smtpd_client_recipient_rate_limit`); the next gets `450 4.7.1 Error: too many
    /// recipients from <ip>`. `None`: no limit.
    pub rcpt_rate_per_ip: Option<u32>,
    /// The sliding window of the three `*_rate_per_ip` limits (Postfix `anvil_rate_time_unit`).
    /// Counted per host and per client IP; refused attempts count too.
    pub rate_window_ms: u64,
    /// Accepted recipients per transaction; the next RCPT gets `too_many_rcpts_reply`
    /// (`452 4.5.3`).
    pub rcpt_limit: u32,
    /// RCPT commands per transaction, every one counted whatever its reply; the (N+1)th and
    /// later get `too_many_rcpts_reply`. Outlook.com consumer mail answers the second RCPT of
    /// a transaction `452 4.5.3 Too many recipients`, so it is 1 there. `None`: no limit.
    pub max_rcpts_per_transaction: Option<u32>,
    /// Advertise `LIMITS RCPTMAX=n` (RFC 9422).
    pub limits_rcptmax: Option<u32>,
    /// Probability (0..=1) that a RCPT is answered `451 4.3.0 Temporary failure`.
    pub transient_4xx_rate: f64,
    /// Drop the connection (no reply) when the client sends its (N+1)th command.
    pub drop_after_commands: Option<u32>,
    /// Error replies answered at once; later ones wait `error_delay_ms` (Postfix soft limit).
    pub error_soft_limit: u32,
    /// After this many error replies the next command gets `421 ... too many errors`.
    pub error_hard_limit: u32,
    /// Delay before each error reply past the soft limit.
    pub error_delay_ms: u64,
    /// RSET/NOOP/EHLO/HELO allowed per session before each one counts as an error.
    pub junk_command_limit: u32,
    /// Reject every recipient with the policy block reply (the prober's IP is "listed").
    pub policy_block: bool,
    /// Reject every MAIL FROM with `550 5.7.1 <sender>: Sender address rejected: Access
    /// denied` (Postfix `check_sender_access` REJECT with `smtpd_delay_reject = no`).
    pub reject_mail: bool,
    /// Reply to an unknown mailbox at a normal domain. `None`: `550 5.1.1 <rcpt>: Recipient
    /// address rejected: User unknown in virtual mailbox table`. Every `*_reply` is a whole
    /// reply line (`NNN text`); `{rcpt}` stands for `<local@domain>` as the client sent it,
    /// `{ip}` for the client's IP, `{host}` for this host's name.
    pub unknown_reply: Option<String>,
    /// Reply to a disabled mailbox. `None`: `550 5.2.1 <rcpt>: Mailbox disabled, not
    /// accepting messages`.
    pub disabled_reply: Option<String>,
    /// Reply to every recipient of a `blocked` domain or at a `policy_block` host. `None`:
    /// `550 5.7.1 Service unavailable; Client host [ip] blocked using zen.spamhaus.org`.
    pub block_reply: Option<String>,
    /// Reply to a RCPT over `rcpt_rate_per_ip`. `None`: `450 4.7.1 Error: too many
    /// recipients from ip`.
    pub rate_reply: Option<String>,
    /// Reply to a RCPT over `rcpt_limit` or `max_rcpts_per_transaction`. `None`: `452 4.5.3
    /// Error: too many recipients`.
    pub too_many_rcpts_reply: Option<String>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            pipelining: true,
            starttls: true,
            smtputf8: true,
            latency_ms: 0,
            greeting_delay_ms: 0,
            multiline_greeting: false,
            helo_required: true,
            max_conns_per_ip: 50,
            conn_rate_per_ip: None,
            mail_rate_per_ip: None,
            rcpt_rate_per_ip: None,
            rate_window_ms: 60_000,
            rcpt_limit: 1000,
            max_rcpts_per_transaction: None,
            limits_rcptmax: None,
            transient_4xx_rate: 0.0,
            drop_after_commands: None,
            error_soft_limit: 10,
            error_hard_limit: 20,
            error_delay_ms: 1000,
            junk_command_limit: 100,
            policy_block: false,
            reject_mail: false,
            unknown_reply: None,
            disabled_reply: None,
            block_reply: None,
            rate_reply: None,
            too_many_rcpts_reply: None,
        }
    }
}

/// The reply lines a profile may override, each with its field name and Postfix default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    /// An unknown mailbox at a normal domain.
    Unknown,
    /// A disabled mailbox.
    Disabled,
    /// A blocked domain or a `policy_block` host.
    Block,
    /// A RCPT over `rcpt_rate_per_ip`.
    Rate,
    /// A RCPT over `rcpt_limit` or `max_rcpts_per_transaction`.
    TooManyRcpts,
}

impl ReplyKind {
    const ALL: [ReplyKind; 5] = [
        ReplyKind::Unknown,
        ReplyKind::Disabled,
        ReplyKind::Block,
        ReplyKind::Rate,
        ReplyKind::TooManyRcpts,
    ];

    /// The profile field that overrides this reply.
    fn field(self) -> &'static str {
        match self {
            ReplyKind::Unknown => "unknown_reply",
            ReplyKind::Disabled => "disabled_reply",
            ReplyKind::Block => "block_reply",
            ReplyKind::Rate => "rate_reply",
            ReplyKind::TooManyRcpts => "too_many_rcpts_reply",
        }
    }

    /// Postfix's text (virtual mailbox table, `reject_rbl_client`, anvil, `smtpd_recipient_limit`).
    fn postfix(self) -> &'static str {
        match self {
            ReplyKind::Unknown => {
                "550 5.1.1 {rcpt}: Recipient address rejected: User unknown in virtual mailbox table"
            }
            ReplyKind::Disabled => "550 5.2.1 {rcpt}: Mailbox disabled, not accepting messages",
            ReplyKind::Block => {
                "550 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org"
            }
            ReplyKind::Rate => "450 4.7.1 Error: too many recipients from {ip}",
            ReplyKind::TooManyRcpts => "452 4.5.3 Error: too many recipients",
        }
    }
}

/// What a reply's placeholders stand for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyContext<'a> {
    /// The RCPT path as the client sent it, without the angle brackets.
    pub rcpt: &'a str,
    /// The client's IP.
    pub ip: IpAddr,
    /// This host's name.
    pub host: &'a str,
}

impl Profile {
    /// The override of `kind`, if the profile has one.
    fn reply_override(&self, kind: ReplyKind) -> Option<&str> {
        match kind {
            ReplyKind::Unknown => self.unknown_reply.as_deref(),
            ReplyKind::Disabled => self.disabled_reply.as_deref(),
            ReplyKind::Block => self.block_reply.as_deref(),
            ReplyKind::Rate => self.rate_reply.as_deref(),
            ReplyKind::TooManyRcpts => self.too_many_rcpts_reply.as_deref(),
        }
    }

    /// The reply line of `kind` (the override, else Postfix's), placeholders filled in.
    pub(crate) fn reply(&self, kind: ReplyKind, cx: ReplyContext<'_>) -> String {
        render(self.reply_override(kind).unwrap_or(kind.postfix()), cx)
    }

    /// Checks the profile named `name`; the error names the setting and the fix.
    pub(crate) fn validate(&self, name: &str) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.transient_4xx_rate) {
            return Err(format!(
                "profiles.{name}.transient_4xx_rate must be within 0..=1"
            ));
        }
        for (field, limit) in [
            ("conn_rate_per_ip", self.conn_rate_per_ip),
            ("mail_rate_per_ip", self.mail_rate_per_ip),
            ("rcpt_rate_per_ip", self.rcpt_rate_per_ip),
            ("max_rcpts_per_transaction", self.max_rcpts_per_transaction),
        ] {
            if limit == Some(0) {
                return Err(format!(
                    "profiles.{name}.{field} must be >= 1; leave it out for no limit"
                ));
            }
        }
        if self.rate_window_ms == 0 {
            return Err(format!("profiles.{name}.rate_window_ms must be > 0"));
        }
        for kind in ReplyKind::ALL {
            if let Some(line) = self.reply_override(kind)
                && !is_reply_line(line)
            {
                return Err(format!(
                    "profiles.{name}.{}: `{}` is not a reply line; write a code 200-599, a \
                     space and the text on one line (e.g. `550 5.1.1 {{rcpt}}: User unknown`)",
                    kind.field(),
                    line.escape_debug()
                ));
            }
        }
        Ok(())
    }
}

/// A single reply line: three digits, the first 2 to 5 (RFC 5321 4.2), a space, then text
/// without CR or LF (the server adds the CRLF).
fn is_reply_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 4
        && (b'2'..=b'5').contains(&b[0])
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && b[3] == b' '
        && !line.contains(['\r', '\n'])
}

/// Fills in `{rcpt}`, `{ip}` and `{host}` in one pass, so a placeholder spelled inside the
/// client's address is left as sent.
fn render(template: &str, cx: ReplyContext<'_>) -> String {
    let mut out = String::with_capacity(template.len() + cx.rcpt.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        let (value, len) = if tail.starts_with("{rcpt}") {
            (format!("<{}>", cx.rcpt), "{rcpt}".len())
        } else if tail.starts_with("{ip}") {
            (cx.ip.to_string(), "{ip}".len())
        } else if tail.starts_with("{host}") {
            (cx.host.to_string(), "{host}".len())
        } else {
            ("{".to_string(), 1)
        };
        out.push_str(&value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> ReplyContext<'static> {
        ReplyContext {
            rcpt: "Bob@x.test",
            ip: "127.0.0.2".parse().unwrap(),
            host: "mx.x.test",
        }
    }

    #[test]
    fn defaults_are_postfix_texts() {
        let p = Profile::default();
        assert_eq!(
            p.reply(ReplyKind::Unknown, cx()),
            "550 5.1.1 <Bob@x.test>: Recipient address rejected: User unknown in virtual mailbox table"
        );
        assert_eq!(
            p.reply(ReplyKind::Block, cx()),
            "550 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.spamhaus.org"
        );
        assert_eq!(
            p.reply(ReplyKind::TooManyRcpts, cx()),
            "452 4.5.3 Error: too many recipients"
        );
    }

    #[test]
    fn placeholders_are_filled_once() {
        let got = render("550 {rcpt} from [{ip}] at {host} {other} {", cx());
        assert_eq!(
            got,
            "550 <Bob@x.test> from [127.0.0.2] at mx.x.test {other} {"
        );
        let sneaky = ReplyContext {
            rcpt: "{host}@x.test",
            ..cx()
        };
        assert_eq!(render("550 {rcpt}", sneaky), "550 <{host}@x.test>");
    }

    #[test]
    fn reply_lines_need_a_code_and_a_space() {
        for good in ["550 5.1.1 no", "250 ok", "452 4.5.3 Too many recipients"] {
            assert!(is_reply_line(good), "{good}");
        }
        for bad in [
            "",
            "550",
            "550-5.1.1 no",
            "650 no",
            "150 no",
            "55x no",
            "550 a\r\n250 b",
        ] {
            assert!(!is_reply_line(bad), "{bad:?}");
        }
    }

    #[test]
    fn bad_overrides_name_the_profile_and_the_field() {
        let p = Profile {
            rate_reply: Some("busy, try later".into()),
            ..Profile::default()
        };
        let e = p.validate("throttling").unwrap_err();
        assert!(e.contains("profiles.throttling.rate_reply"), "{e}");
        let p = Profile {
            max_rcpts_per_transaction: Some(0),
            ..Profile::default()
        };
        let e = p.validate("outlook").unwrap_err();
        assert!(
            e.contains("profiles.outlook.max_rcpts_per_transaction must be >= 1"),
            "{e}"
        );
    }
}
