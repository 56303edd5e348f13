//! The routes Reacher's (0.11) clients call, answered in Reacher's shapes: `POST
//! /v0/check_email` and `/v1/check_email` (one address), `POST /v1/bulk`, `GET
//! /v1/bulk/{job_id}` and `GET /v1/bulk/{job_id}/results` (a bulk job is a campaign), and the
//! mapping from a rollcall verdict to Reacher's fields (`CheckEmailOutput::of`), which
//! docs/http-api.md gives row by row.
//!
//! `is_reachable` follows the verdict's status: deliverable -> `safe`, undeliverable ->
//! `invalid`, risky -> `risky` (catch-all, full mailbox, role account, disposable), unknown ->
//! `unknown` (greylisted past the retries, deferred, blocked, timeouts...).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall_api::{CampaignState, SubmitOptions};
use rollcall_core::timestamp::rfc3339;
use rollcall_core::{Flag, Reason, Status, Verdict};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::HttpApi;
use crate::error::{ApiError, ErrorBody, json_rejection, query_rejection};
use crate::native::{campaign_id, line_stream, results_in_order, verify_address};
use crate::rows::csv_line;
use crate::upload::submit;

/// Reacher's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reachable {
    Safe,
    Risky,
    Invalid,
    Unknown,
}

impl Reachable {
    /// The `is_reachable` of a rollcall status.
    pub fn of(status: Status) -> Reachable {
        match status {
            Status::Deliverable => Reachable::Safe,
            Status::Undeliverable => Reachable::Invalid,
            Status::Risky => Reachable::Risky,
            Status::Unknown => Reachable::Unknown,
        }
    }

    /// The name Reacher uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachable::Safe => "safe",
            Reachable::Risky => "risky",
            Reachable::Invalid => "invalid",
            Reachable::Unknown => "unknown",
        }
    }
}

/// A proxy as Reacher takes it (accepted and not used: the server's egresses apply).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[expect(
    dead_code,
    reason = "accepted for Reacher's clients; the server's egresses apply"
)]
pub struct ReacherProxy {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// Reacher's check_email request. Unknown fields are ignored, as Reacher does. `from_email`,
/// `hello_name`, `smtp_port` and `proxy` are accepted and not used: the server's identity,
/// port and egresses apply to every probe (see docs/http-api.md).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CheckEmailRequest {
    pub to_email: String,
    #[serde(default)]
    pub from_email: Option<String>,
    #[serde(default)]
    pub hello_name: Option<String>,
    #[serde(default)]
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub proxy: Option<ReacherProxy>,
}

/// Reacher's `misc`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Misc {
    pub is_disposable: bool,
    pub is_role_account: bool,
    /// True for a free mail provider's address (consumer, "business to consumer").
    pub is_b2c: bool,
    /// Always null: rollcall does not look addresses up elsewhere.
    #[schema(value_type = Option<String>)]
    pub gravatar_url: Option<()>,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub haveibeenpwned: Option<()>,
}

/// Reacher's `mx`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Mx {
    /// The domain has a mail server to ask.
    pub accepts_mail: bool,
    /// The MX host that answered (rollcall keeps the one it used, not the whole set).
    pub records: Vec<String>,
}

/// Reacher's `smtp`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Smtp {
    pub can_connect_smtp: bool,
    pub has_full_inbox: bool,
    pub is_catch_all: bool,
    pub is_deliverable: bool,
    pub is_disabled: bool,
}

/// Reacher's `syntax`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Syntax {
    pub address: Option<String>,
    pub domain: String,
    pub is_valid_syntax: bool,
    pub username: String,
    pub normalized_email: Option<String>,
    /// Always null: rollcall does not suggest corrections.
    pub suggestion: Option<String>,
}

/// rollcall's own verdict, under `debug.rollcall`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RollcallDebug {
    pub status: &'static str,
    pub reason: &'static str,
    pub detail: Option<String>,
    pub smtp_code: Option<u16>,
    pub enhanced_code: Option<String>,
    pub smtp_text: Option<String>,
}

/// Reacher's `debug.duration`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Duration {
    pub secs: u64,
    pub nanos: u32,
}

/// Reacher's `debug`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Debug {
    pub server_name: &'static str,
    pub duration: Duration,
    pub rollcall: RollcallDebug,
}

/// Reacher's check_email response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckEmailOutput {
    pub input: String,
    pub is_reachable: Reachable,
    pub misc: Misc,
    pub mx: Mx,
    pub smtp: Smtp,
    pub syntax: Syntax,
    pub debug: Debug,
}

