//! Conversions between the wire types (`v1`) and the domain types (`rollcall_core`, `backend`).
//!
//! Owns every mapping of an enum or message across the boundary: `Status` and `Reason` both
//! ways (names checked against each other by test), a `Verdict` or `ResultRecord` into a
//! `VerificationResult` and back, progress and state, and the validation of
//! `CampaignOptions`. It does not decide anything about verdicts (`rollcall_core` does) and
//! does no I/O.

use rollcall_core::{EnhancedCode, Evidence, Flags, Reason, ReplyText, Status, Verdict};

use crate::backend::{CampaignState, ProgressSnapshot, ResultRecord, SubmitOptions, SubmitOutcome};
use crate::error::Error;
use crate::v1;

impl From<Status> for v1::Status {
    fn from(s: Status) -> v1::Status {
        match s {
            Status::Deliverable => v1::Status::Deliverable,
            Status::Undeliverable => v1::Status::Undeliverable,
            Status::Risky => v1::Status::Risky,
            Status::Unknown => v1::Status::Unknown,
        }
    }
}

impl TryFrom<v1::Status> for Status {
    type Error = Error;
    fn try_from(s: v1::Status) -> Result<Status, Error> {
        match s {
            v1::Status::Unspecified => Err(Error::Unspecified("status")),
            v1::Status::Deliverable => Ok(Status::Deliverable),
            v1::Status::Undeliverable => Ok(Status::Undeliverable),
            v1::Status::Risky => Ok(Status::Risky),
            v1::Status::Unknown => Ok(Status::Unknown),
        }
    }
}

impl From<Reason> for v1::Reason {
    fn from(r: Reason) -> v1::Reason {
        match r {
            Reason::Accepted => v1::Reason::Accepted,
            Reason::InvalidSyntax => v1::Reason::InvalidSyntax,
            Reason::NoSuchDomain => v1::Reason::NoSuchDomain,
            Reason::NullMx => v1::Reason::NullMx,
            Reason::NoMailServer => v1::Reason::NoMailServer,
            Reason::MailboxNotFound => v1::Reason::MailboxNotFound,
            Reason::MailboxDisabled => v1::Reason::MailboxDisabled,
            Reason::Rejected => v1::Reason::Rejected,
            Reason::CatchAll => v1::Reason::CatchAll,
            Reason::MailboxFull => v1::Reason::MailboxFull,
            Reason::Disposable => v1::Reason::Disposable,
            Reason::RoleAccount => v1::Reason::RoleAccount,
            Reason::AcceptsAll => v1::Reason::AcceptsAll,
            Reason::Greylisted => v1::Reason::Greylisted,
            Reason::Deferred => v1::Reason::Deferred,
            Reason::Blocked => v1::Reason::Blocked,
            Reason::Timeout => v1::Reason::Timeout,
            Reason::ConnectionFailed => v1::Reason::ConnectionFailed,
            Reason::TlsFailed => v1::Reason::TlsFailed,
            Reason::ProtocolError => v1::Reason::ProtocolError,
            Reason::Unverifiable => v1::Reason::Unverifiable,
            Reason::ForbiddenTarget => v1::Reason::ForbiddenTarget,
        }
    }
}

impl TryFrom<v1::Reason> for Reason {
    type Error = Error;
    fn try_from(r: v1::Reason) -> Result<Reason, Error> {
        Ok(match r {
            v1::Reason::Unspecified => return Err(Error::Unspecified("reason")),
            v1::Reason::Accepted => Reason::Accepted,
            v1::Reason::InvalidSyntax => Reason::InvalidSyntax,
            v1::Reason::NoSuchDomain => Reason::NoSuchDomain,
            v1::Reason::NullMx => Reason::NullMx,
            v1::Reason::NoMailServer => Reason::NoMailServer,
            v1::Reason::MailboxNotFound => Reason::MailboxNotFound,
            v1::Reason::MailboxDisabled => Reason::MailboxDisabled,
            v1::Reason::Rejected => Reason::Rejected,
            v1::Reason::CatchAll => Reason::CatchAll,
            v1::Reason::MailboxFull => Reason::MailboxFull,
            v1::Reason::Disposable => Reason::Disposable,
            v1::Reason::RoleAccount => Reason::RoleAccount,
            v1::Reason::AcceptsAll => Reason::AcceptsAll,
            v1::Reason::Greylisted => Reason::Greylisted,
            v1::Reason::Deferred => Reason::Deferred,
            v1::Reason::Blocked => Reason::Blocked,
            v1::Reason::Timeout => Reason::Timeout,
            v1::Reason::ConnectionFailed => Reason::ConnectionFailed,
            v1::Reason::TlsFailed => Reason::TlsFailed,
            v1::Reason::ProtocolError => Reason::ProtocolError,
            v1::Reason::Unverifiable => Reason::Unverifiable,
            v1::Reason::ForbiddenTarget => Reason::ForbiddenTarget,
        })
    }
}

