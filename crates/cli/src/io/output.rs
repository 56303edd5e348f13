//! Output formats: one CSV record or one JSON line per output row, written as results come
//! (completion order, not input order: the `row` column/field gives the input position, so
//! `sort -t, -k row` or a `jq -s 'sort_by(.row)'` restores it).
//!
//! CSV columns: the input's columns (CSV input: its header; text input: `address`; JSONL input:
//! `address,input` with the original object as JSON), then `VERDICT_COLUMNS`:
//! `status,reason,normalized,domain,mx,egress,smtp_code,enhanced_code,flags,is_disposable,
//! is_role,is_free,is_catch_all,duplicate,detail,smtp_text,row,cached,verified_at,changed`
//! (`cached`: the verdict came from the result cache; `verified_at`: when it was reached, RFC
//! 3339 UTC; `changed`: `deliverable->undeliverable` when a cached verdict was verified again
//! and differs, else empty). After a CSV input that already
//! has a column of one of those names (a results file verified again) they are all named with
//! `rollcall_` before them; when those names are taken too, the run is refused.
//! JSONL fields: `row, address, status, reason, normalized, domain, mx, egress, smtp_code,
//! enhanced_code, smtp_text, flags, is_disposable, is_role, is_free, is_catch_all, duplicate,
//! detail, cached, verified_at, changed`, and `input` (the original fields) for CSV and JSONL
//! input; `normalized`, `domain`, `egress`, `verified_at` and `changed` are absent when there
//! is nothing to say.
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

/// Every column a result row adds after the input's: the verdict's, then the cache's.
pub fn result_columns() -> impl Iterator<Item = &'static str> + Clone {
    VERDICT_COLUMNS.into_iter().chain(CACHE_COLUMNS)
}

/// `secs` since the Unix epoch as RFC 3339 UTC, `2026-12-07T18:47:13Z`.
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
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
            e.mx_host.clone().unwrap_or_default(),
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
    mx: Option<&'a str>,
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
            mx: e.mx_host.as_deref(),
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
mod tests {
    use std::sync::Arc;

    use rollcall_core::{EmailAddress, EnhancedCode, Evidence, Flags, Reason};
    use serde_json::json;

    use super::*;

    fn rejected() -> Arc<Verdict> {
        let address = EmailAddress::parse("info@example.com").unwrap();
        let mut evidence = Evidence::for_address(&address);
        evidence.set_reply(
            550,
            EnhancedCode::parse("5.1.1"),
            "5.1.1 <info@example.com>: User unknown",
        );
        evidence.mx_host = Some("mx1.example.com".into());
        let flags = Flags {
            role_account: true,
            free_provider: true,
            ..Flags::default()
        };
        Arc::new(Verdict::new(Reason::MailboxNotFound, evidence).with_flags(flags))
    }

    fn out_row(
        row: u64,
        text: &str,
        payload: Record,
        verdict: Arc<Verdict>,
        duplicate: bool,
    ) -> OutputRow<Record> {
        OutputRow {
            row,
            text: text.into(),
            payload,
            verdict,
            duplicate,
            cache: Default::default(),
        }
    }

    fn csv_text(shape: InputShape, rows: &[OutputRow<Record>]) -> String {
        let mut out = CsvOutput::new(Vec::new(), shape).unwrap();
        for row in rows {
            out.write_row(row).unwrap();
        }
        RowSink::<Record>::flush(&mut out).unwrap();
        String::from_utf8(out.writer.into_inner().unwrap()).unwrap()
    }

    fn jsonl_values(shape: InputShape, rows: &[OutputRow<Record>]) -> Vec<Value> {
        let mut out = JsonlOutput::new(Vec::new(), shape);
        for row in rows {
            out.write_row(row).unwrap();
        }
        let bytes = out.out.into_inner().unwrap();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn format_from_output_name() {
        assert_eq!(OutputFormat::from_path(None), OutputFormat::Csv);
        assert_eq!(
            OutputFormat::from_path(Some(Path::new("r.ndjson"))),
            OutputFormat::Jsonl
        );
        assert_eq!(
            OutputFormat::from_path(Some(Path::new("r.txt"))),
            OutputFormat::Csv
        );
    }

    #[test]
    fn csv_of_text_input_has_the_documented_columns() {
        let text = csv_text(
            InputShape::Text,
            &[out_row(
                7,
                "info@example.com",
                Record::plain(),
                rejected(),
                true,
            )],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "address,status,reason,normalized,domain,mx,egress,smtp_code,enhanced_code,flags,\
                 is_disposable,is_role,is_free,is_catch_all,duplicate,detail,smtp_text,row,\
                 cached,verified_at,changed",
                "info@example.com,undeliverable,mailbox_not_found,info@example.com,example.com,\
                 mx1.example.com,,550,5.1.1,role_account;free_provider,false,true,true,false,true,,\
                 5.1.1 <info@example.com>: User unknown,7,false,,",
            ]
        );
    }

