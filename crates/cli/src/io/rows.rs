//! Input formats of `rollcall verify`: plain text (one address per line), CSV (an address
//! column, other columns kept) and JSONL (an address field, other fields kept), read as a
//! stream of `InputRow<Record>` without ever holding the whole file.
//!
//! Every record of the input becomes exactly one row, malformed or not: a CSV record with the
//! wrong field count, a CSV line with a quote that never closes or past the length bound, bytes
//! that are not UTF-8, a JSONL line that is not an object or lacks the field all become rows
//! whose text is what could be read (invalid bytes written as `\xNN`, which no address
//! contains) and whose `Record::malformed` says what was wrong. Every line, record and field is
//! bounded by `MAX_LINE`, so memory is too. Blank lines are not records. A UTF-8 byte order
//! mark before the first line is dropped in every format. Owns reading and decoding (CSV
//! splitting is in `csv_record`); does not judge addresses (the engine does) and does not
//! write anything (`output` does).

mod csv_record;

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use rollcall_engine::coordinator::InputRow;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use csv_record::{BOM, Broken, CsvRecord, CsvRecords};

/// How the input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One address per line; blank lines skipped.
    Text,
    /// Comma-separated with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl InputFormat {
    /// From the file name: `.csv`, `.jsonl` or `.ndjson`, anything else (and stdin) text.
    pub fn from_path(path: &Path) -> InputFormat {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => InputFormat::Csv,
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            _ => InputFormat::Text,
        }
    }
}

/// The fields of an input row besides its address text, to be written back out.
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    /// Plain text input (or a caller with nothing to keep, like the demo).
    None,
    /// The CSV record's fields, in header order (more or fewer than the header when malformed).
    Csv(Vec<String>),
    /// The JSONL line: the object, or the line as a string when it was not an object.
    Json(Value),
}

/// The payload of an input row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub fields: Fields,
    /// What was wrong with the record, if anything (shown in the output's `detail`).
    pub malformed: Option<String>,
}

impl Record {
    /// A record with nothing to write back (input the caller made, like the demo's list).
    #[allow(dead_code)] // until `rollcall demo` uses it
    pub fn plain() -> Record {
        Record {
            fields: Fields::None,
            malformed: None,
        }
    }
}

/// Input that cannot be read at all (as opposed to a malformed record, which is a row).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("cannot read the input: {0}")]
    Io(#[from] io::Error),
    #[error("column `{column}` is not in the CSV header (columns: {columns}); fix: --column NAME")]
    NoColumn { column: String, columns: String },
    #[error(
        "--column applies to CSV and JSONL input; for a CSV or JSONL file with another extension add --input-format csv or jsonl"
    )]
    ColumnOnText,
    /// The CSV header cannot be read, so no record can be: the run stops before it starts.
    #[error("the CSV header (line {line}) {problem}; fix the file's first line")]
    Header { line: u64, problem: String },
    /// No column's sampled values are mostly addresses: verifying any of them would call every
    /// row invalid.
    #[error(
        "no CSV column holds mostly email addresses in the first {sampled} records (columns: \
         {columns}); fix: --column NAME, or --delimiter if the columns are not split right"
    )]
    NoAddressColumn { sampled: usize, columns: String },
}

impl InputError {
    /// True when the user can fix it with a flag (exit code 64).
    pub fn is_usage(&self) -> bool {
        matches!(self, InputError::NoColumn { .. } | InputError::ColumnOnText)
    }

    /// True when the input's content is unusable (exit code 65, EX_DATAERR).
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            InputError::Header { .. } | InputError::NoAddressColumn { .. }
        )
    }
}

/// CSV header names taken as the address column, in order of preference, compared with case,
/// spaces, `-`, `_` and `.` left out (`E-mail Address` is `emailaddress`): the names of the
/// common exports (Outlook, Google Contacts, CRMs, mailing-list tools).
const ADDRESS_COLUMNS: [&str; 12] = [
    "email",
    "emailaddress",
    "mail",
    "workemail",
    "primaryemail",
    "businessemail",
    "personalemail",
    "email1",
    "emailaddress1",
    "email1value",
    "mailaddress",
    "address",
];
/// Data records read before the address column is chosen by its values.
const SAMPLE_RECORDS: usize = 100;
/// The delimiters `--delimiter` takes and detection chooses among.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
/// JSONL fields taken as the address when `--column` is not given.
const ADDRESS_FIELDS: [&str; 2] = ["email", "address"];
/// A line longer than this is malformed (and only its start is kept): bounds memory on a file
/// that is not line-oriented at all.
pub const MAX_LINE: usize = 64 * 1024;

