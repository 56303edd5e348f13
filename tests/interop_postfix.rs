//! Interoperability of `rollcall probe` with a real Postfix on loopback.
//!
//! Owns: running the `rollcall` binary against the two listeners that
//! `tests/interop/postfix.sh up` sets up, checking its JSON report, and checking Postfix's own
//! log of the same session (the server's view: no 503, no improper pipelining, no DATA).
//! Does not own: installing or configuring Postfix (the script does), nor the probe itself.
//!
//! If Postfix is not answering, the test fails under CI (`CI` set) and is skipped, loudly,
//! everywhere else.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One smtpd listener of the interop Postfix (see tests/interop/postfix.sh).
struct Listener {
    addr: &'static str,
    /// The `-o syslog_name=` of the listener: tells its log lines from the other's.
    syslog_name: &'static str,
    advertises_pipelining: bool,
}

const PIPELINING: Listener = Listener {
    addr: "127.0.0.25:2525",
    syslog_name: "postfix/interop-pipelining",
    advertises_pipelining: true,
};

const NO_PIPELINING: Listener = Listener {
    addr: "127.0.0.26:2525",
    syslog_name: "postfix/interop-nopipelining",
    advertises_pipelining: false,
};

const KNOWN: [&str; 2] = ["alice@example.test", "bob@example.test"];
const UNKNOWN: [&str; 2] = ["nobody@example.test", "ghost@example.test"];

/// The name the probe gives in EHLO: marks its session in Postfix's log.
const HELO: &str = "interop.rollcall.test";

const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// postlogd writes asynchronously: the session's last lines may land after the probe exits.
const LOG_TIMEOUT: Duration = Duration::from_secs(15);
const SETUP_HINT: &str = "run: bash tests/interop/postfix.sh up";

#[test]
fn probe_against_postfix_advertising_pipelining() {
    run_interop(&PIPELINING);
}

#[test]
fn probe_against_postfix_without_pipelining() {
    run_interop(&NO_PIPELINING);
}

fn run_interop(listener: &Listener) {
    if let Err(e) = greets(listener.addr) {
        if std::env::var_os("CI").is_some() {
            panic!(
                "Postfix interop listener {} is not answering ({e:#}); {SETUP_HINT}",
                listener.addr
            );
        }
        eprintln!(
            "\n!!!!!!!! SKIPPED interop_postfix ({}): Postfix is not answering ({e:#}).\n\
             !!!!!!!! {SETUP_HINT}   (under CI this is a failure)\n",
            listener.addr
        );
        return;
    }

    let log_path = postfix_log_path();
    let log_start = file_len(&log_path);

    let report = run_probe(listener).unwrap_or_else(|e| panic!("{e:#}"));
    check_report(listener, &report);

    let sessions = wait_for_probe_sessions(&log_path, log_start, listener.syslog_name)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        sessions.len(),
        1,
        "`rollcall probe` is one session; Postfix saw {sessions:#?}"
    );
    check_server_log(listener, &sessions);
}

/// Connects and reads a `220` greeting, then says QUIT. Bounded by short timeouts.
fn greets(addr: &str) -> Result<()> {
    let sock: SocketAddr = addr.parse()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line).context("read greeting")?;
    if !line.starts_with("220") {
        bail!("unexpected greeting {line:?}");
    }
    stream.write_all(b"QUIT\r\n")?;
    let mut bye = String::new();
    let _ = reader.read_line(&mut bye);
    Ok(())
}

/// The path the script prints with `log`; the script is the one place it is defined.
fn postfix_log_path() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/postfix.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("log")
        .output()
        .expect("run tests/interop/postfix.sh log");
    assert!(out.status.success(), "postfix.sh log failed: {out:?}");
    let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!path.is_empty(), "postfix.sh log printed nothing");
    PathBuf::from(path)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| {
            panic!(
                "Postfix log {} unreadable ({e}); {SETUP_HINT}",
                path.display()
            )
        })
        .len()
}

/// Runs `rollcall probe --json` against the listener, killed after `PROBE_TIMEOUT`.
fn run_probe(listener: &Listener) -> Result<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args([
            "probe",
            "--host",
            listener.addr,
            "--helo",
            HELO,
            "--mail-from",
            "probe@rollcall.test",
            "--json",
        ])
        .args(KNOWN)
        .args(UNKNOWN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn rollcall")?;
    // Drain both pipes on their own threads so a chatty child cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "rollcall probe {} did not finish within {PROBE_TIMEOUT:?}",
                listener.addr
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "rollcall probe {} printed no JSON report ({status}).\nstdout:\n{stdout}\nstderr:\n{stderr}",
            listener.addr
        )
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

