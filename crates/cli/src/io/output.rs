//! Output formats: one CSV record or one JSON line per output row, written as results come
//! (completion order, not input order: the `row` column/field gives the input position, so
//! `sort -t, -k row` or a `jq -s 'sort_by(.row)'` restores it).
//!
//! CSV columns: the input's columns (CSV input: its header; text input: `address`; JSONL input:
//! `address,input` with the original object as JSON), then `VERDICT_COLUMNS`:
//! `status,reason,normalized,domain,did_you_mean,mx,provider,egress,smtp_code,enhanced_code,
//! flags,is_disposable,is_role,is_free,is_catch_all,duplicate,detail,smtp_text,row,cached,
//! verified_at,changed,score`
//! (`cached`: the verdict came from the result cache; `verified_at`: when it was reached, RFC
//! 3339 UTC; `changed`: `deliverable->undeliverable` when a cached verdict was verified again
//! and differs, else empty). After a CSV input that already
//! has a column of one of those names (a results file verified again) they are all named with
//! `rollcall_` before them; when those names are taken too, the run is refused.
//! JSONL fields: `row, address, status, reason, normalized, domain, did_you_mean, mx, provider,
//! egress, smtp_code, enhanced_code, smtp_text, flags, is_disposable, is_role, is_free,
//! is_catch_all, duplicate, detail, cached, verified_at, changed, score`, and `input` (the
//! original fields) for CSV and JSONL input; `normalized`, `domain`, `did_you_mean`,
//! `provider`, `egress`, `verified_at` and `changed` are absent when there is nothing to say.
//! `provider`: who runs the domain's mail (docs/providers.md); `did_you_mean`: a common mail
//! domain the domain is likely a typo of, when it takes no mail; `score`: 0-100
//! (docs/scoring.md).
//!
//! CSV output is guarded against spreadsheet formulas (OWASP "CSV Injection"): a cell that
//! starts with `=`, `+`, `-`, `@`, a tab or a CR, whatever it holds (an input field, a server's
//! reply text, an MX name), is written with a `'` before it, so a spreadsheet shows it as text
//! instead of running it. `FormulaGuard::Off` writes cells as they are.
//!
//! Owns the formats and the `RowSink` trait the run loop writes to; does not decide when to
//! flush (the run loop does, about every second) or what a verdict is.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;

use rollcall_core::timestamp::rfc3339;
use rollcall_core::{Flag, Verdict};
use rollcall_engine::coordinator::OutputRow;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::io::rows::{Fields, InputFormat, Record};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Csv,
    Jsonl,
}

impl OutputFormat {
    /// From the output file name: `.jsonl` or `.ndjson` JSONL, anything else (and stdout) CSV.
    pub fn from_path(path: Option<&Path>) -> OutputFormat {
        match path.map(InputFormat::from_path) {
            Some(InputFormat::Jsonl) => OutputFormat::Jsonl,
            _ => OutputFormat::Csv,
        }
    }
}

/// `--csv-formula-guard`: whether CSV cells that a spreadsheet would run are defused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FormulaGuard {
    /// A `'` before every cell starting with `=`, `+`, `-`, `@`, tab or CR.
    #[default]
    On,
    /// Cells as they are.
    Off,
}

/// OWASP CSV Injection: the first characters that make Excel, LibreOffice or Google Sheets read
/// a cell as a formula (tab and CR because some strip them and read what follows).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell` as a spreadsheet will show it as text: with a `'` before it when it starts like a
/// formula (the quote is what OWASP recommends; spreadsheets hide it).
fn defused(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_START) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Verdict columns appended after the input's columns, in this order (the HTTP API's CSV has
/// them too: they are `rollcall_core`'s).
pub use rollcall_core::VERDICT_COLUMNS;

/// The result cache's columns, after the verdict columns: whether the verdict came from the
/// cache, when it was verified, and what changed since the cached verdict.
pub const CACHE_COLUMNS: [&str; 3] = ["cached", "verified_at", "changed"];

/// The row's score, after the cache's columns: 0-100 (docs/scoring.md).
pub const SCORE_COLUMN: &str = "score";

