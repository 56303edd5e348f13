//! Which column of a CSV holds the addresses, and how its fields are split: the delimiter
//! detected from the header line (or given), the column named like an address when its values
//! agree, else the column whose values are mostly addresses. Owns choosing only; reading the
//! records is `csv_record`'s, turning them into rows `lines`'.

use std::io::{self, BufRead};

use super::csv_record::{BOM, CsvRecord};
use super::error::InputError;
use super::lines::decode;
use super::record::MAX_LINE;

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
pub(super) const SAMPLE_RECORDS: usize = 100;
/// The delimiters `--delimiter` takes and detection chooses among.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The delimiter of the header line (the first line, at most `MAX_LINE` bytes looked at): the
/// candidate that splits it into the most fields outside quotes; `,` on a tie or a one-column
/// header.
pub(super) fn detect_delimiter(input: &mut impl BufRead) -> Result<u8, InputError> {
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
pub(super) fn column_by_values(
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