fn check_report(listener: &Listener, report: &Value) {
    let ctx = format!("report for {}: {report:#}", listener.addr);
    assert_eq!(report["error"], Value::Null, "{ctx}");
    assert_eq!(report["host"], listener.addr, "{ctx}");
    assert_eq!(report["greeting"]["code"], 220, "{ctx}");

    let caps: Vec<&str> = report["capabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("capabilities is not an array; {ctx}"))
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap_or_else(|| panic!("capability not a string; {ctx}"))
        })
        .collect();
    let has_pipelining = caps.iter().any(|c| keyword(c) == "PIPELINING");
    assert_eq!(
        has_pipelining, listener.advertises_pipelining,
        "PIPELINING among the capabilities; {ctx}"
    );

    // Both listeners offer STARTTLS; the probe must take it (RFC 3207).
    assert_eq!(report["tls"]["used"], true, "{ctx}");
    // RFC 2920: pipeline only where the server advertised PIPELINING.
    assert_eq!(report["pipelined"], listener.advertises_pipelining, "{ctx}");

    let results = report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results is not an array; {ctx}"));
    let result_for = |address: &str| {
        results
            .iter()
            .find(|r| r["address"] == address)
            .unwrap_or_else(|| panic!("no result for {address}; {ctx}"))
    };
    for address in KNOWN {
        let r = result_for(address);
        assert_eq!(r["code"], 250, "{address}; {ctx}");
        assert_eq!(r["enhanced"], "2.1.5", "{address}; {ctx}");
        assert_eq!(r["probed"], true, "{address}; {ctx}");
    }
    for address in UNKNOWN {
        let r = result_for(address);
        assert_eq!(r["code"], 550, "{address}; {ctx}");
        assert_eq!(r["enhanced"], "5.1.1", "{address}; {ctx}");
        assert_eq!(r["probed"], true, "{address}; {ctx}");
        let text = r["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("User unknown in virtual mailbox table"),
            "{address}: Postfix's text should be kept; {ctx}"
        );
    }

    let transcript: Vec<&str> = report["transcript"]
        .as_array()
        .unwrap_or_else(|| panic!("transcript is not an array; {ctx}"))
        .iter()
        .map(|l| {
            l.as_str()
                .unwrap_or_else(|| panic!("transcript line not a string; {ctx}"))
        })
        .collect();
    check_transcript(listener, &transcript, &ctx);
}

