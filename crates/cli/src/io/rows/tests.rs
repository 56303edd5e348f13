//! Tests of the input formats: text, CSV (delimiter and address column detection, malformed
//! records) and JSONL, each read through `RowReader` as `verify` reads it.

use serde_json::Value;

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
