//! Warm sessions per MX host and the rules that retire them.
//!
//! Owns `RetirePolicy` (when a session must not be reused: 421/closed, too many transactions,
//! too old, idle too long, too many rejected RCPTs, the server's LIMITS MAILMAX) and a small
//! `SessionPool` keyed by the host's socket address. The pool is synchronous and does no I/O:
//! a caller that needs sharing wraps it in a mutex, and politely QUITs what `drain_retired`
//! hands back. Connection counts per site and rate limits belong to the engine's shaping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::session::{Session, SessionStats};

/// Why a session is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireReason {
    /// 421, EOF, timeout, protocol error or QUIT: the session is gone.
    Closed,
    Transactions,
    /// The server's RFC 9422 MAILMAX was reached.
    MailMax,
    Age,
    Idle,
    RejectedRcpts,
}

impl RetireReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Transactions => "max_transactions",
            Self::MailMax => "mail_max",
            Self::Age => "max_age",
            Self::Idle => "max_idle",
            Self::RejectedRcpts => "rejected_rcpts",
        }
    }
}

/// Limits on reusing one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetirePolicy {
    /// Transactions per session (Postfix's client reuses a connection for at most 100
    /// deliveries by default; sites may lower it).
    pub max_transactions: u32,
    /// 300 s: Postfix's `smtp_connection_reuse_time_limit`; servers close long sessions.
    pub max_age: Duration,
    /// 8 s: below the 10 s idle timeout Postfix's smtpd switches to under stress, so a reused
    /// session is rarely found dead.
    pub max_idle: Duration,
    /// 8: Postfix slows a client after 10 errors and drops it at 20 (`smtpd_soft_error_limit`,
    /// `smtpd_hard_error_limit`); a fresh session resets its count.
    pub max_rejected_rcpts: u32,
}

impl Default for RetirePolicy {
    fn default() -> Self {
        Self {
            max_transactions: 100,
            max_age: Duration::from_secs(300),
            max_idle: Duration::from_secs(8),
            max_rejected_rcpts: 8,
        }
    }
}

impl RetirePolicy {
    /// The first rule that says "do not reuse", if any. `usable` is [`Session::is_usable`].
    pub fn retire_reason(
        &self,
        stats: &SessionStats,
        usable: bool,
        now: Instant,
    ) -> Option<RetireReason> {
        if !usable || stats.closed_by_421 {
            return Some(RetireReason::Closed);
        }
        if stats.rcpts_rejected >= self.max_rejected_rcpts {
            return Some(RetireReason::RejectedRcpts);
        }
        if stats.mail_max.is_some_and(|m| stats.transactions >= m) {
            return Some(RetireReason::MailMax);
        }
        if stats.transactions >= self.max_transactions {
            return Some(RetireReason::Transactions);
        }
        if now.saturating_duration_since(stats.opened) >= self.max_age {
            return Some(RetireReason::Age);
        }
        if now.saturating_duration_since(stats.last_used) >= self.max_idle {
            return Some(RetireReason::Idle);
        }
        None
    }

    /// The same check on a session.
    pub fn check(&self, session: &Session, now: Instant) -> Option<RetireReason> {
        self.retire_reason(session.stats(), session.is_usable(), now)
    }
}

/// Idle warm sessions, keyed by MX host address.
#[derive(Debug, Default)]
pub struct SessionPool {
    policy: RetirePolicy,
    idle: HashMap<SocketAddr, Vec<Session>>,
    retired: Vec<(Session, RetireReason)>,
}

impl SessionPool {
    pub fn new(policy: RetirePolicy) -> Self {
        Self {
            policy,
            idle: HashMap::new(),
            retired: Vec::new(),
        }
    }

    pub fn policy(&self) -> &RetirePolicy {
        &self.policy
    }

