//! The pipelining planner: turns one probe (a reverse path and recipients of one domain) into
//! the groups of commands to write.
//!
//! Owns grouping (RFC 2920: MAIL, RCPTs and the closing RSET share groups of at most
//! [`MAX_IN_FLIGHT`] bytes when PIPELINING is advertised, one command per group otherwise) and
//! the per-transaction recipient limit (RFC 9422 RCPTMAX). Does not write anything: the driver
//! feeds each command through the `Session`, which still has the last word.

use crate::capabilities::Capabilities;
use crate::command::{Command, MailFrom, RcptTo, Rset};
use crate::path::{Mailbox, ReversePath};
use crate::session::MAX_IN_FLIGHT;

/// One command of a plan. `Rcpt::index` is the recipient's position in the caller's slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedCommand {
    Mail(MailFrom),
    Rcpt { index: usize, rcpt: RcptTo },
    Rset,
}

impl PlannedCommand {
    fn wire_len(&self) -> usize {
        match self {
            Self::Mail(m) => m.to_bytes().len(),
            Self::Rcpt { rcpt, .. } => rcpt.to_bytes().len(),
            Self::Rset => Rset.to_bytes().len(),
        }
    }
}

/// Why a recipient is left out of the plan (it is not written to the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unplanned {
    /// Non-ASCII address and the server did not advertise SMTPUTF8 (RFC 6531): unverifiable.
    NeedsSmtpUtf8,
    /// Beyond the recipients-per-transaction limit; probe it in a later transaction.
    OverRcptLimit,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("no recipients")]
    NoRecipients,
    /// A transaction holds one domain only (Gmail answers 451 4.3.0 to mixed domains).
    #[error("recipients of more than one domain: {0} and {1}")]
    MixedDomains(String, String),
    #[error("non-ASCII reverse path and no SMTPUTF8")]
    ReversePathNeedsSmtpUtf8,
}

/// The groups to write for one transaction, in order, and the recipients left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionPlan {
    pub groups: Vec<Vec<PlannedCommand>>,
    pub unplanned: Vec<(usize, Unplanned)>,
}

impl TransactionPlan {
    /// Indices of the recipients that will be written, in order.
    pub fn planned_recipients(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups.iter().flatten().filter_map(|c| match c {
            PlannedCommand::Rcpt { index, .. } => Some(*index),
            _ => None,
        })
    }
}

/// Plans MAIL FROM, the RCPTs and RSET for `recipients` (all of one domain).
/// `max_rcpts` is the caller's own limit; the server's RCPTMAX, when lower, wins.
pub fn plan_transaction(
    caps: &Capabilities,
    reverse: &ReversePath,
    recipients: &[Mailbox],
    max_rcpts: Option<usize>,
) -> Result<TransactionPlan, PlanError> {
    let first = recipients.first().ok_or(PlanError::NoRecipients)?;
    if let Some(other) = recipients
        .iter()
        .find(|r| !r.domain().eq_ignore_ascii_case(first.domain()))
    {
        return Err(PlanError::MixedDomains(
            first.domain().to_owned(),
            other.domain().to_owned(),
        ));
    }
    if !reverse.is_ascii() && !caps.smtputf8 {
        return Err(PlanError::ReversePathNeedsSmtpUtf8);
    }
    let limit = match (caps.rcpt_max.map(|n| n as usize), max_rcpts) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => usize::MAX,
    }
    .max(1);

    let mut unplanned = Vec::new();
    let mut chosen = Vec::new();
    for (index, r) in recipients.iter().enumerate() {
        if !r.is_ascii() && !caps.smtputf8 {
            unplanned.push((index, Unplanned::NeedsSmtpUtf8));
        } else if chosen.len() >= limit {
            unplanned.push((index, Unplanned::OverRcptLimit));
        } else {
            chosen.push(index);
        }
    }
    let smtputf8 = !reverse.is_ascii() || chosen.iter().any(|&i| !recipients[i].is_ascii());
    let mut commands = vec![PlannedCommand::Mail(MailFrom {
        path: reverse.clone(),
        smtputf8,
    })];
    commands.extend(chosen.iter().map(|&index| PlannedCommand::Rcpt {
        index,
        rcpt: RcptTo(recipients[index].clone()),
    }));
    commands.push(PlannedCommand::Rset);

    let groups = if caps.pipelining {
        let mut groups: Vec<Vec<PlannedCommand>> = Vec::new();
        let mut current = Vec::new();
        let mut bytes = 0;
        for c in commands {
            let len = c.wire_len();
            if !current.is_empty() && bytes + len > MAX_IN_FLIGHT {
                groups.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += len;
            current.push(c);
        }
        groups.push(current);
        groups
    } else {
        commands.into_iter().map(|c| vec![c]).collect()
    };
    Ok(TransactionPlan { groups, unplanned })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbs(list: &[&str]) -> Vec<Mailbox> {
        list.iter().map(|s| Mailbox::parse(s).unwrap()).collect()
    }

    fn caps(pipelining: bool) -> Capabilities {
        Capabilities {
            pipelining,
            ..Capabilities::default()
        }
    }

    #[test]
    fn pipelined_single_group() {
        let r = mbs(&["a@x.test", "b@X.TEST"]);
        let p = plan_transaction(&caps(true), &ReversePath::Null, &r, None).unwrap();
        assert_eq!(p.groups.len(), 1);
        assert_eq!(p.groups[0].len(), 4);
        assert_eq!(p.planned_recipients().collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn lockstep_one_per_group() {
        let r = mbs(&["a@x.test", "b@x.test"]);
        let p = plan_transaction(&caps(false), &ReversePath::Null, &r, None).unwrap();
        assert_eq!(p.groups.len(), 4);
        assert!(p.groups.iter().all(|g| g.len() == 1));
    }

    #[test]
    fn groups_respect_window() {
        let addrs: Vec<String> = (0..300).map(|i| format!("user{i:04}@x.test")).collect();
        let r: Vec<Mailbox> = addrs.iter().map(|s| Mailbox::parse(s).unwrap()).collect();
        let p = plan_transaction(&caps(true), &ReversePath::Null, &r, None).unwrap();
        assert!(p.groups.len() > 1);
        for g in &p.groups {
            assert!(g.iter().map(PlannedCommand::wire_len).sum::<usize>() <= MAX_IN_FLIGHT);
        }
        assert_eq!(p.planned_recipients().count(), 300);
    }

    #[test]
    fn limits_and_utf8() {
        let r = mbs(&["a@x.test", "pelé@x.test", "c@x.test", "d@x.test"]);
        let mut c = caps(true);
        c.rcpt_max = Some(2);
        let p = plan_transaction(&c, &ReversePath::Null, &r, Some(10)).unwrap();
        assert_eq!(
            p.unplanned,
            vec![(1, Unplanned::NeedsSmtpUtf8), (3, Unplanned::OverRcptLimit)]
        );
        c.smtputf8 = true;
        let p = plan_transaction(&c, &ReversePath::Null, &r, Some(10)).unwrap();
        assert!(matches!(&p.groups[0][0], PlannedCommand::Mail(m) if m.smtputf8));
    }

    #[test]
    fn refuses_mixed_domains_and_empty() {
        let r = mbs(&["a@x.test", "b@y.test"]);
        assert!(matches!(
            plan_transaction(&caps(true), &ReversePath::Null, &r, None),
            Err(PlanError::MixedDomains(..))
        ));
        assert_eq!(
            plan_transaction(&caps(true), &ReversePath::Null, &[], None),
            Err(PlanError::NoRecipients)
        );
    }
}