/// The status behind a wire value (as found in `VerificationResult::status`).
pub fn status_from_wire(value: i32) -> Result<Status, Error> {
    v1::Status::try_from(value)
        .map_err(|_| Error::UnknownEnumValue {
            kind: "status",
            value,
        })?
        .try_into()
}

/// The reason behind a wire value (as found in `VerificationResult::reason`).
pub fn reason_from_wire(value: i32) -> Result<Reason, Error> {
    v1::Reason::try_from(value)
        .map_err(|_| Error::UnknownEnumValue {
            kind: "reason",
            value,
        })?
        .try_into()
}

/// A verdict on the wire, outside any list (`row` 0, not a duplicate).
impl From<&Verdict> for v1::VerificationResult {
    fn from(v: &Verdict) -> v1::VerificationResult {
        let e = &v.evidence;
        v1::VerificationResult {
            address: e.address.clone(),
            status: v1::Status::from(v.status()).into(),
            reason: v1::Reason::from(v.reason()).into(),
            mx_host: e.mx_host.clone().unwrap_or_default(),
            egress: e.egress.clone().unwrap_or_default(),
            provider: e.provider.clone().unwrap_or_default(),
            did_you_mean: v.did_you_mean.clone().unwrap_or_default(),
            smtp_code: e.smtp_code.map_or(0, u32::from),
            enhanced_code: e
                .enhanced_code
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            reply_text: e
                .smtp_text
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            flags: v.flags.names().into_iter().map(str::to_owned).collect(),
            detail: v.detail.clone().unwrap_or_default(),
            row: 0,
            duplicate: false,
        }
    }
}

impl From<&ResultRecord> for v1::VerificationResult {
    fn from(r: &ResultRecord) -> v1::VerificationResult {
        v1::VerificationResult {
            row: r.row,
            duplicate: r.duplicate,
            ..v1::VerificationResult::from(r.verdict.as_ref())
        }
    }
}

