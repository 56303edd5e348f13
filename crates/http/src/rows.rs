//! A result as the HTTP API shows it: `ResultRow`, with the fields of the CLI's JSONL output
//! (`rollcall verify --format jsonl`), and the same rows as CSV (the CLI's verdict columns,
//! `address` first); a campaign's progress as it shows it (`CampaignProgress`). Pure: no I/O.
//!
//! One difference from the CLI: the backend keeps the verdict, not the submitted text, so
//! `address` is the address as verified (for an entry that is not an address, the entry as
//! sent).

use rollcall_api::{CampaignState, ProgressSnapshot, ResultRecord};
use rollcall_core::{Flag, Status, VERDICT_COLUMNS, Verdict};
use serde::Serialize;
use utoipa::ToSchema;

/// One result: an address and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResultRow {
    /// 0-based position of the entry in the submitted list (0 for `/v1/verify`).
    pub row: u64,
    /// The address as verified (the entry as sent when it is not an address).
    pub address: String,
    /// `deliverable`, `undeliverable`, `risky` or `unknown`.
    pub status: &'static str,
    /// Why (`accepted`, `mailbox_not_found`, `catch_all`, `greylisted`, ...).
    pub reason: &'static str,
    /// The normalised address; absent for what is not an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalized: Option<String>,
    /// The address's domain; absent for what is not an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// A common mail domain the domain is likely a typo of, when it takes no mail
    /// (`gmial.com` -> `gmail.com`); the verdict stays what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub did_you_mean: Option<String>,
    /// The MX host that answered.
    pub mx: Option<String>,
    /// Who runs the domain's mail (`google`, `outlook_com`, `self_hosted`...; docs/providers.md);
    /// absent when the address was not probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The egress the address was probed through; absent when it was not probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// The SMTP reply code that decided.
    pub smtp_code: Option<u16>,
    /// Its enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub enhanced_code: Option<String>,
    /// Its text (control characters removed, at most 200 characters).
    pub smtp_text: Option<String>,
    /// Flags: `role_account`, `disposable`, `free_provider`, `catch_all_domain`, ...
    pub flags: Vec<&'static str>,
    pub is_disposable: bool,
    pub is_role: bool,
    pub is_free: bool,
    pub is_catch_all: bool,
    /// True when the entry repeats an earlier address of the list.
    pub duplicate: bool,
    /// More about the verdict, when there is something to say.
    pub detail: Option<String>,
}

impl ResultRow {
    /// The row of `verdict` at position `row`.
    pub fn new(row: u64, duplicate: bool, v: &Verdict) -> ResultRow {
        let e = &v.evidence;
        let normalized = e.domain.as_ref().map(|_| e.address.clone());
        ResultRow {
            row,
            address: e.address.clone(),
            status: v.status().as_str(),
            reason: v.reason().as_str(),
            normalized,
            domain: e.domain.clone(),
            did_you_mean: v.did_you_mean.clone(),
            mx: e.mx_host.clone(),
            provider: e.provider.clone(),
            egress: e.egress.clone(),
            smtp_code: e.smtp_code,
            enhanced_code: e.enhanced_code.map(|c| c.to_string()),
            smtp_text: e.smtp_text.as_ref().map(|t| t.as_str().to_string()),
            flags: v.flags.names(),
            is_disposable: v.flags.contains(Flag::Disposable),
            is_role: v.flags.contains(Flag::RoleAccount),
            is_free: v.flags.contains(Flag::FreeProvider),
            is_catch_all: v.flags.contains(Flag::CatchAllDomain),
            duplicate,
            detail: v.detail.clone(),
        }
    }