    #[test]
    fn csv_pads_short_records_and_notes_malformed_input() {
        let record = Record {
            fields: Fields::Csv(vec!["Ann".into()]),
            malformed: Some("the record has 1 fields, the header 2".into()),
        };
        let verdict = Arc::new(
            Verdict::new(Reason::InvalidSyntax, Evidence::for_input("Ann,")).with_detail("comma"),
        );
        let text = csv_text(
            InputShape::Csv(vec!["name".into(), "email".into()]),
            &[out_row(2, "Ann,", record, verdict, false)],
        );
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().len(),
            2 + result_columns().count()
        );
        let rec = reader.records().next().unwrap().unwrap();
        assert_eq!(&rec[0], "Ann");
        assert_eq!(&rec[1], "");
        assert_eq!(&rec[3], "invalid_syntax");
        assert_eq!(&rec[4], "", "not an address: nothing normalized");
        assert_eq!(&rec[6], "", "no MX");
        assert_eq!(
            &rec[16],
            "malformed input: the record has 1 fields, the header 2; comma"
        );
    }

    #[test]
    fn csv_cells_that_start_like_formulas_get_a_quote() {
        let record = Record {
            fields: Fields::Csv(vec![
                "=HYPERLINK(\"http://x.example\",\"click\")".into(),
                "+1@example.com".into(),
                "a=b".into(),
                "\t=1+1".into(),
            ]),
            malformed: None,
        };
        let address = EmailAddress::parse("+1@example.com").unwrap();
        let mut evidence = Evidence::for_address(&address);
        evidence.set_reply(550, None, "-2+3 @SUM(A1:A9) user unknown");
        evidence.mx_host = Some("@mx.example.com".into());
        let verdict = Arc::new(Verdict::new(Reason::MailboxNotFound, evidence));
        let shape = InputShape::Csv(vec!["=cmd".into(), "email".into(), "c".into(), "d".into()]);
        let rows = [out_row(1, "+1@example.com", record, verdict, false)];
        let cells = |text: String| -> Vec<Vec<String>> {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(text.as_bytes())
                .records()
                .map(|r| r.unwrap().iter().map(String::from).collect())
                .collect()
        };
        let guarded = cells(csv_text(shape.clone(), &rows));
        assert_eq!(guarded[0][0], "'=cmd");
        let row = &guarded[1];
        assert_eq!(row[0], "'=HYPERLINK(\"http://x.example\",\"click\")");
        assert_eq!(row[1], "'+1@example.com");
        assert_eq!(row[2], "a=b");
        assert_eq!(row[3], "'\t=1+1");
        assert_eq!(row[6], "'+1@example.com", "normalized");
        assert_eq!(row[8], "'@mx.example.com");
        assert_eq!(row[19], "'-2+3 @SUM(A1:A9) user unknown");
        assert_eq!(row[20], "1");
        // No cell is left that a spreadsheet would run.
        assert!(
            guarded
                .iter()
                .flatten()
                .all(|c| !c.starts_with(FORMULA_START)),
            "{guarded:?}"
        );

        let mut out = CsvOutput::with_guard(Vec::new(), shape, FormulaGuard::Off).unwrap();
        out.write_row(&rows[0]).unwrap();
        let raw = cells(String::from_utf8(out.writer.into_inner().unwrap()).unwrap());
        assert_eq!(raw[0][0], "=cmd");
        assert_eq!(raw[1][1], "+1@example.com");
        assert_eq!(raw[1][19], "-2+3 @SUM(A1:A9) user unknown");
    }

    #[test]
    fn jsonl_fields_for_text_and_jsonl_input() {
        let plain = jsonl_values(
            InputShape::Text,
            &[out_row(
                3,
                "info@example.com",
                Record::plain(),
                rejected(),
                false,
            )],
        );
        assert_eq!(
            plain[0],
            json!({
                "row": 3,
                "address": "info@example.com",
                "status": "undeliverable",
                "reason": "mailbox_not_found",
                "normalized": "info@example.com",
                "domain": "example.com",
                "mx": "mx1.example.com",
                "smtp_code": 550,
                "enhanced_code": "5.1.1",
                "smtp_text": "5.1.1 <info@example.com>: User unknown",
                "flags": ["role_account", "free_provider"],
                "is_disposable": false,
                "is_role": true,
                "is_free": true,
                "is_catch_all": false,
                "duplicate": false,
                "detail": null,
                "cached": false,
            })
        );
        let record = Record {
            fields: Fields::Json(json!({"email": "info@example.com", "id": 9})),
            malformed: None,
        };
        let address = EmailAddress::parse("info@example.com").unwrap();
        let bare = Arc::new(Verdict::new(
            Reason::NoSuchDomain,
            Evidence::for_address(&address),
        ));
        let lines = jsonl_values(
            InputShape::Jsonl,
            &[out_row(1, "info@example.com", record, bare, false)],
        );
        assert_eq!(
            lines[0]["input"],
            json!({"email": "info@example.com", "id": 9})
        );
        assert_eq!(lines[0]["enhanced_code"], Value::Null);
        assert_eq!(lines[0]["mx"], Value::Null);
        assert_eq!(lines[0]["flags"], json!([]));
    }

    #[test]
    fn result_columns_never_collide_with_the_inputs() {
        let columns = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(result_prefix(&columns(&["name", "email"])), Ok(""));
        // A results file verified again: its old result columns stay, the new ones get a prefix.
        let once: Vec<&str> = ["email"].into_iter().chain(result_columns()).collect();
        assert_eq!(result_prefix(&columns(&once)), Ok(RESULT_PREFIX));
        assert_eq!(
            result_prefix(&columns(&["email", " Status "])),
            Ok(RESULT_PREFIX)
        );
        let text = csv_text(
            InputShape::Csv(columns(&once)),
            &[out_row(
                1,
                "info@example.com",
                Record::plain(),
                rejected(),
                false,
            )],
        );
        let header = text.lines().next().unwrap();
        assert!(header.starts_with("email,status,reason,"), "{header}");
        assert!(
            header.ends_with(",rollcall_smtp_text,rollcall_row,rollcall_cached,rollcall_verified_at,rollcall_changed"),
            "{header}"
        );
        // ... and a third time: refused, naming the columns in the way.
        let twice: Vec<String> = once
            .iter()
            .map(|c| c.to_string())
            .chain(result_columns().map(|c| format!("{RESULT_PREFIX}{c}")))
            .collect();
        let taken = result_prefix(&twice).unwrap_err();
        assert_eq!(taken.len(), result_columns().count());
        assert_eq!(taken[0], "rollcall_status");
        let refused = CsvOutput::new(Vec::new(), InputShape::Csv(twice))
            .err()
            .unwrap();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn jsonl_line_order_is_the_documented_order() {
        let lines = {
            let mut out = JsonlOutput::new(Vec::new(), InputShape::Text);
            out.write_row(&out_row(
                1,
                "info@example.com",
                Record::plain(),
                rejected(),
                false,
            ))
            .unwrap();
            String::from_utf8(out.out.into_inner().unwrap()).unwrap()
        };
        let keys = [
            "\"row\"",
            "\"address\"",
            "\"status\"",
            "\"reason\"",
            "\"normalized\"",
            "\"domain\"",
            "\"mx\"",
            "\"smtp_code\"",
            "\"enhanced_code\"",
            "\"smtp_text\"",
            "\"flags\"",
            "\"is_disposable\"",
            "\"is_role\"",
            "\"is_free\"",
            "\"is_catch_all\"",
            "\"duplicate\"",
            "\"detail\"",
            "\"cached\"",
        ];
        let positions: Vec<usize> = keys.iter().map(|k| lines.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{lines}");
        assert!(lines.ends_with('\n') && lines.matches('\n').count() == 1);
    }

    #[test]
    fn cache_columns_say_where_a_verdict_came_from_and_what_changed() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_668_033), "2026-12-07T18:27:13Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let mut cached = out_row(1, "info@example.com", Record::plain(), rejected(), false);
        cached.cache = rollcall_engine::coordinator::CacheNote {
            cached: true,
            verified_at: Some(0),
            previous: None,
        };
        let mut changed = out_row(2, "info@example.com", Record::plain(), rejected(), false);
        changed.cache.previous = Some(rollcall_core::Status::Deliverable);
        let mut same = out_row(3, "info@example.com", Record::plain(), rejected(), false);
        same.cache.previous = Some(rollcall_core::Status::Undeliverable);
        let rows = [cached, changed, same];
        let text = csv_text(InputShape::Text, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].ends_with(",1,true,1970-01-01T00:00:00Z,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(",2,false,,deliverable->undeliverable"),
            "{}",
            lines[2]
        );
        assert!(lines[3].ends_with(",3,false,,"), "{}", lines[3]);
        let json = jsonl_values(InputShape::Text, &rows);
        assert_eq!(json[0]["cached"], true);
        assert_eq!(json[0]["verified_at"], "1970-01-01T00:00:00Z");
        assert_eq!(json[1]["changed"], "deliverable->undeliverable");
        assert!(json[2].get("changed").is_none());
        // --changes-only lets through the changed row alone.
        let mut only = ChangesOnly(CsvOutput::new(Vec::new(), InputShape::Text).unwrap());
        for row in &rows {
            only.write_row(row).unwrap();
        }
        RowSink::<Record>::flush(&mut only).unwrap();
        let text = String::from_utf8(only.0.writer.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("deliverable->undeliverable"));
    }
}
