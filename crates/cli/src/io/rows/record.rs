//! What a row carries besides its address text (`Record`: the input's other fields, what was
//! malformed) and the bound on any line, record or field (`MAX_LINE`). Shared by the reader
//! (`rows`) and the parts that turn bytes into rows (`lines`, `csv_record`); reads nothing.

use serde_json::Value;

/// A line longer than this is malformed (and only its start is kept): bounds memory on a file
/// that is not line-oriented at all.
pub const MAX_LINE: usize = 64 * 1024;

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