    /// A reusable session to `host`, most recently used first. Sessions found expired are
    /// moved to the retired list.
    pub fn checkout(&mut self, host: SocketAddr) -> Option<Session> {
        let now = Instant::now();
        let list = self.idle.get_mut(&host)?;
        let mut found = None;
        while let Some(s) = list.pop() {
            match self.policy.check(&s, now) {
                None => {
                    found = Some(s);
                    break;
                }
                Some(reason) => self.retired.push((s, reason)),
            }
        }
        if list.is_empty() {
            self.idle.remove(&host);
        }
        found
    }

    /// Returns a session after use. `None`: kept warm. `Some`: it must be retired instead and
    /// is handed back with the reason (QUIT it, unless the reason is `Closed`).
    #[must_use = "a retired session should be QUIT"]
    pub fn checkin(&mut self, session: Session) -> Option<(Session, RetireReason)> {
        match self.policy.check(&session, Instant::now()) {
            Some(reason) => Some((session, reason)),
            None => {
                self.idle.entry(session.peer()).or_default().push(session);
                None
            }
        }
    }

    /// Moves every idle session that a rule now retires to the retired list.
    pub fn evict_expired(&mut self) {
        let now = Instant::now();
        for list in self.idle.values_mut() {
            let mut keep = Vec::with_capacity(list.len());
            for s in list.drain(..) {
                match self.policy.check(&s, now) {
                    None => keep.push(s),
                    Some(reason) => self.retired.push((s, reason)),
                }
            }
            *list = keep;
        }
        self.idle.retain(|_, l| !l.is_empty());
    }

    /// Sessions retired by `checkout` or `evict_expired`, for the caller to QUIT.
    pub fn drain_retired(&mut self) -> Vec<(Session, RetireReason)> {
        std::mem::take(&mut self.retired)
    }

    /// Idle sessions held for `host`.
    pub fn idle_count(&self, host: SocketAddr) -> usize {
        self.idle.get(&host).map_or(0, Vec::len)
    }

    /// Idle sessions held in total.
    pub fn len(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(now: Instant) -> SessionStats {
        SessionStats {
            opened: now,
            last_used: now,
            transactions: 0,
            rcpts_answered: 0,
            rcpts_rejected: 0,
            error_replies: 0,
            closed_by_421: false,
            mail_max: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retirement_rules() {
        let p = RetirePolicy::default();
        let t0 = Instant::now();
        let mut s = stats(t0);
        assert_eq!(p.retire_reason(&s, true, t0), None);
        assert_eq!(p.retire_reason(&s, false, t0), Some(RetireReason::Closed));

        s.closed_by_421 = true;
        assert_eq!(p.retire_reason(&s, true, t0), Some(RetireReason::Closed));
        s.closed_by_421 = false;

        s.rcpts_rejected = 7;
        assert_eq!(p.retire_reason(&s, true, t0), None);
        s.rcpts_rejected = 8;
        assert_eq!(
            p.retire_reason(&s, true, t0),
            Some(RetireReason::RejectedRcpts)
        );
        s.rcpts_rejected = 0;

        s.transactions = 99;
        assert_eq!(p.retire_reason(&s, true, t0), None);
        s.transactions = 100;
        assert_eq!(
            p.retire_reason(&s, true, t0),
            Some(RetireReason::Transactions)
        );
        s.transactions = 3;
        s.mail_max = Some(3);
        assert_eq!(p.retire_reason(&s, true, t0), Some(RetireReason::MailMax));
        s.mail_max = None;

        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(p.retire_reason(&s, true, Instant::now()), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            p.retire_reason(&s, true, Instant::now()),
            Some(RetireReason::Idle)
        );
        s.last_used = Instant::now();
        assert_eq!(p.retire_reason(&s, true, Instant::now()), None);
        tokio::time::advance(Duration::from_secs(300)).await;
        s.last_used = Instant::now();
        assert_eq!(
            p.retire_reason(&s, true, Instant::now()),
            Some(RetireReason::Age)
        );
    }
}
