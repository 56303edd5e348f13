//! Sessions through a real SOCKS5 proxy (Debian's microsocks, started by `scripts/socks.sh`)
//! to fake servers on loopback, proxy failures, and the `socks5://` URL syntax.
//!
//! The proxies listen on 127.0.0.1 with ports of this file's own (10801, 10802) and connect out
//! from 127.0.0.9, so a fake server can tell a tunnelled session (peer 127.0.0.9) from a direct
//! one (peer 127.0.0.1). When microsocks cannot be started the proxy tests are skipped with a
//! notice, except under CI (`CI` set), where they fail.

mod fake;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use fake::{Fake, config, greeting, postfix};
use rollcall_smtp::proto::{Mailbox, ReversePath};
use rollcall_smtp::{ClientConfig, Error, Phase, Session, Socks5Proxy, TlsMode};

/// microsocks without authentication.
const OPEN_PROXY_PORT: u16 = 10801;
/// microsocks requiring `USER`/`PASS`.
const AUTH_PROXY_PORT: u16 = 10802;
/// The proxies' outgoing address (`microsocks -b`).
const BIND_OUT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);
/// Where the fake MX hosts listen.
const FAKE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 31);
const USER: &str = "rollcall";
/// Has the characters a URL must escape: the test URL carries it percent-encoded.
const PASS: &str = "s3cret@:pw";
const PASS_IN_URL: &str = "s3cret%40%3Apw";

const KNOWN: &[&str] = &["alice@example.test"];

/// Starts the proxy on `port` (idempotent: the script does nothing when it already listens).
/// `None`: it could not be started and this is not CI; the caller skips its test.
async fn proxy_up(test: &str, port: u16, auth: Option<(&str, &str)>) -> Option<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/socks.sh");
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(script)
        .arg("up")
        .arg(port.to_string())
        .arg(BIND_OUT.to_string());
    if let Some((user, pass)) = auth {
        cmd.arg(user).arg(pass);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await;
    let why = match out {
        Ok(out) if out.status.success() => return Some(()),
        Ok(out) => format!(
            "{script} up {port} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("cannot run bash {script}: {e}"),
    };
    let how = "install and start it with `bash scripts/socks.sh up` (Debian's microsocks: \
               apt-get install -y microsocks)";
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: the SOCKS5 tests need microsocks, which could not be started: {why}\n{how}"
        );
    }
    eprintln!("\n*** SKIPPED {test}: microsocks could not be started; {how}. ***\n*** {why} ***\n");
    None
}

macro_rules! require_proxy {
    ($test:expr, $port:expr, $auth:expr) => {
        if proxy_up($test, $port, $auth).await.is_none() {
            return;
        }
    };
}

fn proxy_url(port: u16) -> Socks5Proxy {
    Socks5Proxy::parse(&format!("socks5://127.0.0.1:{port}")).unwrap()
}

fn via(proxy: Socks5Proxy) -> ClientConfig {
    let mut cfg = config();
    cfg.proxy = Some(proxy);
    cfg.connect_timeout = Duration::from_secs(5);
    cfg
}

fn from() -> ReversePath {
    ReversePath::parse("probe@verifier.example").unwrap()
}