/// Every column a result row adds after the input's: the verdict's, the cache's, the score.
pub fn result_columns() -> impl Iterator<Item = &'static str> + Clone {
    VERDICT_COLUMNS
        .into_iter()
        .chain(CACHE_COLUMNS)
        .chain([SCORE_COLUMN])
}

/// What the verdict columns are called after an input that already has columns of those
/// names (a results file verified again): this before each.
pub const RESULT_PREFIX: &str = "rollcall_";

/// The prefix of the verdict columns after an input with `columns`: none, or `RESULT_PREFIX`
/// when an input column is named like a verdict column (compared without case); `Err` with
/// the names taken when even the prefixed names are.
pub fn result_prefix(columns: &[String]) -> Result<&'static str, Vec<String>> {
    let taken = |prefix: &str| -> Vec<String> {
        result_columns()
            .map(|c| format!("{prefix}{c}"))
            .filter(|c| columns.iter().any(|i| i.trim().eq_ignore_ascii_case(c)))
            .collect()
    };
    if taken("").is_empty() {
        return Ok("");
    }
    match taken(RESULT_PREFIX) {
        clash if clash.is_empty() => Ok(RESULT_PREFIX),
        clash => Err(clash),
    }
}

/// The address as verified (the domain case-folded, an IDN as its A-label) and its domain, as
/// the verdict's evidence holds them (the coordinator parsed the row once); `None` for what is
/// not an address (its evidence has no domain).
fn normalized(verdict: &Verdict) -> Option<(&str, &str)> {
    let e = &verdict.evidence;
    e.domain
        .as_deref()
        .map(|domain| (e.address.as_str(), domain))
}

/// Where output rows go.
pub trait RowSink<P> {
    fn write_row(&mut self, row: &OutputRow<P>) -> io::Result<()>;
    /// Pushes buffered rows to the file or pipe, so what is there is whole and readable.
    fn flush(&mut self) -> io::Result<()>;
}

impl<P, S: RowSink<P> + ?Sized> RowSink<P> for Box<S> {
    fn write_row(&mut self, row: &OutputRow<P>) -> io::Result<()> {
        (**self).write_row(row)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
}

/// What the input looked like, so its columns can be written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputShape {
    Text,
    Csv(Vec<String>),
    Jsonl,
}

/// Opens the writer for `format` over `out`, CSV with the formula guard on; the CSV header is
/// written at once.
pub fn open_sink(
    format: OutputFormat,
    out: Box<dyn Write + Send>,
    shape: InputShape,
) -> io::Result<Box<dyn RowSink<Record> + Send>> {
    open_sink_guarded(format, out, shape, FormulaGuard::On)
}

/// `open_sink` with the CSV formula guard as given (JSONL has none: no spreadsheet runs it).
pub fn open_sink_guarded(
    format: OutputFormat,
    out: Box<dyn Write + Send>,
    shape: InputShape,
    guard: FormulaGuard,
) -> io::Result<Box<dyn RowSink<Record> + Send>> {
    Ok(match format {
        OutputFormat::Csv => Box::new(CsvOutput::with_guard(out, shape, guard)?),
        OutputFormat::Jsonl => Box::new(JsonlOutput::new(out, shape)),
    })
}

/// The detail column: what was wrong with the input record first, then the verdict's detail.
fn detail(record: &Record, verdict: &Verdict) -> Option<String> {
    match (&record.malformed, &verdict.detail) {
        (Some(m), Some(d)) => Some(format!("malformed input: {m}; {d}")),
        (Some(m), None) => Some(format!("malformed input: {m}")),
        (None, d) => d.clone(),
    }
}

fn flags(verdict: &Verdict) -> Vec<&'static str> {
    verdict.flags.names()
}

/// CSV writer.
pub struct CsvOutput<W: Write> {
    writer: csv::Writer<W>,
    shape: InputShape,
    fields: Vec<String>,
    guard: FormulaGuard,
}

impl<W: Write> CsvOutput<W> {
    /// A writer with the formula guard on (tests; commands go through `open_sink_guarded`).
    #[cfg(test)]
    pub fn new(out: W, shape: InputShape) -> io::Result<Self> {
        CsvOutput::with_guard(out, shape, FormulaGuard::On)
    }

