//! CSV records cut from physical lines: RFC 4180 with the leniency of the `csv` crate (a quote
//! only opens a field at its start, `""` inside quotes is one quote, text after a closing quote
//! is kept, lines end in LF, CRLF or a lone CR, empty lines are not records), plus two bounds
//! that crate does not have:
//!
//! - A record is at most `MAX_LINE` bytes. A longer line is one broken record whose start only
//!   is kept, so a 300 MB field costs 64 KiB, not 300 MB.
//! - A quoted field may run over several lines (RFC 4180 2.6), but a quote that is still open
//!   at the end of the input, or when the record would pass `MAX_LINE` bytes, is taken as a
//!   mistake: the line where it opened is one broken record and reading goes on with the next
//!   line. So an unbalanced `"` costs one row, never the rest of the file.
//!
//! Owns the splitting into records and fields (bytes); decoding, the header and what a row
//! says about a broken record are `rows`'.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use super::record::MAX_LINE;

/// The UTF-8 byte order mark that spreadsheets put before the first line.
pub(super) const BOM: &[u8] = b"\xef\xbb\xbf";

/// One record of the input.
#[derive(Debug, PartialEq)]
pub(super) enum CsvRecord {
    /// A well-formed record starting on physical line `line`.
    Fields { line: u64, fields: Vec<Vec<u8>> },
    /// A physical line that could not be read as a record: `raw` is its start as kept (at most
    /// `MAX_LINE` bytes) and `fields` what that start splits into.
    Broken {
        line: u64,
        problem: Broken,
        raw: Vec<u8>,
        fields: Vec<Vec<u8>>,
    },
}

/// Why a line is a broken record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Broken {
    /// The line is longer than `MAX_LINE` bytes.
    TooLong,
    /// A quote opened on the line is not closed by the end of the input or within `MAX_LINE`
    /// bytes.
    OpenQuote,
}

/// One physical line: its bytes, the line ending it had (empty at the end of the input) and
/// whether it was cut at `MAX_LINE`.
#[derive(Debug)]
struct Line {
    no: u64,
    content: Vec<u8>,
    end: &'static [u8],
    too_long: bool,
}

impl Line {
    fn len(&self) -> usize {
        self.content.len() + self.end.len()
    }
}

/// Reads records one at a time; holds at most one record's lines (about `2 * MAX_LINE`).
pub(super) struct CsvRecords<R> {
    input: R,
    /// The field separator (`,` unless told otherwise).
    delimiter: u8,
    line_no: u64,
    /// Lines read ahead for a quoted field that turned out never to close, to be read again.
    pending: VecDeque<Line>,
}

impl<R: BufRead> CsvRecords<R> {
    pub(super) fn new(input: R, delimiter: u8) -> CsvRecords<R> {
        CsvRecords {
            input,
            delimiter,
            line_no: 0,
            pending: VecDeque::new(),
        }
    }

    /// The next record, `None` at the end of the input.
    pub(super) fn next_record(&mut self) -> io::Result<Option<CsvRecord>> {
        let first = loop {
            match self.next_line()? {
                None => return Ok(None),
                // The csv crate skips empty lines too: they are not records.
                Some(line) if line.content.is_empty() && !line.too_long => continue,
                Some(line) => break line,
            }
        };
        let delimiter = self.delimiter;
        let broken = move |problem, first: Line| CsvRecord::Broken {
            line: first.no,
            problem,
            fields: split_fields(&first.content, delimiter),
            raw: first.content,
        };
        if first.too_long {
            return Ok(Some(broken(Broken::TooLong, first)));
        }
        let mut parser = FieldParser::new(self.delimiter);
        parser.feed(&first.content);
        let mut size = first.len();
        let mut end = first.end;
        let mut taken: Vec<Line> = Vec::new();
        while parser.in_quotes() {
            let next = self.next_line()?;
            match next {
                Some(line) if !line.too_long && size + line.len() <= MAX_LINE => {
                    // RFC 4180 2.6: the line break belongs to the quoted field.
                    parser.feed(end);
                    parser.feed(&line.content);
                    size += line.len();
                    end = line.end;
                    taken.push(line);
                }
                other => {
                    // The quote never closes (end of input) or the record would pass the
                    // bound: the lines after `first` are read again as records of their own.
                    taken.extend(other);
                    for line in taken.into_iter().rev() {
                        self.pending.push_front(line);
                    }
                    return Ok(Some(broken(Broken::OpenQuote, first)));
                }
            }
        }
        Ok(Some(CsvRecord::Fields {
            line: first.no,
            fields: parser.finish(),
        }))
    }