/// Reasons for which the domain had no mail server to ask.
fn no_mail_server(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::InvalidSyntax
            | Reason::NoSuchDomain
            | Reason::NullMx
            | Reason::NoMailServer
            | Reason::ForbiddenTarget
    )
}

impl CheckEmailOutput {
    /// Reacher's answer for `input` from rollcall's `verdict`.
    pub fn of(input: &str, v: &Verdict) -> CheckEmailOutput {
        let e = &v.evidence;
        let reason = v.reason();
        let valid_syntax = reason != Reason::InvalidSyntax;
        let (username, domain) = match (valid_syntax, e.address.rsplit_once('@')) {
            (true, Some((local, domain))) => (local.to_string(), domain.to_string()),
            _ => (String::new(), String::new()),
        };
        let accepted_rcpt = e.smtp_code.is_some_and(|c| (200..300).contains(&c));
        let is_catch_all = reason == Reason::CatchAll || v.flags.contains(Flag::CatchAllDomain);
        CheckEmailOutput {
            input: input.to_string(),
            is_reachable: Reachable::of(v.status()),
            misc: Misc {
                is_disposable: v.flags.contains(Flag::Disposable),
                is_role_account: v.flags.contains(Flag::RoleAccount),
                is_b2c: v.flags.contains(Flag::FreeProvider),
                gravatar_url: None,
                haveibeenpwned: None,
            },
            mx: Mx {
                accepts_mail: !no_mail_server(reason),
                records: e.mx_host.iter().cloned().collect(),
            },
            smtp: Smtp {
                can_connect_smtp: e.smtp_code.is_some(),
                has_full_inbox: reason == Reason::MailboxFull,
                is_catch_all,
                is_deliverable: accepted_rcpt && v.status() != Status::Undeliverable,
                is_disabled: reason == Reason::MailboxDisabled,
            },
            syntax: Syntax {
                address: valid_syntax.then(|| e.address.clone()),
                domain,
                is_valid_syntax: valid_syntax,
                username,
                normalized_email: valid_syntax.then(|| e.address.clone()),
                suggestion: None,
            },
            debug: Debug {
                server_name: "rollcall",
                duration: Duration {
                    secs: e.elapsed_ms / 1000,
                    nanos: u32::try_from((e.elapsed_ms % 1000) * 1_000_000).unwrap_or(0),
                },
                rollcall: RollcallDebug {
                    status: v.status().as_str(),
                    reason: reason.as_str(),
                    detail: v.detail.clone(),
                    smtp_code: e.smtp_code,
                    enhanced_code: e.enhanced_code.map(|c| c.to_string()),
                    smtp_text: e.smtp_text.as_ref().map(|t| t.as_str().to_string()),
                },
            },
        }
    }

    /// The columns of Reacher's bulk CSV.
    const CSV_HEADER: [&'static str; 15] = [
        "input",
        "is_reachable",
        "misc.is_disposable",
        "misc.is_role_account",
        "misc.gravatar_url",
        "mx.accepts_mail",
        "smtp.can_connect",
        "smtp.has_full_inbox",
        "smtp.is_catch_all",
        "smtp.is_deliverable",
        "smtp.is_disabled",
        "syntax.is_valid_syntax",
        "syntax.domain",
        "syntax.username",
        "error",
    ];

    fn csv(&self) -> String {
        csv_line([
            self.input.clone(),
            self.is_reachable.as_str().to_string(),
            self.misc.is_disposable.to_string(),
            self.misc.is_role_account.to_string(),
            String::new(),
            self.mx.accepts_mail.to_string(),
            self.smtp.can_connect_smtp.to_string(),
            self.smtp.has_full_inbox.to_string(),
            self.smtp.is_catch_all.to_string(),
            self.smtp.is_deliverable.to_string(),
            self.smtp.is_disabled.to_string(),
            self.syntax.is_valid_syntax.to_string(),
            self.syntax.domain.clone(),
            self.syntax.username.clone(),
            String::new(),
        ])
    }
}

async fn check_email(
    api: Arc<HttpApi>,
    body: Result<Json<CheckEmailRequest>, JsonRejection>,
) -> Result<Json<CheckEmailOutput>, ApiError> {
    let Json(request) = body.map_err(json_rejection)?;
    if request.from_email.is_some()
        || request.hello_name.is_some()
        || request.smtp_port.is_some()
        || request.proxy.is_some()
    {
        tracing::debug!(
            from_email = ?request.from_email,
            hello_name = ?request.hello_name,
            smtp_port = ?request.smtp_port,
            proxy = request.proxy.is_some(),
            "check_email: per-request identity, port and proxy are not used (the server's apply)"
        );
    }
    let verdict = verify_address(&api, &request.to_email).await?;
    Ok(Json(CheckEmailOutput::of(&request.to_email, &verdict)))
}