/// The first word of a capability or command, upper-cased (`SIZE 10240000` -> `SIZE`).
fn keyword(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// The lines a transcript entry carries, after its direction tag (`C:` or `S:`). An entry may
/// hold several CRLF-terminated lines (a pipelined group written at once); CRLF may appear
/// escaped (`\\r\\n`, as the report prints it) or raw.
fn transcript_lines(entry: &str, tag: &str) -> Option<Vec<String>> {
    let rest = entry.strip_prefix(tag)?;
    let lines = rest
        .replace("\\r\\n", "\n")
        .replace("\r\n", "\n")
        .split('\n')
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    Some(lines)
}

fn check_transcript(listener: &Listener, transcript: &[&str], ctx: &str) {
    assert!(!transcript.is_empty(), "empty transcript; {ctx}");
    // Without PIPELINING, every command waits for the reply to the one before (RFC 5321
    // 4.1.1, RFC 2920 3.1): no two client lines without a server line between them. Postfix
    // does not police MAIL+RCPT sent together, so the transcript is where this shows.
    let mut awaiting_reply: Option<String> = None;
    for entry in transcript {
        if let Some(commands) = transcript_lines(entry, "C:") {
            for command in commands {
                // A verifier never starts a message (RFC 5321 4.1.1.4): no DATA, no BDAT.
                let verb = keyword(&command);
                assert!(
                    verb != "DATA" && verb != "BDAT",
                    "the client sent {command:?}; {ctx}"
                );
                if !listener.advertises_pipelining
                    && let Some(previous) = &awaiting_reply
                {
                    panic!("sent {command:?} before the reply to {previous:?}; {ctx}");
                }
                awaiting_reply = Some(command);
            }
        } else if let Some(replies) = transcript_lines(entry, "S:") {
            for reply in replies {
                assert!(!reply.starts_with("354"), "server invited data; {ctx}");
                assert!(!reply.starts_with("503"), "server answered 503; {ctx}");
                // A continuation line (`250-`) is not yet the reply.
                if reply.as_bytes().get(3) != Some(&b'-') {
                    awaiting_reply = None;
                }
            }
        }
    }
}

/// One smtpd session in Postfix's log: every line of one process from `connect from` to
/// `disconnect from`.
#[derive(Debug)]
struct Session {
    lines: Vec<String>,
}

impl Session {
    /// Did the client introduce itself with the probe's name? Our own reachability check
    /// (greeting, QUIT) and other clients do not.
    fn is_probe(&self) -> bool {
        let ehlo = format!("]: EHLO {HELO}").to_ascii_uppercase();
        let helo = format!("]: HELO {HELO}").to_ascii_uppercase();
        self.lines.iter().any(|m| {
            let m = m.to_ascii_uppercase();
            m.contains(&ehlo) || m.contains(&helo)
        })
    }

    fn disconnect(&self) -> Option<&str> {
        self.lines
            .iter()
            .map(|l| l.as_str())
            .find(|m| m.starts_with("disconnect from "))
    }
}

/// Reads what the log gained since `start` until it holds at least one session of
/// `syslog_name` opened by the probe, and every such session has its `disconnect from` line,
/// within `LOG_TIMEOUT`.
fn wait_for_probe_sessions(path: &Path, start: u64, syslog_name: &str) -> Result<Vec<Session>> {
    let deadline = Instant::now() + LOG_TIMEOUT;
    loop {
        let appended = read_from(path, start)?;
        let sessions: Vec<Session> = sessions_in(&appended, syslog_name)
            .into_iter()
            .filter(Session::is_probe)
            .collect();
        if !sessions.is_empty() && sessions.iter().all(|s| s.disconnect().is_some()) {
            return Ok(sessions);
        }
        if Instant::now() >= deadline {
            bail!(
                "no complete {syslog_name} session with EHLO {HELO} in {} within {LOG_TIMEOUT:?}; appended:\n{appended}",
                path.display()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn read_from(path: &Path, start: u64) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    // A log rotated or truncated meanwhile: read it whole.
    let start = if file.metadata()?.len() < start {
        0
    } else {
        start
    };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Splits log text into the sessions of one listener. A line looks like
/// `Nov 23 11:05:15 mx postfix/interop-pipelining/smtpd[16652]: connect from localhost[127.0.0.1]`.
/// smtpd processes are reused, so a session is bounded by its connect and disconnect lines.
fn sessions_in(log: &str, syslog_name: &str) -> Vec<Session> {
    let tag = format!(" {syslog_name}/smtpd[");
    let mut open: Vec<(String, Session)> = Vec::new();
    let mut done = Vec::new();
    for line in log.lines() {
        let Some(at) = line.find(&tag) else { continue };
        let rest = &line[at + tag.len()..];
        let Some((pid, message)) = rest.split_once("]: ") else {
            continue;
        };
        if message.starts_with("connect from ") {
            open.push((
                pid.to_owned(),
                Session {
                    lines: vec![message.to_owned()],
                },
            ));
            continue;
        }
        let Some(index) = open.iter().position(|(p, _)| p == pid) else {
            // A session that began before the window: not ours.
            continue;
        };
        open[index].1.lines.push(message.to_owned());
        if message.starts_with("disconnect from ") {
            done.push(open.remove(index).1);
        }
    }
    done.extend(open.into_iter().map(|(_, s)| s));
    done
}

fn check_server_log(listener: &Listener, sessions: &[Session]) {
    for session in sessions {
        let ctx = format!(
            "Postfix's log of the session on {}:\n{}",
            listener.addr,
            session.lines.join("\n")
        );
        for message in &session.lines {
            assert!(
                !message.contains("improper command pipelining"),
                "{message}; {ctx}"
            );
            assert!(
                !message.contains("SMTP protocol synchronization"),
                "{message}; {ctx}"
            );
            // With debug_peer_list smtpd logs every reply as `> client: 503 5.5.1 ...`.
            assert!(
                !message.contains(": 503 ") && !message.contains("503 5.5."),
                "{message}; {ctx}"
            );
            // `< client: DATA` would be the command as the server read it.
            assert!(
                !message.to_ascii_uppercase().contains("]: DATA"),
                "{message}; {ctx}"
            );
        }
        // `disconnect from localhost[127.0.0.1] ehlo=2 starttls=1 mail=1 rcpt=2/4 quit=1
        // commands=6/8`: per-command counts, `ok/total` where some failed.
        let disconnect = session
            .disconnect()
            .unwrap_or_else(|| panic!("session without disconnect; {ctx}"));
        let counts: Vec<&str> = disconnect.split_whitespace().skip(3).collect();
        let count = |name: &str| {
            counts
                .iter()
                .find_map(|c| c.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        };
        assert_eq!(count("starttls"), Some("1"), "{disconnect}; {ctx}");
        assert_eq!(count("mail"), Some("1"), "{disconnect}; {ctx}");
        assert_eq!(count("rcpt"), Some("2/4"), "{disconnect}; {ctx}");
        assert_eq!(count("data"), None, "{disconnect}; {ctx}");
        assert_eq!(count("bdat"), None, "{disconnect}; {ctx}");
        let ehlo = count("ehlo").unwrap_or_else(|| panic!("no EHLO; {disconnect}; {ctx}"));
        assert!(!ehlo.contains('/'), "an EHLO failed: {disconnect}; {ctx}");
    }
}
