//! `rollcall probe` as a user runs it: against a small SMTP server on loopback that knows one
//! mailbox (`alice`), refuses `nobody` and defers `later`. Checked: the verify flags are taken
//! (`--helo`, `--mail-from`, `--tls`, `--command-timeout`, `--smtp-port` for a host without a
//! port); the text transcript reads like swaks (`===`, ` -> `, `<-  `, no `\r\n` shown on
//! every line); `--format json` prints one object; the exit status says the worst answer.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;

/// Serves `sessions` SMTP sessions, one after the other; returns the port.
fn server(sessions: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().take(sessions) {
            let Ok(stream) = stream else { continue };
            let mut write = stream.try_clone().unwrap();
            let mut read = BufReader::new(stream);
            let _ = write.write_all(b"220 mx.probe.test ESMTP\r\n");
            let mut line = String::new();
            while read.read_line(&mut line).unwrap_or(0) > 0 {
                let upper = line.to_ascii_uppercase();
                let reply: &[u8] = if upper.starts_with("EHLO") {
                    b"250-mx.probe.test\r\n250 8BITMIME\r\n"
                } else if upper.starts_with("RCPT TO:<ALICE@") {
                    b"250 2.1.5 Ok\r\n"
                } else if upper.starts_with("RCPT TO:<NOBODY@") {
                    b"550 5.1.1 <nobody@probe.test>: Recipient address rejected\r\n"
                } else if upper.starts_with("RCPT") {
                    b"450 4.2.0 try again later\r\n"
                } else if upper.starts_with("QUIT") {
                    let _ = write.write_all(b"221 2.0.0 Bye\r\n");
                    break;
                } else {
                    b"250 2.0.0 Ok\r\n"
                };
                if write.write_all(reply).is_err() {
                    break;
                }
                line.clear();
            }
        }
    });
    port
}

fn probe(port: u16, extra: &[&str], addresses: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args([
            "probe",
            "--host",
            "127.0.0.1",
            "--smtp-port",
            &port.to_string(),
        ])
        .args([
            "--helo",
            "probe.rollcall.test",
            "--mail-from",
            "check@rollcall.test",
        ])
        .args(["--tls", "never", "--command-timeout", "10s"])
        .args(extra)
        .args(addresses)
        .env_remove("ROLLCALL_CONFIG")
        .output()
        .expect("run rollcall probe")
}

#[test]
fn an_accepted_address_exits_0_with_a_swaks_like_transcript() {
    let port = server(1);
    let out = probe(port, &[], &["alice@probe.test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .next()
            .unwrap_or_default()
            .starts_with(&format!(
                "=== connected to 127.0.0.1:{port} from 127.0.0.1:"
            )),
        "{text}"
    );
    assert!(text.contains("<-  220 mx.probe.test ESMTP\n"), "{text}");
    assert!(text.contains(" -> EHLO probe.rollcall.test\n"), "{text}");
    assert!(
        text.contains(" -> MAIL FROM:<check@rollcall.test>\n"),
        "{text}"
    );
    assert!(text.contains(" -> RCPT TO:<alice@probe.test>\n"), "{text}");
    assert!(
        !text.contains("\\r\\n"),
        "no escaped line end on every line: {text}"
    );
    assert!(text.contains("alice@probe.test\t250\t2.1.5\tOk"), "{text}");
}

#[test]
fn a_refused_address_exits_1_and_a_deferred_one_75() {
    let port = server(2);
    let out = probe(port, &[], &["alice@probe.test", "nobody@probe.test"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = probe(port, &[], &["alice@probe.test", "later@probe.test"]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn format_json_prints_one_object_and_an_invalid_address_is_never_sent() {
    let port = server(1);
    let out = probe(
        port,
        &["--format", "json"],
        &["alice@probe.test", "not an address"],
    );
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(report["results"][0]["code"], 250);
    assert_eq!(report["results"][1]["probed"], false);
    let sent = report["transcript"].to_string();
    assert!(sent.contains("RCPT TO:<alice@probe.test>"), "{sent}");
    assert!(!sent.contains("not an address"), "{sent}");
}

#[test]
fn no_server_exits_69() {
    // A port nothing listens on: bound, then dropped.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = probe(port, &[], &["alice@probe.test"]);
    assert_eq!(out.status.code(), Some(69));
}

#[test]
fn boolean_variables_take_the_usual_spellings() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for var in ["ROLLCALL_LAB", "ROLLCALL_ALLOW_PRIVATE"] {
        for value in [
            "1", "0", "yes", "no", "true", "false", "on", "off", "Y", "N",
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
                .args([
                    "probe",
                    "--host",
                    &format!("127.0.0.1:{port}"),
                    "a@probe.test",
                ])
                .env(var, value)
                .env_remove("ROLLCALL_CONFIG")
                .output()
                .unwrap();
            // Taken: the probe goes on and finds nothing listening.
            assert_eq!(
                out.status.code(),
                Some(69),
                "{var}={value}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .args([
                "probe",
                "--host",
                &format!("127.0.0.1:{port}"),
                "a@probe.test",
            ])
            .env(var, "maybe")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{var}=maybe is a usage error");
    }
}