/// Rebuilds the verdict a client received: status and reason must agree, flags must be known
/// names. The evidence the wire does not carry (IP, attempts, timings) is left empty.
impl TryFrom<&v1::VerificationResult> for Verdict {
    type Error = Error;
    fn try_from(r: &v1::VerificationResult) -> Result<Verdict, Error> {
        let status = status_from_wire(r.status)?;
        let reason = reason_from_wire(r.reason)?;
        if reason.status() != status {
            return Err(Error::Invalid {
                kind: "verification result",
                why: format!("reason {reason} belongs to status {}", reason.status()),
            });
        }
        let mut flags = Flags::default();
        for name in &r.flags {
            flags.insert(name.parse().map_err(|e| Error::Invalid {
                kind: "verification result",
                why: format!("{e}"),
            })?);
        }
        let smtp_code = match u16::try_from(r.smtp_code) {
            Ok(0) => None,
            Ok(code) if code <= 999 => Some(code),
            _ => {
                return Err(Error::Invalid {
                    kind: "verification result",
                    why: format!("SMTP code {} is not three digits", r.smtp_code),
                });
            }
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let evidence = Evidence {
            address: ReplyText::new(&r.address).into(),
            domain: match reason {
                Reason::InvalidSyntax => None,
                _ => r.address.rsplit_once('@').and_then(|(_, d)| non_empty(d)),
            },
            mx_host: non_empty(&r.mx_host),
            egress: non_empty(&r.egress),
            provider: non_empty(&r.provider),
            smtp_code,
            enhanced_code: EnhancedCode::parse(&r.enhanced_code),
            smtp_text: non_empty(&r.reply_text).map(|t| ReplyText::new(&t)),
            ..Evidence::default()
        };
        let mut verdict = Verdict::new(reason, evidence).with_flags(flags);
        verdict.detail = non_empty(&r.detail);
        verdict.did_you_mean = non_empty(&r.did_you_mean);
        Ok(verdict)
    }
}

impl From<CampaignState> for v1::CampaignState {
    fn from(s: CampaignState) -> v1::CampaignState {
        match s {
            CampaignState::Pending => v1::CampaignState::Pending,
            CampaignState::Running => v1::CampaignState::Running,
            CampaignState::Done => v1::CampaignState::Done,
            CampaignState::Cancelled => v1::CampaignState::Cancelled,
            CampaignState::Failed => v1::CampaignState::Failed,
        }
    }
}

impl TryFrom<v1::CampaignState> for CampaignState {
    type Error = Error;
    fn try_from(s: v1::CampaignState) -> Result<CampaignState, Error> {
        match s {
            v1::CampaignState::Unspecified => Err(Error::Unspecified("campaign state")),
            v1::CampaignState::Pending => Ok(CampaignState::Pending),
            v1::CampaignState::Running => Ok(CampaignState::Running),
            v1::CampaignState::Done => Ok(CampaignState::Done),
            v1::CampaignState::Cancelled => Ok(CampaignState::Cancelled),
            v1::CampaignState::Failed => Ok(CampaignState::Failed),
        }
    }
}

/// The campaign state behind a wire value (as found in `Progress::state`).
pub fn campaign_state_from_wire(value: i32) -> Result<CampaignState, Error> {
    v1::CampaignState::try_from(value)
        .map_err(|_| Error::UnknownEnumValue {
            kind: "campaign state",
            value,
        })?
        .try_into()
}

impl From<&ProgressSnapshot> for v1::Progress {
    fn from(p: &ProgressSnapshot) -> v1::Progress {
        let [deliverable, undeliverable, risky, unknown] = p.counts.by_status;
        v1::Progress {
            campaign_id: p.campaign_id.to_string(),
            state: v1::CampaignState::from(p.state).into(),
            total: p.counts.total,
            done: p.counts.done,
            deliverable,
            undeliverable,
            risky,
            unknown,
            rate_per_s: if p.rate_per_s.is_finite() {
                p.rate_per_s.max(0.0)
            } else {
                0.0
            },
            eta_s: p.eta_s(),
            detail: p.detail.clone().unwrap_or_default(),
        }
    }
}

impl From<&SubmitOutcome> for v1::SubmitCampaignResponse {
    fn from(o: &SubmitOutcome) -> v1::SubmitCampaignResponse {
        v1::SubmitCampaignResponse {
            campaign_id: o.campaign_id.to_string(),
            accepted: o.accepted,
            duplicate: o.duplicate,
            invalid: o.invalid,
        }
    }
}

/// Validates what a client asked for. The EHLO name and reverse path end up on the SMTP wire,
/// so no control character (CR LF would inject a command, RFC 5321 2.3.8) or space gets past
/// here; their full syntax is the SMTP codec's to check.
impl TryFrom<v1::CampaignOptions> for SubmitOptions {
    type Error = Error;
    fn try_from(o: v1::CampaignOptions) -> Result<SubmitOptions, Error> {
        let invalid = |why: String| Error::Invalid {
            kind: "campaign options",
            why,
        };
        if o.name.chars().count() > SubmitOptions::MAX_NAME_CHARS {
            return Err(invalid(format!(
                "name is longer than {} characters",
                SubmitOptions::MAX_NAME_CHARS
            )));
        }
        if o.name.chars().any(char::is_control) {
            return Err(invalid("name contains a control character".into()));
        }
        for (field, value) in [("helo", &o.helo), ("mail_from", &o.mail_from)] {
            let Some(value) = value else { continue };
            if value.len() > 255 {
                return Err(invalid(format!("{field} is longer than 255 bytes")));
            }
            if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(invalid(format!(
                    "{field} contains a control character or a space"
                )));
            }
        }
        if o.helo.as_deref() == Some("") {
            return Err(invalid("helo is empty".into()));
        }
        for (field, value) in [
            ("max_sessions", o.max_sessions),
            ("rcpt_per_minute", o.rcpt_per_minute),
            ("rcpt_per_transaction", o.rcpt_per_transaction),
        ] {
            if value == Some(0) {
                return Err(invalid(format!("{field} must be at least 1")));
            }
        }
        Ok(SubmitOptions {
            name: o.name,
            helo: o.helo,
            mail_from: o.mail_from,
            max_sessions: o.max_sessions,
            rcpt_per_minute: o.rcpt_per_minute,
            rcpt_per_transaction: o.rcpt_per_transaction,
            max_wait_secs: o.max_wait_secs,
        })
    }
}

#[cfg(test)]
mod tests;