/// Reacher's v0 single check.
#[utoipa::path(post, path = "/v0/check_email", tag = "reacher",
    request_body = CheckEmailRequest,
    responses(
        (status = 200, description = "Reacher's answer", body = CheckEmailOutput),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Over a limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before trying again"))),
    ))]
pub(crate) async fn check_email_v0(
    State(api): State<Arc<HttpApi>>,
    body: Result<Json<CheckEmailRequest>, JsonRejection>,
) -> Result<Json<CheckEmailOutput>, ApiError> {
    check_email(api, body).await
}

/// Reacher's v1 single check (the same answer as v0).
#[utoipa::path(post, path = "/v1/check_email", tag = "reacher",
    request_body = CheckEmailRequest,
    responses(
        (status = 200, description = "Reacher's answer", body = CheckEmailOutput),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Over a limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before trying again"))),
    ))]
pub(crate) async fn check_email_v1(
    State(api): State<Arc<HttpApi>>,
    body: Result<Json<CheckEmailRequest>, JsonRejection>,
) -> Result<Json<CheckEmailOutput>, ApiError> {
    check_email(api, body).await
}

/// Reacher's per-email webhook.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ReacherHook {
    pub url: String,
    /// Sent back in every delivery.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<serde_json::Value>,
    /// The signing secret (rollcall's addition); made by the server when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Reacher's bulk webhook.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ReacherWebhook {
    pub on_each_email: ReacherHook,
}

/// Reacher's bulk request. `input_type` and other unknown fields are ignored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BulkRequest {
    pub input: Vec<String>,
    #[serde(default)]
    pub webhook: Option<ReacherWebhook>,
}

/// The new job. Its id is a string (an unguessable campaign id), where Reacher's is a number.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkCreated {
    pub job_id: String,
    /// The webhook signing secret, when the server made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// Creates a bulk job (a campaign).
#[utoipa::path(post, path = "/v1/bulk", tag = "reacher",
    request_body = BulkRequest,
    responses(
        (status = 200, description = "The job", body = BulkCreated),
        (status = 400, description = "Malformed request or webhook URL refused", body = ErrorBody),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Over a limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before trying again"))),
    ))]
pub(crate) async fn create_bulk(
    State(api): State<Arc<HttpApi>>,
    body: Result<Json<BulkRequest>, JsonRejection>,
) -> Result<Json<BulkCreated>, ApiError> {
    let Json(request) = body.map_err(json_rejection)?;
    let chunks: Vec<_> = request.input.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let webhook = request.webhook.map(|w| {
        (
            w.on_each_email.url,
            w.on_each_email.secret,
            w.on_each_email.extra,
        )
    });
    let options = SubmitOptions {
        name: "bulk".into(),
        ..SubmitOptions::default()
    };
    let (outcome, secret) = submit(
        &api,
        options,
        Box::pin(futures_util::stream::iter(chunks)),
        webhook,
    )
    .await?;
    Ok(Json(BulkCreated {
        job_id: outcome.campaign_id.to_string(),
        webhook_secret: secret,
    }))
}

/// Reacher's summary counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkSummary {
    pub total_safe: u64,
    pub total_invalid: u64,
    pub total_risky: u64,
    pub total_unknown: u64,
}

/// Reacher's job progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkProgress {
    pub job_id: String,
    /// RFC 3339, UTC.
    pub created_at: Option<String>,
    /// Reacher sets it once the job is done; rollcall does not keep it (null).
    pub finished_at: Option<String>,
    pub total_records: u64,
    pub total_processed: u64,
    pub summary: BulkSummary,
    /// `Running` or `Completed` (Reacher's), `Cancelled` or `Failed` (rollcall's).
    pub job_status: &'static str,
}

/// A bulk job's progress.
#[utoipa::path(get, path = "/v1/bulk/{job_id}", tag = "reacher",
    params(("job_id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "Its progress", body = BulkProgress),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub(crate) async fn get_bulk(
    State(api): State<Arc<HttpApi>>,
    Path(job_id): Path<String>,
) -> Result<Json<BulkProgress>, ApiError> {
    let id = campaign_id(&job_id)?;
    let p = api.backend.progress(&id).await?;
    let count = |s: Status| p.counts.by_status[s as usize];
    Ok(Json(BulkProgress {
        job_id: id.to_string(),
        created_at: api.created.get(&id).map(rfc3339),
        finished_at: None,
        total_records: p.counts.total,
        total_processed: p.counts.done,
        summary: BulkSummary {
            total_safe: count(Status::Deliverable),
            total_invalid: count(Status::Undeliverable),
            total_risky: count(Status::Risky),
            total_unknown: count(Status::Unknown),
        },
        job_status: match p.state {
            CampaignState::Pending | CampaignState::Running => "Running",
            CampaignState::Done => "Completed",
            CampaignState::Cancelled => "Cancelled",
            CampaignState::Failed => "Failed",
        },
    }))
}

/// `format` of the bulk results.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BulkFormat {
    #[default]
    Json,
    Csv,
}

