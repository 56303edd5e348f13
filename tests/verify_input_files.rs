//! `rollcall verify` on files, as an operator runs it: every input line comes out as a row
//! (unterminated CSV quotes, oversized records, a byte order mark), CSV output carries no
//! spreadsheet formula, a closed stdout or stderr pipe is an exit code and not a panic,
//! SIGTERM stops a run like Ctrl-C does, real exports (Outlook, `;` and tab separated, a column
//! named for nothing) get their address column or are refused, and the exit codes are the
//! documented ones.
//!
//! Nothing leaves the machine: addresses are under `.invalid` (RFC 6761 6.4: never resolved,
//! settled as no_such_domain at once) or at a domain whose DNS server is a loopback socket that
//! never answers.
#![forbid(unsafe_code)]

use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rollcall-verify-input-{test}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary, with its default result cache in a temporary folder of this test process, never
/// the user's cache folder.
fn rollcall() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command.env("XDG_CACHE_HOME", test_cache_home());
    command
}

fn test_cache_home() -> PathBuf {
    std::env::temp_dir().join(format!(
        "rollcall-verify-input-cache-{}",
        std::process::id()
    ))
}

/// `rollcall verify INPUT -o OUT` with DNS on a loopback port nothing answers, plus `extra`.
fn verify(input: &Path, out: &Path, extra: &[&str]) -> Output {
    rollcall()
        .arg("verify")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--progress", "off", "--helo", "probe.rollcall.test"])
        .args(["--dns", "127.0.0.1:9", "--dns-timeout", "1s"])
        .args(extra)
        .output()
        .expect("rollcall runs")
}

/// The CSV output's records (header first).
fn csv_cells(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|c| c == name).unwrap()
}