    pub fn with_guard(out: W, shape: InputShape, guard: FormulaGuard) -> io::Result<Self> {
        let mut writer = csv::WriterBuilder::new().flexible(false).from_writer(out);
        let mut header: Vec<&str> = match &shape {
            InputShape::Text => vec!["address"],
            InputShape::Csv(columns) => columns.iter().map(String::as_str).collect(),
            InputShape::Jsonl => vec!["address", "input"],
        };
        let prefix = match &shape {
            InputShape::Csv(columns) => result_prefix(columns).map_err(|taken| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the input already has the columns {}; remove them (or verify the \
                         original list) so the results do not stand beside old ones",
                        taken.join(", ")
                    ),
                )
            })?,
            _ => "",
        };
        let verdict_columns: Vec<String> =
            result_columns().map(|c| format!("{prefix}{c}")).collect();
        header.extend(verdict_columns.iter().map(String::as_str));
        // The input's header is input too.
        let header: Vec<Cow<'_, str>> = match guard {
            FormulaGuard::On => header.into_iter().map(defused).collect(),
            FormulaGuard::Off => header.into_iter().map(Cow::Borrowed).collect(),
        };
        writer
            .write_record(header.iter().map(|c| c.as_bytes()))
            .map_err(csv_error)?;
        Ok(CsvOutput {
            writer,
            shape,
            fields: Vec::new(),
            guard,
        })
    }
}

fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