    fn next_line(&mut self) -> io::Result<Option<Line>> {
        if let Some(line) = self.pending.pop_front() {
            return Ok(Some(line));
        }
        let Some(mut line) = read_physical_line(&mut self.input)? else {
            return Ok(None);
        };
        self.line_no += 1;
        line.no = self.line_no;
        if line.no == 1 && line.content.starts_with(BOM) {
            line.content.drain(..BOM.len());
        }
        Ok(Some(line))
    }
}

/// Reads one line ending in LF, CRLF or a lone CR (the csv crate's line endings), keeping at
/// most `MAX_LINE` bytes of it (the caller numbers it). `None` at the end of input.
fn read_physical_line(input: &mut impl BufRead) -> io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut any = false;
    let mut end: &'static [u8] = b"";
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
        let stop = buf.iter().position(|b| *b == b'\n' || *b == b'\r');
        let chunk = &buf[..stop.unwrap_or(buf.len())];
        let room = MAX_LINE.saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let Some(i) = stop else {
            let used = buf.len();
            input.consume(used);
            continue;
        };
        let lf = buf[i] == b'\n';
        input.consume(i + 1);
        end = if lf { b"\n" } else { b"\r" };
        if !lf && next_byte(input)? == Some(b'\n') {
            input.consume(1);
            end = b"\r\n";
        }
        break;
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(Line {
        no: 0,
        content: line,
        end,
        too_long,
    }))
}