type Source = Box<dyn Read + Send>;

enum Format {
    Text,
    Csv {
        records: CsvRecords<BufReader<Source>>,
        /// Records read to choose the column, served first.
        sampled: std::collections::VecDeque<CsvRecord>,
        columns: Vec<String>,
        index: usize,
    },
    Jsonl {
        column: Option<String>,
    },
}

/// Reads rows one at a time (blocking I/O; run it off the async runtime, see `spawn_reader`).
pub struct RowReader {
    format: Format,
    lines: BufReader<Source>,
    line_no: u64,
    record_no: u64,
    /// How the CSV delimiter and address column were chosen, for the operator.
    notes: Vec<String>,
}

/// How a CSV input is split and which column holds the address (`None`: detected).
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvChoice<'a> {
    pub column: Option<&'a str>,
    pub delimiter: Option<u8>,
}

impl RowReader {
    /// Opens `source` as `format`; for CSV reads the header and picks the address column
    /// (`column`, else the first of `ADDRESS_COLUMNS` present, else the first column).
    pub fn open(
        source: Source,
        format: InputFormat,
        column: Option<&str>,
    ) -> Result<RowReader, InputError> {
        RowReader::open_with(
            source,
            format,
            CsvChoice {
                column,
                delimiter: None,
            },
        )
    }

    /// `open` with the CSV delimiter given or detected (from the header line).
    pub fn open_with(
        source: Source,
        format: InputFormat,
        choice: CsvChoice<'_>,
    ) -> Result<RowReader, InputError> {
        let column = choice.column;
        let format = match format {
            InputFormat::Text if column.is_some() => return Err(InputError::ColumnOnText),
            InputFormat::Text => Format::Text,
            InputFormat::Jsonl => Format::Jsonl {
                column: column.map(str::to_string),
            },
            InputFormat::Csv => {
                return RowReader::open_csv(source, choice);
            }
        };
        Ok(RowReader {
            format,
            lines: BufReader::new(source),
            line_no: 0,
            record_no: 0,
            notes: Vec::new(),
        })
    }

    fn open_csv(source: Source, choice: CsvChoice<'_>) -> Result<RowReader, InputError> {
        let mut notes = Vec::new();
        let mut input = BufReader::new(source);
        let delimiter = match choice.delimiter {
            Some(delimiter) => delimiter,
            None => {
                let detected = detect_delimiter(&mut input)?;
                if detected != b',' {
                    notes.push(format!(
                        "CSV delimiter {} (detected from the header line; --delimiter to set it)",
                        delimiter_name(detected)
                    ));
                }
                detected
            }
        };
        let mut records = CsvRecords::new(input, delimiter);
        let columns: Vec<String> = match records.next_record()? {
            None => Vec::new(),
            Some(CsvRecord::Fields { fields, .. }) => fields.iter().map(|f| decode(f).0).collect(),
            Some(CsvRecord::Broken { line, problem, .. }) => {
                return Err(InputError::Header {
                    line,
                    problem: match problem {
                        Broken::TooLong => format!("is longer than {MAX_LINE} bytes"),
                        Broken::OpenQuote => "has a quote that is never closed".to_string(),
                    },
                });
            }
        };
        let mut sampled = std::collections::VecDeque::new();
        let index = match choice.column {
            Some(wanted) => address_column(&columns, Some(wanted))?,
            None => {
                while sampled.len() < SAMPLE_RECORDS {
                    match records.next_record()? {
                        Some(record) => sampled.push_back(record),
                        None => break,
                    }
                }
                let (index, why) = column_by_values(&columns, &sampled)?;
                if let Some(name) = columns.get(index) {
                    notes.push(format!(
                        "address column `{}` (column {} of {}): {why}",
                        name.trim(),
                        index + 1,
                        columns.len()
                    ));
                }
                index
            }
        };
        Ok(RowReader {
            format: Format::Csv {
                records,
                sampled,
                columns,
                index,
            },
            // Unused for CSV: the record reader owns the source.
            lines: BufReader::new(Box::new(io::empty())),
            line_no: 0,
            record_no: 0,
            notes,
        })
    }

