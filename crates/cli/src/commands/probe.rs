//! `rollcall probe`: one SMTP session against one host, like swaks for verification.
//!
//! Owns the flags, the output (transcript, one line per address, or one JSON object) and the
//! exit code. Does not own any protocol logic: the session is `rollcall_smtp::Session`.
//!
//! Server text reaches the operator's terminal only escaped: the transcript escapes wire bytes
//! (`escape_wire`), reply texts and errors go through `console::shown`, and JSON escapes
//! control characters itself. A closed stdout or stderr is not a panic.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context as _;
use rollcall_engine::config::EngineConfig;
use rollcall_smtp::proto::{Mailbox, ReversePath};
use rollcall_smtp::{ClientConfig, Error, NotProbed, RecipientOutcome, Session};
use serde_json::{Value, json};

use crate::config::EngineFlags;
use crate::exit::{EX_DATAERR, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE};
use crate::io::console::{self, shown};
use crate::run::settings::load_settings;

/// Flags of `rollcall probe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status:
  0   every address was accepted (2xx to RCPT TO)
  1   an address was refused (5xx to RCPT TO)
  65  an address is not a valid address (it was not sent)
  69  no session: the connection, the greeting, EHLO/HELO or a required STARTTLS failed
  75  an address got a temporary answer (4xx) or was not probed (the session ended early)
  64  bad flags or config
The worst one wins, in the order 69, 1, 65, 75.")]
pub struct Args {
    /// Host to probe: IP, IP:PORT, [IPv6]:PORT or NAME[:PORT]; without a port, --smtp-port
    /// (25 unless set). The host itself is probed; no MX lookup is done.
    #[arg(long, value_name = "ADDR[:PORT]")]
    host: String,

    /// The same settings as `verify` (the same flags, ROLLCALL_* variables, --config file and
    /// defaults): the probe uses the identity (--helo, --mail-from, the first egress), --tls
    /// and the three timeouts; the others are accepted and have nothing to do here.
    #[command(flatten)]
    engine: EngineFlags,

    /// `text`: a swaks-like transcript, then one line per address; `json`: one object
    /// (transcript, capabilities, TLS, one result per address).
    #[arg(long, value_enum, default_value_t = ProbeFormat::Text)]
    format: ProbeFormat,

    /// The same as --format json.
    #[arg(long, hide = true)]
    json: bool,

