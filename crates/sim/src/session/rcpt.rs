//! RCPT TO: the checks a recipient goes through, in Postfix's order, and the reply it gets.
//! Owns the per-transaction recipient counts (`rcpt_limit`, `max_rcpts_per_transaction`) and
//! the recipient verdicts (mailbox states, catch-all, accept-all); the reply texts are the
//! profile's (`profile::ReplyKind`), the state machine around it is `session`'s.
//!
//! Order: sequence (need MAIL) -> `max_rcpts_per_transaction` -> `rcpt_rate_per_ip` (unless
//! over `rcpt_limit`) -> parameters -> syntax -> `rcpt_limit` -> SMTPUTF8 -> relay -> policy
//! block -> greylist -> random transient 4xx -> mailbox.

use rand::Rng;

use super::{Phase, Session};
use crate::anvil::Event;
use crate::counters::bump;
use crate::greylist::Check;
use crate::profile::{ReplyContext, ReplyKind};
use crate::spec::{Behaviour, MailboxState};

impl Session {
    pub(super) async fn rcpt(
        &mut self,
        out: &mut Vec<u8>,
        need_helo: bool,
        path: String,
        params: Vec<String>,
    ) {
        bump(&self.stats.rcpts);
        bump(&self.client.rcpts);
        let line = match self.rcpt_checks(need_helo, &path, &params) {
            Err(line) => line,
            Ok(sender) => self.recipient_line(&sender, &path),
        };
        self.reply(out, &line).await;
    }

    /// The profile's reply of `kind` for this recipient.
    fn profile_reply(&self, kind: ReplyKind, rcpt: &str) -> String {
        let cx = ReplyContext {
            rcpt,
            ip: self.peer,
            host: &self.entry().name,
        };
        self.profile.reply(kind, cx)
    }

    fn too_many_rcpts(&self, path: &str) -> String {
        bump(&self.stats.too_many_rcpts);
        self.profile_reply(ReplyKind::TooManyRcpts, path)
    }

    /// Everything checked before the recipient's domain is looked at; the sender of the
    /// transaction when they pass, the reply when one fails.
    fn rcpt_checks(
        &mut self,
        need_helo: bool,
        path: &str,
        params: &[String],
    ) -> Result<String, String> {
        let (sender, smtputf8, accepted, rcpts) = match &mut self.phase {
            Phase::Mail {
                sender,
                smtputf8,
                accepted,
                rcpts,
            } if !need_helo => {
                *rcpts += 1;
                (sender.clone(), *smtputf8, *accepted, *rcpts)
            }
            _ => return Err("503 5.5.1 Error: need MAIL command".into()),
        };
        // Outlook.com counts every RCPT of the transaction and answers the ones past its
        // limit `452 4.5.3 Too many recipients` before it looks at them (nor at the rate).
        if let Some(max) = self.profile.max_rcpts_per_transaction
            && rcpts > max
        {
            return Err(self.too_many_rcpts(path));
        }
        // Postfix rcpt_cmd asks anvil after "need MAIL" and the per-transaction recipient
        // limit, before looking at the address: every RCPT inside a transaction counts,
        // whatever its reply (refused for the rate included), except one already over
        // `rcpt_limit` (it gets the 452 below and is not counted).
        if accepted < self.profile.rcpt_limit
            && self.shared.anvils[self.host as usize].over(self.peer, Event::Rcpt)
        {
            self.rate_limited();
            return Err(self.profile_reply(ReplyKind::Rate, path));
        }
        if let Some(p) = params.first() {
            return Err(format!("555 5.5.4 Unsupported option: {p}"));
        }
        let Some((local, domain)) = path.rsplit_once('@') else {
            return Err(format!(
                "504 5.5.2 <{path}>: Recipient address rejected: need fully-qualified address"
            ));
        };
        if local.is_empty() || domain.is_empty() {
            return Err("501 5.1.3 Bad recipient address syntax".into());
        }
        if accepted >= self.profile.rcpt_limit {
            return Err(self.too_many_rcpts(path));
        }
        if !path.is_ascii() && !smtputf8 {
            return Err("553 5.6.7 Must declare SMTPUTF8 to send unicode address".into());
        }
        Ok(sender)
    }

    /// The reply to a well-formed recipient inside a transaction: relay, policy block,
    /// greylist, random transient failure, then the mailbox.
    fn recipient_line(&mut self, sender: &str, path: &str) -> String {
        let (local, domain) = path.rsplit_once('@').unwrap_or((path, ""));
        let domain_key = domain.trim_end_matches('.').to_ascii_lowercase();
        let shared = self.shared.clone();
        let Some(d) = shared
            .world
            .domains
            .get(domain_key.as_str())
            .filter(|d| d.served_by(self.host))
        else {
            return format!("454 4.7.1 <{path}>: Relay access denied");
        };
        if d.behaviour == Behaviour::Blocked || self.profile.policy_block {
            return self.profile_reply(ReplyKind::Block, path);
        }
        let role = local.eq_ignore_ascii_case("postmaster") || local.eq_ignore_ascii_case("abuse");
        if d.behaviour == Behaviour::Greylist && !role {
            let check = shared.greylist.check(self.peer, sender, path);
            match check {
                Check::New { other_ip: true } => bump(&self.stats.greylist_other_ip),
                Check::Admitted { retry_passed: true } => bump(&self.stats.greylist_passed),
                _ => {}
            }
            if !check.admitted() {
                bump(&self.stats.greylisted);
                return format!(
                    "450 4.2.0 <{path}>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/{domain_key}.html"
                );
            }
        }
        if self.profile.transient_4xx_rate > 0.0
            && self.rng.random_bool(self.profile.transient_4xx_rate)
        {
            return "451 4.3.0 Temporary failure".into();
        }
        // Catch-all and accept-all servers answer the same 250 to a local part without a
        // mailbox; they differ in what happens after DATA, which the truth knows.
        let takes_any = matches!(d.behaviour, Behaviour::CatchAll | Behaviour::AcceptAll);
        match (d.mailbox(local), takes_any) {
            (Some(MailboxState::Full), _) => format!("452 4.2.2 <{path}>: Mailbox full"),
            (Some(MailboxState::Disabled), _) => self.profile_reply(ReplyKind::Disabled, path),
            (Some(MailboxState::Valid), _) | (None, true) => {
                if let Phase::Mail { accepted, .. } = &mut self.phase {
                    *accepted += 1;
                }
                bump(&self.stats.rcpts_accepted);
                bump(&self.client.rcpts_accepted);
                "250 2.1.5 Ok".to_string()
            }
            (None, false) => self.profile_reply(ReplyKind::Unknown, path),
        }
    }
}