impl<W: Write> RowSink<Record> for CsvOutput<W> {
    fn write_row(&mut self, row: &OutputRow<Record>) -> io::Result<()> {
        let v = &row.verdict;
        let record = &row.payload;
        self.fields.clear();
        match (&self.shape, &record.fields) {
            (InputShape::Csv(columns), Fields::Csv(fields)) => {
                // A malformed record is padded or cut to the header's width so the file stays a
                // valid CSV; a cut record's whole text goes into `detail` below.
                self.fields
                    .extend(fields.iter().take(columns.len()).cloned());
                self.fields.resize(columns.len(), String::new());
            }
            (InputShape::Csv(columns), _) => self.fields.resize(columns.len(), String::new()),
            (InputShape::Text, _) => self.fields.push(row.text.clone()),
            (InputShape::Jsonl, fields) => {
                self.fields.push(row.text.clone());
                self.fields.push(match fields {
                    Fields::Json(value) => value.to_string(),
                    _ => String::new(),
                });
            }
        }
        let e = &v.evidence;
        let mut detail = detail(record, v).unwrap_or_default();
        if let (InputShape::Csv(columns), Fields::Csv(fields)) = (&self.shape, &record.fields)
            && fields.len() > columns.len()
        {
            detail = format!("{detail} (record: {})", row.text);
        }
        let (normalized, domain) = normalized(v).unwrap_or_default();
        let flag = |f: Flag| v.flags.contains(f).to_string();
        self.fields.extend([
            v.status().as_str().to_string(),
            v.reason().as_str().to_string(),
            normalized.to_string(),
            domain.to_string(),
            v.did_you_mean.clone().unwrap_or_default(),
            e.mx_host.clone().unwrap_or_default(),
            e.provider.clone().unwrap_or_default(),
            e.egress.clone().unwrap_or_default(),
            e.smtp_code.map(|c| c.to_string()).unwrap_or_default(),
            e.enhanced_code.map(|c| c.to_string()).unwrap_or_default(),
            flags(v).join(";"),
            flag(Flag::Disposable),
            flag(Flag::RoleAccount),
            flag(Flag::FreeProvider),
            flag(Flag::CatchAllDomain),
            row.duplicate.to_string(),
            detail,
            e.smtp_text
                .as_ref()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            row.row.to_string(),
            row.cache.cached.to_string(),
            row.cache.verified_at.map(rfc3339).unwrap_or_default(),
            row.changed().unwrap_or_default(),
            row.score.to_string(),
        ]);
        if self.guard == FormulaGuard::On {
            for cell in &mut self.fields {
                if let Cow::Owned(safe) = defused(cell) {
                    *cell = safe;
                }
            }
        }
        self.writer.write_record(&self.fields).map_err(csv_error)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// JSONL writer.
pub struct JsonlOutput<W: Write> {
    out: io::BufWriter<W>,
    /// The CSV header, to key a CSV record's fields under `input`.
    columns: Vec<String>,
}

impl<W: Write> JsonlOutput<W> {
    pub fn new(out: W, shape: InputShape) -> Self {
        JsonlOutput {
            out: io::BufWriter::with_capacity(64 * 1024, out),
            columns: match shape {
                InputShape::Csv(columns) => columns,
                _ => Vec::new(),
            },
        }
    }
}

/// One JSONL line (field order is the documented order).
#[derive(Serialize)]
struct JsonRow<'a> {
    row: u64,
    address: &'a str,
    status: &'static str,
    reason: &'static str,
    /// The address as verified; absent for what is not an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    normalized: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    /// A common mail domain the domain is likely a typo of, when it takes no mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    did_you_mean: Option<&'a str>,
    mx: Option<&'a str>,
    /// Who runs the domain's mail (`google`, `outlook_com`, `self_hosted`...); absent when the
    /// address was not probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    /// The egress the address was probed through (absent when it was not probed).
    #[serde(skip_serializing_if = "Option::is_none")]
    egress: Option<&'a str>,
    smtp_code: Option<u16>,
    enhanced_code: Option<String>,
    smtp_text: Option<&'a str>,
    flags: Vec<&'static str>,
    is_disposable: bool,
    is_role: bool,
    is_free: bool,
    is_catch_all: bool,
    duplicate: bool,
    detail: Option<String>,
    cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<String>,
    score: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
}

impl<W: Write> RowSink<Record> for JsonlOutput<W> {
    fn write_row(&mut self, row: &OutputRow<Record>) -> io::Result<()> {
        let v = &row.verdict;
        let e = &v.evidence;
        let input = match &row.payload.fields {
            Fields::None => None,
            Fields::Json(value) => Some(value.clone()),
            Fields::Csv(fields) => Some(csv_object(&self.columns, fields)),
        };
        let normalized = normalized(v);
        let line = JsonRow {
            row: row.row,
            address: &row.text,
            status: v.status().as_str(),
            reason: v.reason().as_str(),
            normalized: normalized.map(|(address, _)| address),
            domain: normalized.map(|(_, domain)| domain),
            did_you_mean: v.did_you_mean.as_deref(),
            mx: e.mx_host.as_deref(),
            provider: e.provider.as_deref(),
            egress: e.egress.as_deref(),
            smtp_code: e.smtp_code,
            enhanced_code: e.enhanced_code.map(|c| c.to_string()),
            smtp_text: e.smtp_text.as_ref().map(|t| t.as_str()),
            flags: flags(v),
            is_disposable: v.flags.contains(Flag::Disposable),
            is_role: v.flags.contains(Flag::RoleAccount),
            is_free: v.flags.contains(Flag::FreeProvider),
            is_catch_all: v.flags.contains(Flag::CatchAllDomain),
            duplicate: row.duplicate,
            detail: detail(&row.payload, v),
            cached: row.cache.cached,
            verified_at: row.cache.verified_at.map(rfc3339),
            changed: row.changed(),
            score: row.score,
            input,
        };
        serde_json::to_writer(&mut self.out, &line).map_err(io::Error::other)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `--changes-only`: passes on only the rows whose verdict changed since the cached one.
pub struct ChangesOnly<S>(pub S);

impl<P, S: RowSink<P>> RowSink<P> for ChangesOnly<S> {
    fn write_row(&mut self, row: &OutputRow<P>) -> io::Result<()> {
        match row.changed() {
            Some(_) => self.0.write_row(row),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// CSV fields as an object keyed by the header; fields beyond the header go under `_extra`.
fn csv_object(columns: &[String], fields: &[String]) -> Value {
    let mut map = Map::new();
    let mut extra = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        match columns.get(i) {
            Some(name) => {
                map.insert(name.clone(), Value::String(field.clone()));
            }
            None => extra.push(Value::String(field.clone())),
        }
    }
    if !extra.is_empty() {
        map.insert("_extra".to_string(), Value::Array(extra));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests;