    /// The row of a recorded result.
    pub fn of(record: &ResultRecord) -> ResultRow {
        ResultRow::new(record.row, record.duplicate, &record.verdict)
    }
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR at the start) gets
/// a `'` before it (OWASP "CSV injection"): server text is chosen by whoever runs the server.
pub(crate) fn defused(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// `fields` as one CSV record (RFC 4180 quoting, LF ending), every cell defused.
pub(crate) fn csv_line(fields: impl IntoIterator<Item = String>) -> String {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    let record: Vec<String> = fields.into_iter().map(defused).collect();
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(&record);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl ResultRow {
    /// This row as a CSV line under `CSV_HEADER`.
    pub fn csv(&self) -> String {
        csv_line([
            self.address.clone(),
            self.status.to_string(),
            self.reason.to_string(),
            opt(&self.normalized),
            opt(&self.domain),
            opt(&self.did_you_mean),
            opt(&self.mx),
            opt(&self.provider),
            opt(&self.egress),
            opt(&self.smtp_code),
            opt(&self.enhanced_code),
            self.flags.join(";"),
            self.is_disposable.to_string(),
            self.is_role.to_string(),
            self.is_free.to_string(),
            self.is_catch_all.to_string(),
            self.duplicate.to_string(),
            opt(&self.detail),
            opt(&self.smtp_text),
            self.row.to_string(),
        ])
    }
}

/// The CSV header line: `address`, then the CLI's verdict columns.
pub fn csv_header() -> String {
    csv_line(
        std::iter::once("address")
            .chain(VERDICT_COLUMNS)
            .map(str::to_string),
    )
}

/// A campaign's progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignProgress {
    pub campaign_id: String,
    /// `pending`, `running`, `done`, `cancelled` or `failed`.
    pub state: &'static str,
    /// Entries submitted.
    pub total: u64,
    /// Entries with their result.
    pub done: u64,
    pub deliverable: u64,
    pub undeliverable: u64,
    pub risky: u64,
    pub unknown: u64,
    /// Recent results per second.
    pub rate_per_s: f64,
    /// Estimated seconds until done; absent while there is no rate to go by.
    pub eta_s: Option<f64>,
    /// Why it failed or was cancelled.
    pub detail: Option<String>,
}

pub(crate) fn state_name(state: CampaignState) -> &'static str {
    match state {
        CampaignState::Pending => "pending",
        CampaignState::Running => "running",
        CampaignState::Done => "done",
        CampaignState::Cancelled => "cancelled",
        CampaignState::Failed => "failed",
    }
}

impl From<&ProgressSnapshot> for CampaignProgress {
    fn from(p: &ProgressSnapshot) -> CampaignProgress {
        let count = |s: Status| p.counts.by_status[s as usize];
        CampaignProgress {
            campaign_id: p.campaign_id.to_string(),
            state: state_name(p.state),
            total: p.counts.total,
            done: p.counts.done,
            deliverable: count(Status::Deliverable),
            undeliverable: count(Status::Undeliverable),
            risky: count(Status::Risky),
            unknown: count(Status::Unknown),
            rate_per_s: if p.rate_per_s.is_finite() {
                p.rate_per_s
            } else {
                0.0
            },
            eta_s: p.eta_s(),
            detail: p.detail.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rollcall_core::{EmailAddress, EnhancedCode, Evidence, Reason};

    use super::*;

    fn rejected() -> Verdict {
        let address = EmailAddress::parse("info@example.com").unwrap();
        let mut evidence = Evidence::for_address(&address);
        evidence.set_reply(550, EnhancedCode::parse("5.1.1"), "=cmd| no such user");
        evidence.mx_host = Some("mx.example.com".into());
        Verdict::new(Reason::MailboxNotFound, evidence)
    }

    #[test]
    fn a_row_carries_the_verdict_and_its_evidence() {
        let row = ResultRow::new(3, false, &rejected());
        assert_eq!(row.status, "undeliverable");
        assert_eq!(row.reason, "mailbox_not_found");
        assert_eq!(row.domain.as_deref(), Some("example.com"));
        assert_eq!(row.enhanced_code.as_deref(), Some("5.1.1"));
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["row"], 3);
        assert!(json.get("egress").is_none(), "absent when not probed");
    }

    #[test]
    fn csv_rows_match_the_header_and_defuse_formulas() {
        let line = ResultRow::new(0, true, &rejected()).csv();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(record.len(), VERDICT_COLUMNS.len() + 1);
        assert_eq!(&record[18], "'=cmd| no such user");
        assert_eq!(&record[16], "true");
        assert!(csv_header().starts_with("address,status,reason,"));
    }
}