fn rcpts(list: &[&str]) -> Vec<Mailbox> {
    list.iter().map(|a| Mailbox::parse(a).unwrap()).collect()
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
fn closed_port(ip: Ipv4Addr) -> SocketAddr {
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    listener.local_addr().unwrap()
}

fn proxy_error_kind(err: &Error) -> io::ErrorKind {
    match err {
        Error::Proxy { source, .. } => source.kind(),
        other => panic!("expected a proxy error, got {other:?}"),
    }
}

#[tokio::test]
async fn session_through_proxy_runs_starttls_and_a_transaction() {
    require_proxy!(
        "session_through_proxy_runs_starttls_and_a_transaction",
        OPEN_PROXY_PORT,
        None
    );
    let fake = Fake::start_on(
        FAKE_IP,
        greeting(),
        Some(fake::tls_acceptor()),
        postfix(true, true, KNOWN),
    )
    .await;
    let mut cfg = via(proxy_url(OPEN_PROXY_PORT));
    cfg.tls = TlsMode::Require;
    let mut s = Session::connect(fake.addr, Some("mx.example.test"), &cfg)
        .await
        .unwrap();
    assert_eq!(s.peer(), fake.addr);
    assert_eq!(s.greeting().map(|g| g.code), Some(220));
    let tls = s.tls().expect("STARTTLS through the tunnel").clone();
    assert_eq!(tls.version, "TLSv1_3");
    let out = s
        .probe(
            &from(),
            &rcpts(&["alice@example.test", "nobody@example.test"]),
        )
        .await
        .unwrap();
    let codes: Vec<_> = out
        .recipients
        .iter()
        .map(|o| o.reply().map(|r| r.code))
        .collect();
    assert_eq!(codes, vec![Some(250), Some(550)]);
    s.quit().await.unwrap();

    let seen = fake.connection(0).await;
    // The MX host saw the proxy's outgoing address, not ours.
    assert_eq!(seen.peer.map(|p| p.ip()), Some(IpAddr::V4(BIND_OUT)));
    let order: Vec<(String, bool)> = seen
        .commands
        .iter()
        .map(|(c, t)| (c.split([' ', ':']).next().unwrap().to_owned(), *t))
        .collect();
    let expect = [
        ("EHLO", false),
        ("STARTTLS", false),
        ("EHLO", true),
        ("MAIL", true),
        ("RCPT", true),
        ("RCPT", true),
        ("RSET", true),
        ("QUIT", true),
    ];
    let got: Vec<(&str, bool)> = order.iter().map(|(v, t)| (v.as_str(), *t)).collect();
    assert_eq!(got, expect);

    // The same fake reached directly sees 127.0.0.1: the peer check above can fail.
    let mut direct = Session::connect(fake.addr, None, &config()).await.unwrap();
    direct.quit().await.unwrap();
    let seen = fake.connection(1).await;
    assert_eq!(
        seen.peer.map(|p| p.ip()),
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    );
}

#[tokio::test]
async fn proxy_with_password_carries_the_session() {
    require_proxy!(
        "proxy_with_password_carries_the_session",
        AUTH_PROXY_PORT,
        Some((USER, PASS))
    );
    let fake = Fake::start_on(FAKE_IP, greeting(), None, postfix(true, false, KNOWN)).await;
    let proxy = Socks5Proxy::parse(&format!(
        "socks5://{USER}:{PASS_IN_URL}@127.0.0.1:{AUTH_PROXY_PORT}"
    ))
    .unwrap();
    assert_eq!(proxy.auth, Some((USER.to_owned(), PASS.to_owned())));
    let mut s = Session::connect(fake.addr, None, &via(proxy))
        .await
        .unwrap();
    let out = s
        .probe(&from(), &rcpts(&["alice@example.test"]))
        .await
        .unwrap();
    assert_eq!(out.recipients[0].reply().map(|r| r.code), Some(250));
    s.quit().await.unwrap();
    let seen = fake.connection(0).await;
    assert_eq!(seen.peer.map(|p| p.ip()), Some(IpAddr::V4(BIND_OUT)));
    assert_eq!(seen.verbs(), ["EHLO", "MAIL", "RCPT", "RSET", "QUIT"]);
}

#[tokio::test]
async fn wrong_password_is_a_proxy_error() {
    require_proxy!(
        "wrong_password_is_a_proxy_error",
        AUTH_PROXY_PORT,
        Some((USER, PASS))
    );
    let fake = Fake::start_on(FAKE_IP, greeting(), None, postfix(true, false, KNOWN)).await;
    let proxy = Socks5Proxy {
        addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), AUTH_PROXY_PORT),
        auth: Some((USER.to_owned(), "not-the-password".to_owned())),
    };
    let err = Session::connect(fake.addr, None, &via(proxy))
        .await
        .unwrap_err();
    assert_eq!(proxy_error_kind(&err), io::ErrorKind::PermissionDenied);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot connect to {} via SOCKS5 proxy 127.0.0.1:{AUTH_PROXY_PORT}: ",
            fake.addr
        )),
        "{text}"
    );
    assert!(text.contains("rejected the user/password"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    // Retrying will not fix a wrong password.
    assert!(!err.is_transient());
    assert_eq!(err.as_metric_label(), "connection_failed");

    // No credentials at all: the proxy offers no method we accept.
    let err = Session::connect(fake.addr, None, &via(proxy_url(AUTH_PROXY_PORT)))
        .await
        .unwrap_err();
    assert_eq!(proxy_error_kind(&err), io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("authentication methods"), "{err}");

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.connections(), 0, "the proxy let a session through");
}