#[test]
fn an_unterminated_quote_loses_no_line() {
    let dir = scratch("quote");
    let (input, out) = (dir.join("list.csv"), dir.join("out.csv"));
    // Before: line 3's open quote swallowed lines 4 and 5 (4 data lines, 2 output rows).
    std::fs::write(
        &input,
        "email,name\nann@nowhere.invalid,Ann\nbo@nowhere.invalid,\"Bo, Lee\n\
         cy@nowhere.invalid,Cy\ndi@nowhere.invalid,Di\n",
    )
    .unwrap();
    let run = verify(&input, &out, &[]);
    assert!(run.status.success(), "{run:?}");
    let cells = csv_cells(&out);
    let (header, rows) = cells.split_first().unwrap();
    assert_eq!(rows.len(), 4, "one row per data line: {rows:?}");
    let (row, reason, detail) = (
        column(header, "row"),
        column(header, "reason"),
        column(header, "detail"),
    );
    let mut by_row: Vec<&Vec<String>> = rows.iter().collect();
    by_row.sort_by_key(|r| r[row].parse::<u64>().unwrap());
    let emails: Vec<&str> = by_row.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        emails,
        [
            "ann@nowhere.invalid",
            "bo@nowhere.invalid",
            "cy@nowhere.invalid",
            "di@nowhere.invalid"
        ]
    );
    assert_eq!(by_row[1][reason], "invalid_syntax");
    assert!(
        by_row[1][detail].contains("line 3: a quoted field"),
        "{:?}",
        by_row[1]
    );
    for other in [0, 2, 3] {
        assert_eq!(
            by_row[other][reason], "no_such_domain",
            "{:?}",
            by_row[other]
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_oversized_csv_field_is_one_row_and_is_not_echoed_whole() {
    let dir = scratch("oversized");
    let (input, out) = (dir.join("list.csv"), dir.join("out.csv"));
    let mut data = b"email,note\nbig@nowhere.invalid,".to_vec();
    data.resize(data.len() + 70 * 1024, b'n');
    data.extend_from_slice(b"END-OF-FIELD\nok@nowhere.invalid,fine\n");
    std::fs::write(&input, &data).unwrap();
    let run = verify(&input, &out, &[]);
    assert!(run.status.success(), "{run:?}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        !written.contains("END-OF-FIELD"),
        "the field was echoed whole"
    );
    let cells = csv_cells(&out);
    let (header, rows) = cells.split_first().unwrap();
    assert_eq!(rows.len(), 2);
    let (reason, detail) = (column(header, "reason"), column(header, "detail"));
    let big = rows.iter().find(|r| r[0] == "big@nowhere.invalid").unwrap();
    assert_eq!(big[reason], "invalid_syntax");
    assert!(big[detail].contains("line 2: the record is longer than 65536 bytes"));
    let ok = rows.iter().find(|r| r[0] == "ok@nowhere.invalid").unwrap();
    assert_eq!(ok[reason], "no_such_domain");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_byte_order_mark_before_a_text_list_is_ignored() {
    let dir = scratch("bom");
    let (input, out) = (dir.join("list.txt"), dir.join("out.jsonl"));
    std::fs::write(
        &input,
        "\u{feff}first@nowhere.invalid\nsecond@nowhere.invalid\n",
    )
    .unwrap();
    let run = verify(&input, &out, &[]);
    assert!(run.status.success(), "{run:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = rows.iter().find(|r| r["row"] == 1).unwrap();
    assert_eq!(first["address"], "first@nowhere.invalid");
    assert_eq!(first["reason"], "no_such_domain", "{first}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn csv_output_defuses_formulas_unless_told_not_to() {
    let dir = scratch("formula");
    let (input, out) = (dir.join("list.csv"), dir.join("out.csv"));
    std::fs::write(
        &input,
        "email,note\nann@nowhere.invalid,=HYPERLINK(\"x\")\n",
    )
    .unwrap();
    let run = verify(&input, &out, &[]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(csv_cells(&out)[1][1], "'=HYPERLINK(\"x\")");
    let run = verify(&input, &out, &["--csv-formula-guard", "off"]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(csv_cells(&out)[1][1], "=HYPERLINK(\"x\")");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn closed_stdout_and_stderr_are_exit_codes_not_panics() {
    let dir = scratch("pipes");
    let input = dir.join("list.txt");
    std::fs::write(&input, "a@nowhere.invalid\nnot an address\n").unwrap();
    // No --helo: the HELO warning is the first thing written to stderr.
    let base = |out: Option<&Path>| {
        let mut command = rollcall();
        command.arg("verify").arg(&input);
        if let Some(out) = out {
            command.arg("-o").arg(out);
        }
        command
            .args(["--progress", "log", "--dns", "127.0.0.1:9"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    // Both pipes closed before anything is written (`2>&1 | head -0`): results cannot be
    // written, which is EX_IOERR (74); before, the first eprintln! panicked (101).
    let mut child = base(None).spawn().unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(74), "{status}");

    // Only stderr closed: the results are whole and the run succeeds.
    let out = dir.join("out.csv");
    let mut child = base(Some(&out)).spawn().unwrap();
    drop(child.stderr.take());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(csv_cells(&out).len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_stops_verify_like_ctrl_c_with_whole_output_and_summary() {
    let dir = scratch("sigterm");
    let (input, out) = (dir.join("list.txt"), dir.join("out.csv"));
    std::fs::write(&input, "not an address\nslow@slow.example.com\n").unwrap();
    // A DNS server that never answers: the second row waits until the run is stopped.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = silent.local_addr().unwrap().to_string();
    let mut child = rollcall()
        .arg("verify")
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .args(["--progress", "off", "--helo", "probe.rollcall.test"])
        .args(["--dns", &dns, "--dns-timeout", "600s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The invalid row is written (flushed within about a second) once the run is under way,
    // and the signal listeners are in place before the first row is read.
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 2 {
        assert!(Instant::now() < deadline, "the invalid row never came out");
        assert!(child.try_wait().unwrap().is_none(), "verify ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{status}\n{stderr}");
    assert!(stderr.contains("rows read"), "no summary:\n{stderr}");
    assert!(
        stderr.contains("interrupted: 1 of 2 rows verified"),
        "{stderr}"
    );
    let cells = csv_cells(&out);
    assert_eq!(cells.len(), 2, "{cells:?}");
    assert_eq!(cells[1][0], "not an address");
    assert_eq!(cells[1].len(), cells[0].len());
    drop(silent);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn real_exports_get_their_address_column_or_are_refused() {
    let dir = scratch("exports");
    let out = dir.join("out.csv");
    // (file, header and one row, the address column's name, the note's words)
    let exports = [
        (
            "outlook.csv",
            "\u{feff}First Name,Last Name,E-mail Address,Business Phone\r\n\
             Ann,Lee,ann@a.invalid,1\r\nBo,Ma,bo@b.invalid,2\r\n",
            "E-mail Address",
            "by its name",
        ),
        (
            "europe.csv",
            "Vorname;Nachname;Mail\nAnn;Lee;ann@a.invalid\nBo;Ma;bo@b.invalid\n",
            "Mail",
            "delimiter `;`",
        ),
        (
            "hubspot.tsv",
            "Record ID\tFirst Name\tWork Email\n1\tAnn\tann@a.invalid\n2\tBo\tbo@b.invalid\n",
            "Work Email",
            "delimiter tab",
        ),
        (
            "unnamed.csv",
            "name,contact,team\nAnn,ann@a.invalid,x\nBo,bo@b.invalid,y\n",
            "contact",
            "by its values",
        ),
    ];
    for (file, text, column_name, words) in exports {
        let input = dir.join(file);
        std::fs::write(&input, text).unwrap();
        let extra: &[&str] = if file.ends_with(".tsv") {
            &["--input-format", "csv"]
        } else {
            &[]
        };
        let run = verify(&input, &out, extra);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{file}: {}\n{stderr}", run.status);
        assert!(
            stderr.contains(&format!("address column `{column_name}`")) && stderr.contains(words),
            "{file}: {stderr}"
        );
        let cells = csv_cells(&out);
        let reason = column(&cells[0], "reason");
        // The right column: `.invalid` domains are no_such_domain, not invalid_syntax.
        assert_eq!(cells.len(), 3, "{file}: {cells:?}");
        for row in &cells[1..] {
            assert_eq!(row[reason], "no_such_domain", "{file}: {row:?}");
        }
    }
    // No column holds addresses: refused with exit 65, the header listed, no output rows.
    let input = dir.join("names.csv");
    std::fs::write(&input, "First Name,Last Name\nAnn,Lee\n").unwrap();
    let run = verify(&input, &out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("`First Name`, `Last Name`"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_codes_are_the_documented_ones() {
    let dir = scratch("exit-codes");
    let out = dir.join("out.csv");
    let bad_flag = rollcall()
        .args(["verify", "--no-such-flag", "x.txt"])
        .output()
        .unwrap();
    assert_eq!(bad_flag.status.code(), Some(64), "a bad flag is EX_USAGE");
    let help = rollcall().args(["verify", "--help"]).output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let run = verify(&dir, &out, &[]);
    assert_eq!(
        run.status.code(),
        Some(66),
        "a directory as input is EX_NOINPUT"
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("is a directory"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rows_come_out_in_input_order_unless_told_otherwise() {
    let dir = scratch("order");
    let (input, out) = (dir.join("list.txt"), dir.join("out.csv"));
    // The first address needs DNS (a loopback port that never answers it); the others are
    // under `.invalid` and settle at once, so they finish first.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = silent.local_addr().unwrap().to_string();
    std::fs::write(
        &input,
        "slow@slow.example\nfast1@a.invalid\n\nfast2@b.invalid\n",
    )
    .unwrap();
    let order = |extra: &[&str]| -> Vec<(String, String)> {
        let run = rollcall()
            .arg("verify")
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(["--progress", "off", "--helo", "probe.rollcall.test"])
            .args(["--dns", &dns, "--dns-timeout", "1s"])
            .args(extra)
            .output()
            .expect("rollcall runs");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let cells = csv_cells(&out);
        let (address, row) = (column(&cells[0], "address"), column(&cells[0], "row"));
        cells[1..]
            .iter()
            .map(|r| (r[address].clone(), r[row].clone()))
            .collect()
    };
    let expected: Vec<(String, String)> = [
        ("slow@slow.example", "1"),
        ("fast1@a.invalid", "2"),
        ("fast2@b.invalid", "4"),
    ]
    .iter()
    .map(|(a, r)| (a.to_string(), r.to_string()))
    .collect();
    assert_eq!(order(&[]), expected, "input order by default");
    let streamed = order(&["--order", "completion"]);
    assert_eq!(
        streamed.last().map(|(a, _)| a.as_str()),
        Some("slow@slow.example"),
        "completion order streams what finishes first: {streamed:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_summary_json_counts_what_the_output_holds() {
    let dir = scratch("summary-json");
    let (input, out, summary) = (
        dir.join("list.txt"),
        dir.join("out.csv"),
        dir.join("summary.json"),
    );
    std::fs::write(
        &input,
        "a@nowhere.invalid\nnot an address\nb@nowhere.invalid\nA@nowhere.invalid\n",
    )
    .unwrap();
    let run = verify(&input, &out, &["--summary-json", summary.to_str().unwrap()]);
    assert!(run.status.success(), "{run:?}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(json["rows"], 4, "{json}");
    assert_eq!(json["written"], 4, "{json}");
    assert_eq!(json["duplicates"], 1, "A@ is a@ again: {json}");
    assert_eq!(json["by_status"]["undeliverable"], 4, "{json}");
    assert_eq!(json["by_reason"]["invalid_syntax"], 1, "{json}");
    assert_eq!(json["by_reason"]["no_such_domain"], 3, "{json}");
    assert_eq!(json["interrupted"], false);
    assert_eq!(json["exit_code"], 0);
    assert_eq!(csv_cells(&out).len(), 5, "a header and the four rows");

    // A summary that cannot be written is an I/O error, said as such.
    let run = verify(
        &input,
        &out,
        &["--summary-json", "/nonexistent/dir/summary.json"],
    );
    assert_eq!(run.status.code(), Some(74), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("cannot write the summary"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_results_file_verified_again_keeps_its_old_results_apart_from_the_new() {
    let dir = scratch("again");
    let (input, once, twice, thrice) = (
        dir.join("list.csv"),
        dir.join("once.csv"),
        dir.join("twice.csv"),
        dir.join("thrice.csv"),
    );
    std::fs::write(&input, "name,email\nAnn,ann@nowhere.invalid\n").unwrap();
    let run = verify(&input, &once, &[]);
    assert!(run.status.success(), "{run:?}");
    let header = csv_cells(&once)[0].clone();
    for name in [
        "status",
        "normalized",
        "domain",
        "is_role",
        "is_catch_all",
        "row",
    ] {
        column(&header, name);
    }

    let run = verify(&once, &twice, &[]);
    assert!(run.status.success(), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("rollcall_status"), "said: {stderr}");
    let cells = csv_cells(&twice);
    let header = &cells[0];
    assert_eq!(
        header[..header.len() / 2 + 1],
        csv_cells(&once)[0][..],
        "old columns kept"
    );
    assert_eq!(
        header.iter().filter(|c| *c == "status").count(),
        1,
        "no column twice: {header:?}"
    );
    assert_eq!(
        cells[1][column(header, "rollcall_reason")],
        "no_such_domain"
    );
    assert_eq!(
        cells[1][column(header, "rollcall_domain")],
        "nowhere.invalid"
    );

    let run = verify(&twice, &thrice, &[]);
    assert_eq!(run.status.code(), Some(65), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("rollcall_status"),
        "names the columns: {stderr}"
    );
    assert!(!thrice.exists(), "a refused run leaves no output file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verbose_logs_come_without_colour_when_not_on_a_terminal() {
    let dir = scratch("verbose");
    let (input, out) = (dir.join("list.txt"), dir.join("out.csv"));
    std::fs::write(&input, "a@x.example\n").unwrap();
    let run = rollcall()
        .arg("-vv")
        .arg("verify")
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .args(["--progress", "off", "--helo", "probe.rollcall.test"])
        .args(["--dns", "127.0.0.1:9", "--dns-timeout", "1s"])
        .env_remove("ROLLCALL_LOG")
        .output()
        .expect("rollcall runs");
    assert!(run.status.success(), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(" DEBUG "),
        "-vv shows debug lines: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour into a pipe: {stderr:?}"
    );

    let both = rollcall()
        .args(["-q", "-v", "verify"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(64), "-q and -v together: {both:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_default_result_cache_follows_xdg_and_home_and_tests_keep_out_of_the_users() {
    let dir = scratch("cache-home");
    let input = dir.join("list.txt");
    std::fs::write(&input, "a@nowhere.invalid\n").unwrap();
    let run = |envs: &[(&str, &Path)], extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        command
            .env_remove("XDG_CACHE_HOME")
            .env_remove("ROLLCALL_CACHE");
        for (key, value) in envs {
            command.env(key, value);
        }
        let out = command
            .arg("verify")
            .arg(&input)
            .arg("-o")
            .arg(dir.join("out.csv"))
            .args(["--progress", "off", "--helo", "probe.rollcall.test"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let (home, xdg) = (dir.join("home"), dir.join("xdg"));
    run(&[("HOME", &home)], &[]);
    assert!(home.join(".cache/rollcall/results.sqlite").exists());
    run(&[("HOME", &home), ("XDG_CACHE_HOME", &xdg)], &[]);
    assert!(xdg.join("rollcall/results.sqlite").exists());
    let (home2, xdg2) = (dir.join("home2"), dir.join("xdg2"));
    run(
        &[("HOME", &home2), ("XDG_CACHE_HOME", &xdg2)],
        &["--no-cache"],
    );
    assert!(!home2.exists() && !xdg2.exists(), "--no-cache wrote a file");

    // Every test file that runs `rollcall verify` points its cache away from the user's
    // folder: XDG_CACHE_HOME set to a temporary folder, or --cache / --no-cache.
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push(path);
        }
    }
    for file in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        let runs_verify = text.contains(".arg(\"verify\")")
            || text.contains("command.arg(\"verify\")")
            || text.contains("spawn(&run.scratch, \"verify\"");
        // Processes started through support_dist/procs.rs get its XDG_CACHE_HOME (below).
        let kept_out = [
            "XDG_CACHE_HOME",
            "--no-cache",
            "--cache",
            "mod support_dist",
        ]
        .iter()
        .any(|k| text.contains(k));
        assert!(
            !runs_verify || kept_out,
            "{} runs `rollcall verify` with the user's cache folder",
            file.display()
        );
    }
    let procs = std::fs::read_to_string(tests.join("support_dist/procs.rs")).unwrap();
    assert!(procs.contains("XDG_CACHE_HOME"));
    let _ = std::fs::remove_dir_all(dir);
}