    /// How the input was read (CSV delimiter, address column and why), to tell the operator.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The CSV header (empty for text and JSONL).
    pub fn columns(&self) -> &[String] {
        match &self.format {
            Format::Csv { columns, .. } => columns,
            _ => &[],
        }
    }

    /// The next row, `None` at the end of the input. Row numbers: the line number for text
    /// and JSONL (blank lines are counted but are not rows), the record number after the
    /// header for CSV (1 = first data record).
    pub fn next_row(&mut self) -> Result<Option<InputRow<Record>>, InputError> {
        match &mut self.format {
            Format::Csv {
                records,
                sampled,
                columns,
                index,
            } => {
                let record = match sampled.pop_front() {
                    Some(record) => record,
                    None => match records.next_record()? {
                        Some(record) => record,
                        None => return Ok(None),
                    },
                };
                self.record_no += 1;
                Ok(Some(csv_row(self.record_no, record, columns.len(), *index)))
            }
            Format::Text | Format::Jsonl { .. } => loop {
                let Some((mut line, too_long)) = read_line(&mut self.lines)? else {
                    return Ok(None);
                };
                self.line_no += 1;
                if self.line_no == 1 && line.starts_with(BOM) {
                    // Editors on Windows save UTF-8 text with a byte order mark.
                    line.drain(..BOM.len());
                }
                if line.iter().all(u8::is_ascii_whitespace) && !too_long {
                    continue;
                }
                let row = match &self.format {
                    Format::Jsonl { column } => {
                        jsonl_row(self.line_no, &line, too_long, column.as_deref())
                    }
                    _ => text_row(self.line_no, &line, too_long),
                };
                return Ok(Some(row));
            },
        }
    }
}

/// The delimiter of the header line (the first line, at most `MAX_LINE` bytes looked at): the
/// candidate that splits it into the most fields outside quotes; `,` on a tie or a one-column
/// header.
fn detect_delimiter(input: &mut BufReader<Source>) -> Result<u8, InputError> {
    let buf = loop {
        match input.fill_buf() {
            Ok(buf) => break buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(InputError::Io(e)),
        }
    };
    let line = buf.strip_prefix(BOM).unwrap_or(buf);
    let end = line
        .iter()
        .position(|b| *b == b'\n' || *b == b'\r')
        .unwrap_or(line.len())
        .min(MAX_LINE);
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for b in &line[..end] {
        if *b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = DELIMITERS.iter().position(|d| d == b) {
            counts[i] += 1;
        }
    }
    let best = (0..DELIMITERS.len())
        .max_by_key(|i| (counts[*i], std::cmp::Reverse(*i)))
        .unwrap_or(0);
    Ok(if counts[best] == 0 {
        b','
    } else {
        DELIMITERS[best]
    })
}

/// How a delimiter is named to a person.
pub fn delimiter_name(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "tab".to_string(),
        other => format!("`{}`", char::from(other)),
    }
}

/// `,` `;` `tab` `|` (or `\t`) as a delimiter byte.
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ => match text.as_bytes() {
            [b] if DELIMITERS.contains(b) => Ok(*b),
            _ => Err(format!(
                "`{text}` is not a delimiter this reader takes: use , ; tab or |"
            )),
        },
    }
}

