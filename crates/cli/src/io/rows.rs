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
//! mark before the first line is dropped in every format. Owns the reader (CSV splitting is in
//! `csv_record`, choosing the delimiter and the address column in `columns`, turning a line or
//! a record into a row in `lines`, the row's payload and `MAX_LINE` in `record`, `InputError`
//! in `error`); does not judge addresses (the engine does) and does not
//! write anything (`output` does).

mod columns;
mod csv_record;
mod error;
mod lines;
mod record;

use std::io::{self, BufReader, Read};
use std::path::Path;

use rollcall_engine::coordinator::InputRow;
use tokio::sync::{mpsc, oneshot};

pub use columns::{DELIMITERS, address_column, delimiter_name, parse_delimiter};
use columns::{SAMPLE_RECORDS, column_by_values, detect_delimiter};
use csv_record::{BOM, Broken, CsvRecord, CsvRecords};
pub use error::InputError;
pub use lines::decode;
use lines::{csv_row, jsonl_row, read_line, text_row};
pub use record::{Fields, MAX_LINE, Record};

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
mod tests;
