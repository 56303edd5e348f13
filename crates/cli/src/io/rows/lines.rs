//! From a line or a CSV record to exactly one row: the address text, the fields kept, and
//! what was malformed (bytes that are not UTF-8, a line past `MAX_LINE`, a JSONL line that is
//! not an object or lacks the field, a CSV record of the wrong width). Owns that mapping and
//! reading one bounded line; splitting CSV is `csv_record`'s.

use std::io::{self, BufRead};

use rollcall_engine::coordinator::InputRow;
use serde_json::Value;

use super::csv_record::{Broken, CsvRecord};
use super::record::{Fields, MAX_LINE, Record};

/// JSONL fields taken as the address when `--column` is not given.
const ADDRESS_FIELDS: [&str; 2] = ["email", "address"];

pub(super) fn csv_row(row: u64, record: CsvRecord, width: usize, index: usize) -> InputRow<Record> {
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

pub(super) fn text_row(row: u64, line: &[u8], too_long: bool) -> InputRow<Record> {
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

pub(super) fn jsonl_row(
    row: u64,
    line: &[u8],
    too_long: bool,
    column: Option<&str>,
) -> InputRow<Record> {
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
pub(super) fn read_line(input: &mut impl BufRead) -> io::Result<Option<(Vec<u8>, bool)>> {
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