fn next_byte(input: &mut impl BufRead) -> io::Result<Option<u8>> {
    loop {
        match input.fill_buf() {
            Ok(buf) => return Ok(buf.first().copied()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The fields of `bytes`, read as one record (a quote still open runs to the end).
fn split_fields(bytes: &[u8], delimiter: u8) -> Vec<Vec<u8>> {
    let mut parser = FieldParser::new(delimiter);
    parser.feed(bytes);
    parser.finish()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    #[default]
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the field's end, or the first half of `""`.
    QuoteInQuoted,
}

/// Splits record bytes into fields, one chunk at a time.
#[derive(Debug)]
struct FieldParser {
    delimiter: u8,
    fields: Vec<Vec<u8>>,
    field: Vec<u8>,
    state: State,
}

impl FieldParser {
    fn new(delimiter: u8) -> FieldParser {
        FieldParser {
            delimiter,
            fields: Vec::new(),
            field: Vec::new(),
            state: State::FieldStart,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state = match (self.state, b) {
                (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b)
                    if b == self.delimiter =>
                {
                    self.fields.push(std::mem::take(&mut self.field));
                    State::FieldStart
                }
                (State::FieldStart, b'"') => State::Quoted,
                (State::Quoted, b'"') => State::QuoteInQuoted,
                (State::QuoteInQuoted, b'"') => {
                    self.field.push(b'"');
                    State::Quoted
                }
                (State::Quoted, b) => {
                    self.field.push(b);
                    State::Quoted
                }
                // A quote inside an unquoted field is a character; text after a closing
                // quote is kept (both as the csv crate reads them).
                (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b) => {
                    self.field.push(b);
                    State::Unquoted
                }
            };
        }
    }

    fn in_quotes(&self) -> bool {
        self.state == State::Quoted
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.fields.push(self.field);
        self.fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &[u8]) -> Vec<CsvRecord> {
        let mut reader = CsvRecords::new(io::BufReader::with_capacity(7, input), b',');
        let mut out = Vec::new();
        while let Some(record) = reader.next_record().unwrap() {
            out.push(record);
        }
        out
    }

    fn ok(line: u64, fields: &[&str]) -> CsvRecord {
        CsvRecord::Fields {
            line,
            fields: fields.iter().map(|f| f.as_bytes().to_vec()).collect(),
        }
    }

    /// The records the csv crate reads from `input` (the reference for well-formed input).
    fn csv_crate(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input)
            .byte_records()
            .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
            .collect()
    }

    #[test]
    fn well_formed_records_split_like_the_csv_crate() {
        let input: &[u8] = b"a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",z\n\n\"multi\r\nline\nfield\",2,3\rlone,cr,end\nab\"c,\"q\"tail,\nlast,\"\",";
        let ours: Vec<Vec<Vec<u8>>> = records(input)
            .into_iter()
            .map(|r| match r {
                CsvRecord::Fields { fields, .. } => fields,
                other => panic!("broken: {other:?}"),
            })
            .collect();
        assert_eq!(ours, csv_crate(input));
        assert_eq!(ours.len(), 6);
        let lines: Vec<u64> = records(input)
            .iter()
            .map(|r| match r {
                CsvRecord::Fields { line, .. } | CsvRecord::Broken { line, .. } => *line,
            })
            .collect();
        assert_eq!(lines, [1, 2, 4, 7, 8, 9]);
    }

    #[test]
    fn an_unterminated_quote_breaks_only_its_own_line() {
        let input = b"email,name\na@example.com,\"Smith, Ann\nb@example.com,Bo\nc@example.com,Cy\n";
        assert_eq!(
            records(input),
            [
                ok(1, &["email", "name"]),
                CsvRecord::Broken {
                    line: 2,
                    problem: Broken::OpenQuote,
                    raw: b"a@example.com,\"Smith, Ann".to_vec(),
                    fields: vec![b"a@example.com".to_vec(), b"Smith, Ann".to_vec()],
                },
                ok(3, &["b@example.com", "Bo"]),
                ok(4, &["c@example.com", "Cy"]),
            ]
        );
    }

    #[test]
    fn a_quote_open_past_the_bound_breaks_its_line_and_reading_goes_on() {
        let mut input = b"\"open,x\n".to_vec();
        let filler = b"f@example.com,filler\n";
        let n = MAX_LINE / filler.len() + 2;
        for _ in 0..n {
            input.extend_from_slice(filler);
        }
        input.extend_from_slice(b"\"closed\",y\n");
        let got = records(&input);
        assert_eq!(got.len(), n + 2, "one record per line");
        assert!(matches!(
            &got[0],
            CsvRecord::Broken {
                line: 1,
                problem: Broken::OpenQuote,
                ..
            }
        ));
        assert_eq!(got[1], ok(2, &["f@example.com", "filler"]));
        assert_eq!(got[n + 1], ok(n as u64 + 2, &["closed", "y"]));
    }

    #[test]
    fn a_line_past_the_bound_is_one_broken_record_and_only_its_start_is_kept() {
        let mut input = b"a@example.com,\"".to_vec();
        input.resize(MAX_LINE + 10, b'x');
        input.extend_from_slice(b"\"\nb@example.com,ok\n");
        let got = records(&input);
        assert_eq!(got.len(), 2);
        match &got[0] {
            CsvRecord::Broken {
                line: 1,
                problem: Broken::TooLong,
                raw,
                fields,
            } => {
                assert_eq!(raw.len(), MAX_LINE);
                assert_eq!(fields[0], b"a@example.com");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got[1], ok(2, &["b@example.com", "ok"]));
    }

    #[test]
    fn a_bom_is_dropped_from_the_first_line_only() {
        assert_eq!(
            records(b"\xef\xbb\xbfemail\n\xef\xbb\xbfx\n"),
            [
                ok(1, &["email"]),
                CsvRecord::Fields {
                    line: 2,
                    fields: vec![b"\xef\xbb\xbfx".to_vec()]
                }
            ]
        );
    }
}