/// The address column chosen by the sampled records' values: the column whose name says it
/// holds addresses when its values agree, else the column whose values are mostly addresses;
/// with no data records, the name alone (or the first column). Returns it and why.
fn column_by_values(
    columns: &[String],
    sampled: &std::collections::VecDeque<CsvRecord>,
) -> Result<(usize, String), InputError> {
    let by_name = named_address_column(columns);
    let mut addresses = vec![0usize; columns.len()];
    let mut filled = vec![0usize; columns.len()];
    for record in sampled {
        let CsvRecord::Fields { fields, .. } = record else {
            continue;
        };
        for (i, field) in fields.iter().enumerate().take(columns.len()) {
            let text = decode(field).0;
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            filled[i] += 1;
            if rollcall_core::EmailAddress::parse(text).is_ok() {
                addresses[i] += 1;
            }
        }
    }
    if filled.iter().all(|n| *n == 0) {
        return Ok(match by_name {
            Some(i) => (i, "by its name (no data to sample)".to_string()),
            None => (0, "the first column (no data to sample)".to_string()),
        });
    }
    let mostly = |i: usize| filled[i] > 0 && addresses[i] * 2 > filled[i];
    let share = |i: usize| {
        format!(
            "{} of {} sampled values are addresses",
            addresses[i], filled[i]
        )
    };
    if let Some(i) = by_name.filter(|i| mostly(*i)) {
        return Ok((i, format!("by its name; {}", share(i))));
    }
    let best = (0..columns.len())
        .filter(|i| mostly(*i))
        .max_by_key(|i| (addresses[*i], std::cmp::Reverse(*i)));
    match best {
        Some(i) => Ok((i, format!("by its values; {}", share(i)))),
        None => Err(InputError::NoAddressColumn {
            sampled: sampled.len(),
            columns: columns
                .iter()
                .map(|c| format!("`{}`", c.trim()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The first header whose name is one of `ADDRESS_COLUMNS`, by preference.
fn named_address_column(columns: &[String]) -> Option<usize> {
    let normalised: Vec<String> = columns
        .iter()
        .map(|c| {
            c.chars()
                .filter(|ch| !matches!(ch, ' ' | '-' | '_' | '.'))
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect();
    ADDRESS_COLUMNS
        .iter()
        .find_map(|name| normalised.iter().position(|c| c == name))
}

/// Picks the address column of a CSV header.
pub fn address_column(columns: &[String], wanted: Option<&str>) -> Result<usize, InputError> {
    if let Some(wanted) = wanted {
        return columns
            .iter()
            .position(|c| c == wanted)
            .or_else(|| {
                columns
                    .iter()
                    .position(|c| c.trim().eq_ignore_ascii_case(wanted.trim()))
            })
            .ok_or_else(|| InputError::NoColumn {
                column: wanted.to_string(),
                columns: columns.join(", "),
            });
    }
    Ok(named_address_column(columns).unwrap_or(0))
}

fn csv_row(row: u64, record: CsvRecord, width: usize, index: usize) -> InputRow<Record> {
    let (raw_fields, broken) = match record {
        CsvRecord::Fields { fields, .. } => (fields, None),
        CsvRecord::Broken {
            line,
            problem,
            raw,
            fields,
        } => (fields, Some((line, problem, raw))),
    };
    let mut bad_utf8 = false;
    let fields: Vec<String> = raw_fields
        .iter()
        .map(|f| {
            let (s, bad) = decode(f);
            bad_utf8 |= bad;
            s
        })
        .collect();
    let mut problems = Vec::new();
    let text = if let Some((line, problem, raw)) = broken {
        // The fields cannot be trusted, so the text is the line as read. A line with a quote
        // that never closes holds an unbalanced `"`, and a cut line ends in ` ...`: neither
        // passes as an address, so the row is invalid_syntax.
        let (raw, bad) = decode(&raw);
        bad_utf8 |= bad;
        let raw = raw.trim();
        match problem {
            Broken::TooLong => {
                problems.push(format!(
                    "line {line}: the record is longer than {MAX_LINE} bytes; only its start is kept"
                ));
                format!("{raw} ...")
            }
            Broken::OpenQuote => {
                problems.push(format!(
                    "line {line}: a quoted field opened on this line is never closed (by the end \
                     of the file or within {MAX_LINE} bytes); the line is read alone and the next \
                     line starts a new record"
                ));
                raw.to_string()
            }
        }
    } else if fields.len() == width {
        fields.get(index).cloned().unwrap_or_default()
    } else {
        problems.push(format!(
            "the record has {} fields, the header {width}",
            fields.len()
        ));
        // The fields may have shifted: the address column cannot be trusted, so the text is the
        // whole record as read, short records padded to the header's width (so it always holds
        // a comma and never passes as an address).
        let mut all = fields.clone();
        all.resize(all.len().max(width.max(2)), String::new());
        all.join(",")
    };
    if bad_utf8 {
        problems.push("bytes that are not UTF-8, shown as \\xNN".to_string());
    }
    InputRow {
        row,
        text: text.trim().to_string(),
        payload: Record {
            fields: Fields::Csv(fields),
            malformed: (!problems.is_empty()).then(|| problems.join("; ")),
        },
    }
}

fn text_row(row: u64, line: &[u8], too_long: bool) -> InputRow<Record> {
    let (text, bad) = decode(line);
    InputRow {
        row,
        text: text.trim().to_string(),
        payload: Record {
            fields: Fields::None,
            malformed: line_problem(bad, too_long),
        },
    }
}

fn line_problem(bad_utf8: bool, too_long: bool) -> Option<String> {
    match (bad_utf8, too_long) {
        (_, true) => Some(format!(
            "the line is longer than {MAX_LINE} bytes; only its start is kept"
        )),
        (true, false) => Some("bytes that are not UTF-8, shown as \\xNN".to_string()),
        (false, false) => None,
    }
}

fn jsonl_row(row: u64, line: &[u8], too_long: bool, column: Option<&str>) -> InputRow<Record> {
    let (line_text, bad) = decode(line);
    let line_text = line_text.trim().to_string();
    let malformed = |text: String, problem: String| InputRow {
        row,
        text,
        payload: Record {
            fields: Fields::Json(Value::String(line_text.clone())),
            malformed: Some(problem),
        },
    };
    if let Some(problem) = line_problem(bad, too_long) {
        return malformed(line_text.clone(), problem);
    }
    let object = match serde_json::from_str::<Value>(&line_text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return malformed(
                line_text.clone(),
                "the line is not a JSON object".to_string(),
            );
        }
        Err(e) => return malformed(line_text.clone(), format!("the line is not JSON ({e})")),
    };
    let field = match column {
        Some(column) => object.contains_key(column).then_some(column),
        None => ADDRESS_FIELDS.into_iter().find(|f| object.contains_key(*f)),
    };
    let (text, problem) = match field.and_then(|f| object.get(f)) {
        Some(Value::String(s)) => (s.trim().to_string(), None),
        Some(other) => (
            other.to_string(),
            Some(format!(
                "the `{}` field is not a string",
                field.unwrap_or_default()
            )),
        ),
        None => (
            String::new(),
            Some(match column {
                Some(c) => format!("no `{c}` field"),
                None => "no `email` or `address` field (fix: --column NAME)".to_string(),
            }),
        ),
    };
    InputRow {
        row,
        text,
        payload: Record {
            fields: Fields::Json(Value::Object(object)),
            malformed: problem,
        },
    }
}

/// UTF-8 text of `bytes`, with each invalid byte written as `\xNN` (a backslash is not allowed
/// in an unquoted local part or a domain, so such text never passes as an address). The flag
/// says whether any byte was invalid.
pub fn decode(bytes: &[u8]) -> (String, bool) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return (s.to_string(), false);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    (out, true)
}

/// Reads one line (without its `\n` or `\r\n`), keeping at most `MAX_LINE` bytes; the flag says
/// whether the line was cut. `None` at the end of input.
fn read_line(input: &mut impl BufRead) -> io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        any = true;
        let (chunk, used, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        input.consume(used);
        if end {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some((line, too_long)))
}

/// Reads `reader` on its own thread into `tx` (bounded: reading waits while the engine is
/// busy). The answer is the number of rows sent, or why reading stopped early. A plain thread
/// rather than `spawn_blocking`: a read stuck on a terminal must not hold up the runtime's exit.
pub fn spawn_reader(
    mut reader: RowReader,
    tx: mpsc::Sender<InputRow<Record>>,
) -> oneshot::Receiver<Result<u64, InputError>> {
    let (done_tx, done_rx) = oneshot::channel();
    let body = move || {
        let mut sent = 0u64;
        let result = loop {
            match reader.next_row() {
                Ok(Some(row)) => {
                    // The engine stopped taking rows (interrupted): stop reading.
                    if tx.blocking_send(row).is_err() {
                        break Ok(sent);
                    }
                    sent += 1;
                }
                Ok(None) => break Ok(sent),
                Err(e) => break Err(e),
            }
        };
        let _ = done_tx.send(result);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("rollcall-input".into())
        .spawn(body)
    {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err(InputError::Io(e)));
        return rx;
    }
    done_rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], format: InputFormat, column: Option<&str>) -> Vec<InputRow<Record>> {
        let source: Source = Box::new(io::Cursor::new(input.to_vec()));
        let mut reader = RowReader::open(source, format, column).unwrap();
        let mut rows = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            rows.push(row);
        }
        rows
    }

    fn texts(rows: &[InputRow<Record>]) -> Vec<(u64, &str, bool)> {
        rows.iter()
            .map(|r| (r.row, r.text.as_str(), r.payload.malformed.is_some()))
            .collect()
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(InputFormat::from_path(Path::new("a.CSV")), InputFormat::Csv);
        assert_eq!(
            InputFormat::from_path(Path::new("a.ndjson")),
            InputFormat::Jsonl
        );
        assert_eq!(
            InputFormat::from_path(Path::new("a.jsonl")),
            InputFormat::Jsonl
        );
        assert_eq!(
            InputFormat::from_path(Path::new("list.txt")),
            InputFormat::Text
        );
        assert_eq!(InputFormat::from_path(Path::new("-")), InputFormat::Text);
    }

    #[test]
    fn text_lines_blank_skipped_crlf_and_bad_utf8() {
        let rows = read_all(
            b"a@example.com\r\n\n   \n b@example.com \nj\xe9r@example.com\nlast@example.com",
            InputFormat::Text,
            None,
        );
        assert_eq!(
            texts(&rows),
            vec![
                (1, "a@example.com", false),
                (4, "b@example.com", false),
                (5, "j\\xE9r@example.com", true),
                (6, "last@example.com", false),
            ]
        );
        assert_eq!(rows[0].payload.fields, Fields::None);
    }

    #[test]
    fn a_very_long_line_is_one_malformed_row() {
        let mut input = vec![b'x'; MAX_LINE * 3];
        input.extend_from_slice(b"\nok@example.com\n");
        let rows = read_all(&input, InputFormat::Text, None);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text.len(), MAX_LINE);
        assert!(
            rows[0]
                .payload
                .malformed
                .as_deref()
                .unwrap()
                .contains("longer")
        );
        assert_eq!(texts(&rows)[1], (2, "ok@example.com", false));
    }

    #[test]
    fn text_refuses_column() {
        let source: Source = Box::new(io::empty());
        assert!(matches!(
            RowReader::open(source, InputFormat::Text, Some("email")),
            Err(InputError::ColumnOnText)
        ));
    }

    #[test]
    fn csv_column_detection() {
        let cols = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            address_column(&cols(&["name", "E-Mail", "x"]), None).unwrap(),
            1
        );
        assert_eq!(
            address_column(&cols(&["address", "Email"]), None).unwrap(),
            1
        );
        assert_eq!(
            address_column(&cols(&["id", " EMAIL_ADDRESS "]), None).unwrap(),
            1
        );
        assert_eq!(
            address_column(&cols(&["contact", "name"]), None).unwrap(),
            0
        );
        assert_eq!(
            address_column(&cols(&["a", "Work Mail"]), Some("work mail")).unwrap(),
            1
        );
        let err = address_column(&cols(&["a", "b"]), Some("mail")).unwrap_err();
        assert!(err.to_string().contains("columns: a, b"), "{err}");
        assert!(err.is_usage());
    }

    #[test]
    fn csv_rows_keep_fields_and_malformed_records_become_rows() {
        let input = b"\xef\xbb\xbfname,Email,team\nAnn,ann@example.com,red\n\"Lee, Bo\",bo@example.com,\"blue\"\nshort@example.com\nX,x@example.com,y,extra\nJ,j\xff@example.com,z\n";
        let source: Source = Box::new(io::Cursor::new(input.to_vec()));
        let mut reader = RowReader::open(source, InputFormat::Csv, None).unwrap();
        assert_eq!(reader.columns(), ["name", "Email", "team"]);
        let mut rows = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            rows.push(row);
        }
        assert_eq!(
            texts(&rows),
            vec![
                (1, "ann@example.com", false),
                (2, "bo@example.com", false),
                (3, "short@example.com,,", true),
                (4, "X,x@example.com,y,extra", true),
                (5, "j\\xFF@example.com", true),
            ]
        );
        assert_eq!(
            rows[1].payload.fields,
            Fields::Csv(vec![
                "Lee, Bo".into(),
                "bo@example.com".into(),
                "blue".into()
            ])
        );
        assert!(
            rows[3]
                .payload
                .malformed
                .as_deref()
                .unwrap()
                .contains("4 fields, the header 3")
        );
    }

    #[test]
    fn csv_unterminated_quote_costs_one_row_and_every_line_is_a_row() {
        // Before: the open quote on line 3 swallowed lines 4 and 5; 4 data lines gave 2 rows.
        let input = b"email,name\nann@example.com,Ann\nbo@example.com,\"Bo, Lee\nc@example.com,Cy\nd@example.com,Di\n";
        let rows = read_all(input, InputFormat::Csv, None);
        assert_eq!(
            texts(&rows),
            vec![
                (1, "ann@example.com", false),
                (2, "bo@example.com,\"Bo, Lee", true),
                (3, "c@example.com", false),
                (4, "d@example.com", false),
            ]
        );
        let detail = rows[1].payload.malformed.as_deref().unwrap();
        assert!(detail.starts_with("line 3: a quoted field"), "{detail}");
        assert!(rollcall_core::EmailAddress::parse(&rows[1].text).is_err());
        assert_eq!(
            rows[1].payload.fields,
            Fields::Csv(vec!["bo@example.com".into(), "Bo, Lee".into()])
        );
    }

    #[test]
    fn csv_record_past_the_bound_is_one_invalid_row_holding_only_its_start() {
        // The address field is fine; the note after it is just over the bound.
        let mut input = b"email,note\nbig@example.com,".to_vec();
        input.resize(input.len() + MAX_LINE, b'n');
        input.extend_from_slice(b"\nok@example.com,short\n");
        let rows = read_all(&input, InputFormat::Csv, None);
        assert_eq!(rows.len(), 2);
        let detail = rows[0].payload.malformed.as_deref().unwrap();
        assert!(
            detail.starts_with("line 2: the record is longer than 65536 bytes"),
            "{detail}"
        );
        // Not the address: the row must come out invalid_syntax.
        assert!(rows[0].text.starts_with("big@example.com,nnn"));
        assert!(rollcall_core::EmailAddress::parse(&rows[0].text).is_err());
        let Fields::Csv(fields) = &rows[0].payload.fields else {
            panic!("{:?}", rows[0].payload.fields);
        };
        assert!(fields.iter().map(String::len).sum::<usize>() < MAX_LINE);
        assert_eq!(texts(&rows)[1], (2, "ok@example.com", false));
    }

    #[test]
    fn csv_header_that_cannot_be_read_is_a_data_error() {
        let source: Source = Box::new(io::Cursor::new(b"\"email,name\na@example.com,A\n".to_vec()));
        let err = RowReader::open(source, InputFormat::Csv, None)
            .err()
            .unwrap();
        assert!(err.is_data() && !err.is_usage(), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn text_and_jsonl_drop_a_byte_order_mark() {
        let rows = read_all(
            b"\xef\xbb\xbfa@example.com\nb@example.com\n",
            InputFormat::Text,
            None,
        );
        assert_eq!(
            texts(&rows),
            vec![(1, "a@example.com", false), (2, "b@example.com", false)]
        );
        let rows = read_all(
            b"\xef\xbb\xbf{\"email\":\"a@example.com\"}\n",
            InputFormat::Jsonl,
            None,
        );
        assert_eq!(texts(&rows), vec![(1, "a@example.com", false)]);
    }

    #[test]
    fn csv_named_column_and_missing_column() {
        let rows = read_all(b"a,b\nx,y@example.com\n", InputFormat::Csv, Some("b"));
        assert_eq!(texts(&rows), vec![(1, "y@example.com", false)]);
        let source: Source = Box::new(io::Cursor::new(b"a,b\n".to_vec()));
        assert!(matches!(
            RowReader::open(source, InputFormat::Csv, Some("email")),
            Err(InputError::NoColumn { .. })
        ));
    }

    #[test]
    fn jsonl_rows_and_malformed_lines() {
        let input = b"{\"email\":\"a@example.com\",\"id\":1}\n\n{\"address\":\"b@example.com\"}\n[1,2]\nnot json\n{\"id\":2}\n{\"email\":42}\n{\"email\":\"c\xff@example.com\"}\n";
        let rows = read_all(input, InputFormat::Jsonl, None);
        assert_eq!(
            texts(&rows),
            vec![
                (1, "a@example.com", false),
                (3, "b@example.com", false),
                (4, "[1,2]", true),
                (5, "not json", true),
                (6, "", true),
                (7, "42", true),
                (8, "{\"email\":\"c\\xFF@example.com\"}", true),
            ]
        );
        assert_eq!(
            rows[0].payload.fields,
            Fields::Json(serde_json::json!({"email": "a@example.com", "id": 1}))
        );
        assert_eq!(
            rows[2].payload.fields,
            Fields::Json(Value::String("[1,2]".into()))
        );
    }

    #[test]
    fn jsonl_named_field() {
        let rows = read_all(
            b"{\"mail\":\"m@example.com\",\"email\":\"no\"}\n{\"email\":\"e@example.com\"}\n",
            InputFormat::Jsonl,
            Some("mail"),
        );
        assert_eq!(
            texts(&rows),
            vec![(1, "m@example.com", false), (2, "", true)]
        );
    }

    #[tokio::test]
    async fn reader_thread_sends_every_row_then_reports() {
        let source: Source = Box::new(io::Cursor::new(b"a@x.example\nb@x.example\n".to_vec()));
        let reader = RowReader::open(source, InputFormat::Text, None).unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let done = spawn_reader(reader, tx);
        let mut got = Vec::new();
        while let Some(row) = rx.recv().await {
            got.push(row.text);
        }
        assert_eq!(got, ["a@x.example", "b@x.example"]);
        assert_eq!(done.await.unwrap().unwrap(), 2);
    }

    #[test]
    fn the_address_column_is_the_one_whose_values_are_addresses() {
        // Outlook's export: the address is the 3rd column, under a name the old list missed.
        let csv = "First Name,Last Name,E-mail Address,Notes\n\
                   Ann,Lee,ann@example.com,x\n\
                   Bo,Ma,bo@example.com,y\n";
        let source: Source = Box::new(io::Cursor::new(csv.as_bytes().to_vec()));
        let mut reader = RowReader::open(source, InputFormat::Csv, None).unwrap();
        assert!(
            reader.notes()[0].contains("`E-mail Address` (column 3 of 4)"),
            "{:?}",
            reader.notes()
        );
        let first = reader.next_row().unwrap().unwrap();
        assert_eq!(first.text, "ann@example.com");
        assert_eq!(first.row, 1, "sampled records keep their numbers");
        // No name to go by: the values decide.
        let csv = "name,contact,team\nAnn,ann@example.com,a\nBo,bo@example.com,b\n";
        let source: Source = Box::new(io::Cursor::new(csv.as_bytes().to_vec()));
        let mut reader = RowReader::open(source, InputFormat::Csv, None).unwrap();
        assert!(
            reader.notes()[0].contains("by its values; 2 of 2"),
            "{:?}",
            reader.notes()
        );
        assert_eq!(reader.next_row().unwrap().unwrap().text, "ann@example.com");
        assert_eq!(reader.next_row().unwrap().unwrap().text, "bo@example.com");
        assert!(reader.next_row().unwrap().is_none());
    }

    #[test]
    fn a_csv_without_an_address_column_is_a_data_error_naming_the_header() {
        let csv = "First Name,Last Name\nAnn,Lee\nBo,Ma\n";
        let source: Source = Box::new(io::Cursor::new(csv.as_bytes().to_vec()));
        let err = RowReader::open(source, InputFormat::Csv, None)
            .err()
            .expect("refused");
        assert!(err.is_data());
        assert!(
            err.to_string().contains("`First Name`, `Last Name`"),
            "{err}"
        );
    }

    #[test]
    fn the_delimiter_is_detected_from_the_header_or_given() {
        for (csv, name) in [
            ("name;email\nAnn;ann@example.com\n", "`;`"),
            ("name\temail\nAnn\tann@example.com\n", "tab"),
            ("\u{feff}name|\"e,mail\"\nAnn|ann@example.com\n", "`|`"),
        ] {
            let source: Source = Box::new(io::Cursor::new(csv.as_bytes().to_vec()));
            let mut reader = RowReader::open(source, InputFormat::Csv, None).unwrap();
            assert!(
                reader.notes()[0].contains(name),
                "{csv:?}: {:?}",
                reader.notes()
            );
            assert_eq!(
                reader.next_row().unwrap().unwrap().text,
                "ann@example.com",
                "{csv:?}"
            );
        }
        // Given: a `;` file read with `,` has one column, whose values are not addresses.
        let csv = "name;email\nAnn;ann@example.com\n";
        let source: Source = Box::new(io::Cursor::new(csv.as_bytes().to_vec()));
        let choice = CsvChoice {
            column: None,
            delimiter: Some(b','),
        };
        assert!(RowReader::open_with(source, InputFormat::Csv, choice).is_err());
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert!(parse_delimiter("x").is_err());
    }
}