#[tokio::test]
async fn nothing_listening_on_the_proxy_port_is_a_proxy_error() {
    // No microsocks needed: nobody listens on this port.
    let dead = closed_port(Ipv4Addr::LOCALHOST);
    let target = closed_port(FAKE_IP);
    let proxy = Socks5Proxy {
        addr: dead,
        auth: None,
    };
    let err = Session::connect(target, None, &via(proxy))
        .await
        .unwrap_err();
    assert_eq!(proxy_error_kind(&err), io::ErrorKind::ConnectionRefused);
    assert_eq!(
        err.to_string()
            .split(" (os error")
            .next()
            .unwrap()
            .to_owned(),
        format!(
            "cannot connect to {target} via SOCKS5 proxy {dead}: cannot reach the proxy: Connection refused"
        )
    );
    assert!(err.is_transient() && !err.is_timeout());
    assert_eq!(err.as_metric_label(), "connection_failed");
}

#[tokio::test]
async fn proxy_reports_the_target_refused() {
    require_proxy!("proxy_reports_the_target_refused", OPEN_PROXY_PORT, None);
    let target = closed_port(FAKE_IP);
    let err = Session::connect(target, None, &via(proxy_url(OPEN_PROXY_PORT)))
        .await
        .unwrap_err();
    assert_eq!(proxy_error_kind(&err), io::ErrorKind::ConnectionRefused);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot connect to {target} via SOCKS5 proxy 127.0.0.1:{OPEN_PROXY_PORT}: the target refused"
        )),
        "{text}"
    );
    assert!(err.is_transient());
}

#[tokio::test(start_paused = true)]
async fn a_silent_proxy_is_bounded_by_the_connect_timeout() {
    // Accepts and never answers the SOCKS5 greeting.
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(tcp);
    });
    let mut cfg = via(Socks5Proxy { addr, auth: None });
    cfg.connect_timeout = Duration::from_secs(10);
    let err = Session::connect(closed_port(FAKE_IP), None, &cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Connect)), "{err:?}");
    held.abort();
}

#[tokio::test]
async fn proxy_and_local_addr_are_a_config_error() {
    let mut cfg = via(Socks5Proxy {
        addr: closed_port(Ipv4Addr::LOCALHOST),
        auth: None,
    });
    cfg.local_addr = Some(IpAddr::V4(FAKE_IP));
    assert!(matches!(cfg.validate(), Err(Error::Config(_))));
    // Refused before any socket: not the proxy's connection refused.
    let err = Session::connect(closed_port(FAKE_IP), None, &cfg)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("local_addr"), "{err}");
    assert!(!err.is_transient());
    assert_eq!(err.as_metric_label(), "invalid_config");
    cfg.local_addr = None;
    assert!(cfg.validate().is_ok());
}

// Socks5Proxy::parse

