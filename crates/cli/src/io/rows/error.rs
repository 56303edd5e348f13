//! `InputError`: input that cannot be read at all (as opposed to a malformed record, which is
//! still a row), and which exit code it earns. Shared by the reader (`rows`) and the column
//! choice (`columns`).

use std::io;

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