    /// Addresses to probe (RCPT TO), all in one session; one transaction per domain.
    #[arg(value_name = "ADDRESS", required = true)]
    addresses: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProbeFormat {
    Text,
    Json,
}

/// One line of the result.
struct Row {
    address: String,
    code: Option<u16>,
    enhanced: Option<String>,
    text: String,
    probed: bool,
    /// Not a valid address: never sent.
    invalid: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let json = args.json || args.format == ProbeFormat::Json;
    let settings = match load_settings(&args.engine) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    let (config, reverse) = match client_config(&settings.engine) {
        Ok(both) => both,
        Err(e) => {
            console::err_line(format_args!("rollcall probe: {e}"));
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let (addr, server_name) = resolve(&args.host, settings.engine.smtp_port).await?;

    // Local checks first: an invalid address is reported, never sent.
    let (mut rows, valid) = local_checks(&args.addresses);

    let mut session = match Session::open(addr, server_name.as_deref(), &config).await {
        Ok(s) => s,
        Err(e) => {
            if json {
                console::out_line(report(&args.host, None, &rows, Some(&e)));
            }
            console::err_line(format_args!("rollcall probe: {}", shown(&e.to_string())));
            return Ok(ExitCode::from(EX_UNAVAILABLE));
        }
    };
    let mut error = session.handshake().await.err();
    let opened = error.is_none();
    if opened {
        error = probe_all(&mut session, &reverse, &valid, &mut rows).await;
        let _ = session.quit().await;
    }

    if json {
        console::out_line(report(&args.host, Some(&session), &rows, error.as_ref()));
    } else {
        let transcript = session.transcript().map(|t| t.lines());
        let mut out = io::stdout().lock();
        // A closed stdout (`| head`) ends the listing, not the command.
        let _ = write_text(&mut out, transcript, &rows, error.as_ref()).and_then(|()| out.flush());
    }
    Ok(ExitCode::from(exit_status(opened, &rows)))
}

/// The exit status (see `Args`' help): the session, then the worst answer among the rows.
fn exit_status(opened: bool, rows: &[Row]) -> u8 {
    if !opened {
        return EX_UNAVAILABLE;
    }
    if rows.iter().any(|r| r.code.is_some_and(|c| c >= 500)) {
        return 1;
    }
    if rows.iter().any(|r| r.invalid) {
        return EX_DATAERR;
    }
    if rows
        .iter()
        .any(|r| !r.code.is_some_and(|c| (200..300).contains(&c)))
    {
        return EX_TEMPFAIL;
    }
    0
}

/// The session's settings as `verify` would use them for its first egress (HELO name, sender,
/// source address or proxy, STARTTLS mode, timeouts), with a transcript long enough for any
/// session.
fn client_config(engine: &EngineConfig) -> Result<(ClientConfig, ReversePath), String> {
    let egresses = engine.egress_list();
    let egress = egresses.first().ok_or("no egress configured")?;
    let (mut config, reverse) = rollcall_engine::client_config(engine, egress)?;
    config.tls_handshake_timeout = engine.command_timeout;
    config.transcript_lines = 10_000;
    Ok((config, reverse))
}

/// One row per address, in order, every one "not probed" until a reply says otherwise; the
/// addresses that parse, with their row, to be probed. An invalid address is never sent.
fn local_checks(addresses: &[String]) -> (Vec<Row>, Vec<(usize, Mailbox)>) {
    let mut rows: Vec<Row> = Vec::new();
    let mut valid: Vec<(usize, Mailbox)> = Vec::new();
    for a in addresses {
        match Mailbox::parse(a) {
            Ok(m) => valid.push((rows.len(), m)),
            Err(e) => {
                let mut row = not_probed(a, format!("invalid address: {e}"));
                row.invalid = true;
                rows.push(row);
                continue;
            }
        }
        rows.push(not_probed(a, "not probed".into()));
    }
    (rows, valid)
}

/// One transaction per domain, in order of first appearance. Returns what ended the session
/// early, if anything.
async fn probe_all(
    session: &mut Session,
    reverse: &ReversePath,
    valid: &[(usize, Mailbox)],
    rows: &mut [Row],
) -> Option<Error> {
    let mut domains: Vec<String> = Vec::new();
    for (_, m) in valid {
        let d = m.domain().to_ascii_lowercase();
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    for domain in domains {
        let batch: Vec<&(usize, Mailbox)> = valid
            .iter()
            .filter(|(_, m)| m.domain().eq_ignore_ascii_case(&domain))
            .collect();
        let mailboxes: Vec<Mailbox> = batch.iter().map(|(_, m)| m.clone()).collect();
        let outcome = match session.probe(reverse, &mailboxes).await {
            Ok(o) => o,
            Err(e) => return Some(e),
        };
        for ((row, _), result) in batch.iter().zip(&outcome.recipients) {
            let r = &mut rows[*row];
            match result {
                RecipientOutcome::Replied(reply) => {
                    r.code = Some(reply.code);
                    r.enhanced = reply.enhanced.map(|e| e.to_string());
                    r.text = reply.text().into_owned();
                    r.probed = true;
                }
                RecipientOutcome::NotProbed(why) => {
                    r.text = match (why, &outcome.mail) {
                        (NotProbed::MailRejected, Some(mail)) => {
                            format!("not probed: MAIL FROM rejected: {mail}")
                        }
                        _ => format!("not probed: {}", why.as_str()),
                    };
                }
            }
        }
        if let Some(e) = outcome.error {
            return Some(e);
        }
    }
    None
}

fn not_probed(address: &str, text: String) -> Row {
    Row {
        address: address.to_owned(),
        code: None,
        enhanced: None,
        text,
        probed: false,
        invalid: false,
    }
}

/// The text output: the transcript as swaks shows one (`===` for what happened, ` -> ` for
/// what was sent, `<-  ` for what came back; already escaped), a blank line, one line per
/// address, the error. Reply texts and the error hold server text, so they are shown escaped.
fn write_text(
    out: &mut impl Write,
    transcript: Option<&[String]>,
    rows: &[Row],
    error: Option<&Error>,
) -> io::Result<()> {
    for line in transcript.unwrap_or_default() {
        writeln!(out, "{}", swaks_line(line))?;
    }
    writeln!(out)?;
    for r in rows {
        let code = r.code.map_or("-".to_owned(), |c| c.to_string());
        let enhanced = r.enhanced.as_deref().unwrap_or("-");
        writeln!(
            out,
            "{}\t{code}\t{enhanced}\t{}",
            shown(&r.address),
            shown(&r.text)
        )?;
    }
    if let Some(e) = error {
        writeln!(out, "error: {}", shown(&e.to_string()))?;
    }
    Ok(())
}

/// One transcript line (`C: `, `S: ` or `-- `, wire bytes escaped) in swaks' style, without
/// the `\r\n` every wire line ends with; any other escaped byte stays visible.
fn swaks_line(line: &str) -> String {
    let (arrow, rest) = if let Some(rest) = line.strip_prefix("C: ") {
        (" -> ", rest)
    } else if let Some(rest) = line.strip_prefix("S: ") {
        ("<-  ", rest)
    } else if let Some(rest) = line.strip_prefix("-- ") {
        ("=== ", rest)
    } else {
        ("", line)
    };
    let rest = rest.strip_suffix("\\r\\n").unwrap_or(rest);
    format!("{arrow}{rest}")
}

fn report(host: &str, session: Option<&Session>, rows: &[Row], error: Option<&Error>) -> Value {
    let greeting = session
        .and_then(Session::greeting)
        .map(|g| json!({"code": g.code, "text": g.text()}));
    let capabilities: Vec<String> = session
        .and_then(Session::capabilities)
        .map(|c| c.keywords.clone())
        .unwrap_or_default();
    let tls = session.and_then(Session::tls);
    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "address": r.address,
                "code": r.code,
                "enhanced": r.enhanced,
                "text": r.text,
                "probed": r.probed,
            })
        })
        .collect();
    let transcript: Vec<String> = session
        .and_then(Session::transcript)
        .map(|t| t.lines().to_vec())
        .unwrap_or_default();
    json!({
        "host": host,
        "greeting": greeting,
        "capabilities": capabilities,
        "tls": {
            "used": tls.is_some(),
            "verified": tls.is_some_and(|t| t.verified),
            "version": tls.map(|t| t.version.clone()),
        },
        "pipelined": session.is_some_and(Session::pipelining),
        "results": results,
        "transcript": transcript,
        "error": error.map(ToString::to_string),
    })
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT`, `NAME` or `NAME:PORT`; returns the address and the name
/// (for TLS SNI) when one was given.
async fn resolve(host: &str, port: u16) -> anyhow::Result<(SocketAddr, Option<String>)> {
    if let Ok(sa) = host.parse::<SocketAddr>() {
        return Ok((sa, None));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok((SocketAddr::new(ip, port), None));
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (
            n,
            p.parse::<u16>()
                .with_context(|| format!("bad port in --host {host:?}"))?,
        ),
        None => (host, port),
    };
    let addr = tokio::net::lookup_host((name, port))
        .await
        .with_context(|| format!("cannot resolve --host {name:?}"))?
        .next()
        .with_context(|| format!("--host {name:?} has no address"))?;
    Ok((addr, Some(name.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_smtp::TlsMode;
    use rollcall_smtp::proto::ClientName;

    async fn resolve_25(host: &str) -> anyhow::Result<(SocketAddr, Option<String>)> {
        resolve(host, 25).await
    }

    #[tokio::test]
    async fn a_host_without_a_port_gets_the_configured_one() {
        let (a, _) = resolve("127.0.0.1", 2525).await.unwrap();
        assert_eq!(a.port(), 2525);
        let (a, _) = resolve("127.0.0.1:26", 2525).await.unwrap();
        assert_eq!(a.port(), 26);
    }

    fn row(code: Option<u16>, invalid: bool) -> Row {
        let mut r = not_probed("a@b.test", String::new());
        r.code = code;
        r.probed = code.is_some();
        r.invalid = invalid;
        r
    }

    #[test]
    fn exit_status_says_the_worst_answer() {
        let ok = row(Some(250), false);
        let refused = row(Some(550), false);
        let temporary = row(Some(450), false);
        let unasked = row(None, false);
        let invalid = row(None, true);
        assert_eq!(exit_status(true, &[row(Some(250), false)]), 0);
        assert_eq!(exit_status(false, &[row(Some(250), false)]), EX_UNAVAILABLE);
        assert_eq!(exit_status(true, &[ok, refused]), 1);
        assert_eq!(
            exit_status(true, &[row(Some(250), false), temporary]),
            EX_TEMPFAIL
        );
        assert_eq!(exit_status(true, &[unasked]), EX_TEMPFAIL);
        assert_eq!(
            exit_status(true, &[invalid, row(Some(451), false)]),
            EX_DATAERR
        );
        assert_eq!(
            exit_status(true, &[row(None, true), row(Some(550), false)]),
            1,
            "a refusal outranks an invalid address"
        );
    }

    #[test]
    fn transcript_lines_read_like_swaks() {
        assert_eq!(
            swaks_line("-- connected to 127.0.0.1:25 from 127.0.0.1:4000"),
            "=== connected to 127.0.0.1:25 from 127.0.0.1:4000"
        );
        assert_eq!(
            swaks_line("C: EHLO probe.test\\r\\n"),
            " -> EHLO probe.test"
        );
        assert_eq!(swaks_line("S: 250-mx.test\\r\\n"), "<-  250-mx.test");
        // A bare CR or LF inside a line is not the line's end: it stays shown.
        assert_eq!(swaks_line("S: 550 a\\rb\\r\\n"), "<-  550 a\\rb");
    }

    #[tokio::test]
    async fn host_forms() {
        let (a, n) = resolve_25("127.0.0.25:2525").await.unwrap();
        assert_eq!((a.to_string(), n), ("127.0.0.25:2525".to_owned(), None));
        let (a, _) = resolve_25("127.0.0.1").await.unwrap();
        assert_eq!(a.port(), 25);
        let (a, _) = resolve_25("[::1]:2526").await.unwrap();
        assert_eq!(a.to_string(), "[::1]:2526");
        let (a, _) = resolve_25("::1").await.unwrap();
        assert_eq!(a.port(), 25);
        assert!(resolve_25("localhost:notaport").await.is_err());
    }

    /// A server on loopback whose RCPT reply carries terminal escape sequences (set the
    /// window title, clear the screen) and a carriage return that would rewrite the line.
    async fn hostile_server() -> SocketAddr {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            write
                .write_all(b"220 mx.example.test ESMTP\r\n")
                .await
                .unwrap();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250 mx.example.test\r\n",
                    "RCPT" => b"550 5.1.1 \x1b]0;owned\x07\x1b[2J\rno such user\r\n",
                    "QUIT" => b"221 bye\r\n",
                    _ => b"250 ok\r\n",
                };
                if write.write_all(reply).await.is_err() || verb == "QUIT" {
                    break;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn server_text_reaches_the_terminal_escaped() {
        let addr = hostile_server().await;
        let mut config = ClientConfig::new(ClientName::parse("probe.example.test").unwrap());
        config.tls = TlsMode::Never;
        config.transcript_lines = 100;
        let mut session = Session::open(addr, None, &config).await.unwrap();
        session.handshake().await.unwrap();
        let bob = Mailbox::parse("bob@example.test").unwrap();
        let mut rows = vec![not_probed("bob@example.test", "not probed".into())];
        let reverse = ReversePath::parse("probe@example.test").unwrap();
        let error = probe_all(&mut session, &reverse, &[(0, bob)], &mut rows).await;
        let _ = session.quit().await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(rows[0].code, Some(550));
        // The reply text as the session hands it over still holds the escape sequence.
        assert!(rows[0].text.contains('\u{1b}'), "{:?}", rows[0].text);

        let mut out = Vec::new();
        let transcript = session.transcript().map(|t| t.lines());
        write_text(&mut out, transcript, &rows, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.bytes().any(|b| b == 0x1b || b == 0x07 || b == b'\r'),
            "{text:?}"
        );
        assert!(text.contains("bob@example.test\t550\t5.1.1\t"), "{text}");
        assert!(
            text.contains("\\x1b]0;owned\\x07\\x1b[2J\\x0dno such user"),
            "{text}"
        );
    }

    #[test]
    fn json_shape_without_session() {
        let rows = vec![not_probed("a@b.test", "not probed".into())];
        let v = report("127.0.0.1:25", None, &rows, None);
        for key in [
            "host",
            "greeting",
            "capabilities",
            "tls",
            "pipelined",
            "results",
            "transcript",
            "error",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["results"][0]["code"], Value::Null);
        assert_eq!(v["results"][0]["probed"], false);
        assert_eq!(v["tls"]["used"], false);
    }
}
