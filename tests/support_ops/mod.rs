//! Helpers of the operations tests (tests/ops_*.rs): service checks, a loopback HTTP GET,
//! child processes that end with the test, and cleanup of the broker and store.
//!
//! Owns only test plumbing; what is checked lives in the tests.

#![allow(dead_code)]

pub mod prom_config;
pub mod promql;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};

/// RabbitMQ and Redis of the test machine (see scripts/services.sh).
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// True under CI (`CI` set): a missing prerequisite is a failure there, a loud skip elsewhere.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Fails under CI, otherwise prints a loud notice; the caller returns (skips) after `false`.
pub fn require(missing: &[String], test: &str) -> bool {
    if missing.is_empty() {
        return true;
    }
    let how = missing.join("\n  ");
    if under_ci() {
        panic!("{test}: missing prerequisites:\n  {how}");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: missing prerequisites (under CI this is a failure):\n  {how}\n"
    );
    false
}

/// What the machine lacks of Redis, RabbitMQ and Prometheus, each with how to get it.
pub fn missing_prerequisites(prometheus: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    for (port, what) in [
        (
            6379,
            "Redis at 127.0.0.1:6379 (start it: bash scripts/services.sh)",
        ),
        (
            5672,
            "RabbitMQ at 127.0.0.1:5672 (start it: bash scripts/services.sh)",
        ),
    ] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
            missing.push(what.to_string());
        }
    }
    if !prometheus.is_file() {
        missing.push(format!(
            "{} (install it: bash tests/ops/prometheus.sh)",
            prometheus.display()
        ));
    }
    missing
}

/// A loopback port free right now (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// A name nothing else uses: pid and clock.
pub fn unique_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rollcall-ops-{tag}"));
    std::fs::create_dir_all(&dir).expect("creating the test's temporary directory");
    dir
}

/// Polls `probe` every 200 ms until it returns `Some`, or fails after `timeout` with the
/// last error `probe` reported.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "not yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("{what}: still not the case after {timeout:?} (last: {last})");
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// An HTTP response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path_and_query` on a loopback address (HTTP/1.0: the server closes after one
/// response). Decodes a chunked body in case the server sends one anyway.
pub fn http_get(addr: SocketAddr, path_and_query: &str) -> Result<Response> {
    assert!(addr.ip().is_loopback(), "the tests talk to loopback only");
    let timeout = Duration::from_secs(30);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"
    )
    .with_context(|| format!("writing to {addr}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading from {addr}"))?;
    parse_response(&raw).with_context(|| format!("the response of {addr}{path_and_query}"))
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status line in {head:?}"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        body: String::from_utf8(body).context("the body is not UTF-8")?,
    })
}

/// Decodes a chunked transfer-encoded body (RFC 9112 7.1).
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line")?;
        let size_text = String::from_utf8_lossy(&body[..end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("chunk size {size_hex:?}"))?;
        body = &body[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            bail!("chunk of {size} bytes is cut short");
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A child process of the test, ended (SIGTERM, then SIGKILL after a grace period) when the
/// guard is dropped. Its output goes to `log`.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Proc> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            log,
            child: Some(child),
        })
    }

    /// The process's id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// Fails if the process has exited (with its log's tail).
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was stopped", self.name);
        };
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} exited early ({status}); its log ends:\n{}",
                self.name,
                tail(&self.log, 40)
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; returns how it ended.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// The last `lines` lines of a log file (for failure messages).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command to completion with a time limit; returns its exit status and output.
pub fn run_with_timeout(
    name: &str,
    command: Command,
    log: PathBuf,
    timeout: Duration,
) -> Result<ExitStatus> {
    let mut proc = Proc::spawn(name, command, log)?;
    let deadline = Instant::now() + timeout;
    loop {
        let child = proc.child.as_mut().context("child gone")?;
        if let Some(status) = child.try_wait()? {
            proc.child = None;
            return Ok(status);
        }
        if Instant::now() >= deadline {
            proc.stop(Duration::from_secs(5));
            bail!(
                "{name} did not finish within {timeout:?}; its log ends:\n{}",
                tail(&proc.log, 40)
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Deletes what a fleet under `prefix` left in Redis (keys `prefix:*`) and RabbitMQ (queues
/// and exchanges `prefix.*`). Best effort: prints what it could not delete.
pub fn delete_fleet_state(prefix: &str) {
    delete_redis_keys(prefix);
    delete_amqp_topology(prefix);
}

fn delete_redis_keys(prefix: &str) {
    let scan = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "--scan", "--pattern"])
        .arg(format!("{prefix}:*"))
        .output();
    let keys: Vec<String> = match scan {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect(),
        other => {
            eprintln!("ops cleanup: cannot list Redis keys {prefix}:* ({other:?})");
            return;
        }
    };
    for chunk in keys.chunks(200) {
        let deleted = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", "6379", "DEL"])
            .args(chunk)
            .stdout(Stdio::null())
            .status();
        if !matches!(deleted, Ok(s) if s.success()) {
            eprintln!("ops cleanup: cannot delete Redis keys {prefix}:* ({deleted:?})");
        }
    }
}

/// Lists names of `kind` (`queues` or `exchanges`) starting with `prefix.`.
fn amqp_names(kind: &str, prefix: &str) -> Vec<String> {
    let listed = Command::new("rabbitmqctl")
        .args([
            &format!("list_{kind}"),
            "name",
            "--quiet",
            "--no-table-headers",
        ])
        .output();
    match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|name| name.starts_with(&format!("{prefix}.")))
            .map(str::to_string)
            .collect(),
        other => {
            eprintln!("ops cleanup: cannot list RabbitMQ {kind} ({other:?})");
            Vec::new()
        }
    }
}

fn delete_amqp_topology(prefix: &str) {
    for queue in amqp_names("queues", prefix) {
        let deleted = Command::new("rabbitmqctl")
            .args(["delete_queue", "--quiet", &queue])
            .stdout(Stdio::null())
            .status();
        if !matches!(deleted, Ok(s) if s.success()) {
            eprintln!("ops cleanup: cannot delete queue {queue} ({deleted:?})");
        }
    }
    // rabbitmqctl has no delete_exchange: one `eval` of the broker's own call deletes them all.
    let exchanges = amqp_names("exchanges", prefix);
    if exchanges.is_empty() {
        return;
    }
    let names = exchanges
        .iter()
        .map(|name| format!("<<\"{name}\">>"))
        .collect::<Vec<_>>()
        .join(", ");
    let expr = format!(
        "[rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, N), false, \
         <<\"rollcall-ops-test\">>) || N <- [{names}]]."
    );
    let deleted = Command::new("rabbitmqctl")
        .args(["eval", &expr])
        .stdout(Stdio::null())
        .status();
    if !matches!(deleted, Ok(s) if s.success()) {
        eprintln!("ops cleanup: cannot delete exchanges {prefix}.* ({deleted:?})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let plain = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (200, "ok"));
        let chunked = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((chunked.status, chunked.body.as_str()), (404, "abcde"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab")
                .is_err()
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            url_encode("sum(rate(x{a=\"b\"}[1m])) > 0"),
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29%29%20%3E%200"
        );
        assert_eq!(url_encode("a-b_c.d~9"), "a-b_c.d~9");
        assert_eq!(url_encode("é"), "%C3%A9");
    }
}
