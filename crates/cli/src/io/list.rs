//! The list a command was given: standard input or a file, opened with the format and column
//! the flags name (`rows`), its notes printed, and the shape its results are written in.
//! A list that cannot be opened is one line and an exit code (`exit::Failure`). Shared by
//! `verify` and `submit`; reading the rows is `rows`'.

use std::path::Path;

use crate::exit::{EX_DATAERR, EX_NOINPUT, EX_USAGE, Failure};
use crate::io::console;
use crate::io::output::InputShape;
use crate::io::rows::{CsvChoice, InputFormat, RowReader};

/// An opened list.
pub struct List {
    pub reader: RowReader,
    /// How its results are written (the CSV header, or text/JSONL).
    pub shape: InputShape,
}

/// `-` is standard input (or output).
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Opens `path` (`-`: standard input) as `format` (else as its extension says) and prints the
/// reader's notes. With `refuse_directory`, a directory is refused with its own line rather
/// than failing on the first read.
pub fn open(
    path: &Path,
    format: Option<InputFormat>,
    choice: CsvChoice<'_>,
    refuse_directory: bool,
) -> Result<List, Failure> {
    let format = format.unwrap_or_else(|| InputFormat::from_path(path));
    let source: Box<dyn std::io::Read + Send> = if is_stdio(path) {
        Box::new(std::io::stdin())
    } else {
        match std::fs::File::open(path) {
            // Opening a directory succeeds on Unix; reading it fails later as an I/O error.
            Ok(_) if refuse_directory && path.is_dir() => {
                return Err(Failure::new(
                    EX_NOINPUT,
                    format!(
                        "cannot read {}: it is a directory; give a file",
                        path.display()
                    ),
                ));
            }
            Ok(file) => Box::new(file),
            Err(e) => {
                return Err(Failure::new(
                    EX_NOINPUT,
                    format!("cannot open {}: {e}", path.display()),
                ));
            }
        }
    };
    let reader = match RowReader::open_with(source, format, choice) {
        Ok(reader) => reader,
        Err(e) if e.is_usage() => return Err(Failure::new(EX_USAGE, e)),
        Err(e) if e.is_data() => return Err(Failure::new(EX_DATAERR, e)),
        Err(e) => return Err(Failure::new(EX_NOINPUT, e)),
    };
    for note in reader.notes() {
        console::err_line(format_args!("rollcall: {note}"));
    }
    let shape = match format {
        InputFormat::Text => InputShape::Text,
        InputFormat::Csv => InputShape::Csv(reader.columns().to_vec()),
        InputFormat::Jsonl => InputShape::Jsonl,
    };
    Ok(List { reader, shape })
}
