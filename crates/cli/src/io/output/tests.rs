//! The output writers: CSV and JSONL rows, columns, prefixes and formula guards.

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
        score: 42,
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
            "address,status,reason,normalized,domain,did_you_mean,mx,provider,egress,smtp_code,\
             enhanced_code,flags,is_disposable,is_role,is_free,is_catch_all,duplicate,detail,\
             smtp_text,row,cached,verified_at,changed,score",
            "info@example.com,undeliverable,mailbox_not_found,info@example.com,example.com,,\
             mx1.example.com,,,550,5.1.1,role_account;free_provider,false,true,true,false,true,,\
             5.1.1 <info@example.com>: User unknown,7,false,,,42",
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
    assert_eq!(&rec[6], "", "no suggestion");
    assert_eq!(&rec[7], "", "no MX");
    assert_eq!(
        &rec[18],
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
    assert_eq!(row[9], "'@mx.example.com");
    assert_eq!(row[21], "'-2+3 @SUM(A1:A9) user unknown");
    assert_eq!(row[22], "1");
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
    assert_eq!(raw[1][21], "-2+3 @SUM(A1:A9) user unknown");
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
            "score": 42,
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
        header.ends_with(
            ",rollcall_row,rollcall_cached,rollcall_verified_at,rollcall_changed,rollcall_score"
        ),
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
        lines[1].ends_with(",1,true,1970-01-01T00:00:00Z,,42"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(",2,false,,deliverable->undeliverable,42"),
        "{}",
        lines[2]
    );
    assert!(lines[3].ends_with(",3,false,,,42"), "{}", lines[3]);
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