/// Query of the bulk results.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulkResultsQuery {
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: BulkFormat,
    /// Most results returned (all when absent).
    pub limit: Option<u64>,
    /// Results skipped first, in input order.
    #[serde(default)]
    pub offset: u64,
}

/// Reacher's JSON results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkResults {
    pub results: Vec<CheckEmailOutput>,
}

/// A bulk job's results in input order (what is done so far, while it runs).
#[utoipa::path(get, path = "/v1/bulk/{job_id}/results", tag = "reacher",
    params(("job_id" = String, Path, description = "The job id"), BulkResultsQuery),
    responses(
        (status = 200, description = "The results",
            content((BulkResults = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub(crate) async fn bulk_results(
    State(api): State<Arc<HttpApi>>,
    Path(job_id): Path<String>,
    query: Result<Query<BulkResultsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_rejection)?;
    let id = campaign_id(&job_id)?;
    api.backend.progress(&id).await?;
    let all = results_in_order(&*api.backend, &id).await?;
    let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
    let limit = query
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let outputs: Vec<CheckEmailOutput> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| CheckEmailOutput::of(&r.verdict.evidence.address, &r.verdict))
        .collect();
    Ok(match query.format {
        BulkFormat::Json => Json(BulkResults { results: outputs }).into_response(),
        BulkFormat::Csv => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            line_stream(
                Some(csv_line(
                    CheckEmailOutput::CSV_HEADER.iter().map(|s| s.to_string()),
                )),
                outputs,
                CheckEmailOutput::csv,
            ),
        )
            .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use rollcall_core::{EmailAddress, EnhancedCode, Evidence, Flags};

    use super::*;

    fn verdict(reason: Reason, code: Option<u16>, flags: &[Flag]) -> Verdict {
        let address = EmailAddress::parse("Ann@example.com").unwrap();
        let mut evidence = Evidence::for_address(&address);
        if let Some(code) = code {
            evidence.set_reply(code, EnhancedCode::parse("2.1.5"), "ok");
            evidence.mx_host = Some("mx.example.com".into());
        }
        let mut f = Flags::default();
        for flag in flags {
            f.insert(*flag);
        }
        Verdict::new(reason, evidence).with_flags(f)
    }

    #[test]
    fn every_reason_maps_to_the_reachable_of_its_status() {
        for reason in Reason::ALL {
            let out = CheckEmailOutput::of("x", &verdict(reason, Some(250), &[]));
            assert_eq!(out.is_reachable, Reachable::of(reason.status()), "{reason}");
        }
    }

    #[test]
    fn catch_all_is_risky_and_says_so() {
        let out = CheckEmailOutput::of(
            "ann@example.com",
            &verdict(Reason::CatchAll, Some(250), &[Flag::CatchAllDomain]),
        );
        assert_eq!(out.is_reachable, Reachable::Risky);
        assert!(out.smtp.is_catch_all && out.smtp.is_deliverable && out.smtp.can_connect_smtp);
        assert_eq!(out.mx.records, ["mx.example.com"]);
        let json = serde_json::to_value(&out).unwrap();
        assert!(json["misc"]["gravatar_url"].is_null());
        assert!(json["misc"]["haveibeenpwned"].is_null());
        assert_eq!(json["is_reachable"], "risky");
    }

    #[test]
    fn invalid_syntax_has_no_mail_server_and_no_username() {
        let v = Verdict::for_syntax_error(
            "not an address",
            &EmailAddress::parse("not an address").unwrap_err(),
        );
        let out = CheckEmailOutput::of("not an address", &v);
        assert_eq!(out.is_reachable, Reachable::Invalid);
        assert!(!out.syntax.is_valid_syntax && !out.mx.accepts_mail);
        assert_eq!(out.syntax.username, "");
    }

    #[test]
    fn greylisted_then_unknown_is_unknown() {
        let out = CheckEmailOutput::of("x", &verdict(Reason::Greylisted, Some(450), &[]));
        assert_eq!(out.is_reachable, Reachable::Unknown);
        assert!(!out.smtp.is_deliverable && out.smtp.can_connect_smtp);
    }
}