#[test]
fn parse_accepts_ip_literals_with_and_without_credentials() {
    let p = Socks5Proxy::parse("socks5://127.0.0.1:1080").unwrap();
    assert_eq!(p.addr, "127.0.0.1:1080".parse().unwrap());
    assert_eq!(p.auth, None);
    let p = Socks5Proxy::parse("socks5://alice:s3cret@127.0.0.2:10800").unwrap();
    assert_eq!(p.addr, "127.0.0.2:10800".parse().unwrap());
    assert_eq!(p.auth, Some(("alice".into(), "s3cret".into())));
    let p = Socks5Proxy::parse("socks5://[::1]:1080").unwrap();
    assert_eq!(p.addr, "[::1]:1080".parse().unwrap());
    let p: Socks5Proxy = "SOCKS5://a%40b:p%3Aw%40d@[::1]:9050/".parse().unwrap();
    assert_eq!(p.addr, "[::1]:9050".parse().unwrap());
    assert_eq!(p.auth, Some(("a@b".into(), "p:w@d".into())));
    // Display round-trips except for the password.
    let p = Socks5Proxy::parse("socks5://[::1]:1080").unwrap();
    assert_eq!(Socks5Proxy::parse(&p.to_string()).unwrap(), p);
}

fn parse_err(url: &str) -> String {
    Socks5Proxy::parse(url).expect_err(url)
}

#[test]
fn parse_refuses_host_names() {
    for url in [
        "socks5://localhost:1080",
        "socks5://proxy.example.test:1080",
        "socks5://alice:s3cret@proxy.example.test:1080",
    ] {
        let e = parse_err(url);
        assert!(
            e.contains("is not an IP address") && e.contains("never resolves"),
            "{url}: {e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
    }
    let e = parse_err("socks5h://127.0.0.1:1080");
    assert!(
        e.contains("socks5h://") && e.contains("use socks5://"),
        "{e}"
    );
}

#[test]
fn parse_refuses_a_missing_or_bad_port() {
    for url in [
        "socks5://127.0.0.1",
        "socks5://127.0.0.1:",
        "socks5://[::1]",
        "socks5://alice:pw@127.0.0.1",
    ] {
        assert!(parse_err(url).contains("missing port"), "{url}");
    }
    for url in [
        "socks5://127.0.0.1:0",
        "socks5://127.0.0.1:65536",
        "socks5://127.0.0.1:x",
    ] {
        assert!(
            parse_err(url).contains("is not a number from 1 to 65535"),
            "{url}"
        );
    }
}

#[test]
fn parse_refuses_other_shapes() {
    let cases = [
        ("127.0.0.1:1080", "expected socks5://"),
        ("http://127.0.0.1:8080", "scheme must be socks5://"),
        ("socks4://127.0.0.1:1080", "scheme must be socks5://"),
        ("socks5://", "missing host and port"),
        ("socks5://:1080", "missing host"),
        ("socks5://::1:1080", "must be in brackets"),
        ("socks5://[::1:1080", "without ']'"),
        ("socks5://[127.0.0.1]:1080", "not an IPv6 address"),
        ("socks5://127.0.0.1:1080/path", "nothing may follow"),
        ("socks5://127.0.0.1:1080?x=1", "nothing may follow"),
        ("socks5://alice@127.0.0.1:1080", "user without a password"),
        ("socks5://:pw@127.0.0.1:1080", "user must be 1 to 255 bytes"),
        (
            "socks5://alice:@127.0.0.1:1080",
            "password must be 1 to 255 bytes",
        ),
        ("socks5://alice:p%zz@127.0.0.1:1080", "password: '%'"),
    ];
    for (url, want) in cases {
        let e = parse_err(url);
        assert!(e.starts_with("SOCKS5 proxy URL: "), "{url}: {e}");
        assert!(e.contains(want), "{url}: {e:?} lacks {want:?}");
    }
}

#[test]
fn password_is_never_printed() {
    let p = Socks5Proxy::parse("socks5://alice:s3cret@127.0.0.1:1080").unwrap();
    assert_eq!(p.to_string(), "socks5://alice:***@127.0.0.1:1080");
    let debug = format!("{p:?}");
    assert!(debug.contains("***") && debug.contains("alice"), "{debug}");
    assert!(!debug.contains("s3cret"), "{debug}");
    let mut cfg = config();
    cfg.proxy = Some(p);
    let debug = format!("{cfg:?} {cfg:#?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    let open = Socks5Proxy::parse("socks5://127.0.0.1:1080").unwrap();
    assert_eq!(open.to_string(), "socks5://127.0.0.1:1080");
}
