//! A scripted fake SMTP server on 127.0.0.1:0 (or another 127.0.0.x) for the driver's tests (raw tokio TCP, optional
//! STARTTLS with an rcgen self-signed certificate). It records every read() separately so
//! tests can assert what arrived together.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_smtp::proto::ClientName;
use rollcall_smtp::{ClientConfig, TlsMode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What the fake does with one command line.
pub enum Action {
    Reply(String),
    /// Reply, then close the connection.
    ReplyClose(String),
    /// Close without a word.
    Drop,
    /// Reply 220 then run the TLS handshake (the fake must have a certificate).
    StartTls(String),
}

pub fn reply(s: &str) -> Action {
    Action::Reply(s.to_owned())
}

/// What the fake saw on one connection.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Every read() as received (plaintext or decrypted), in order.
    pub reads: Vec<Vec<u8>>,
    /// Every command line, CRLF stripped, with whether it came inside TLS.
    pub commands: Vec<(String, bool)>,
    /// Bytes that arrived while the greeting was still incomplete.
    pub early: Vec<u8>,
    pub peer: Option<SocketAddr>,
}

impl Seen {
    pub fn verbs(&self) -> Vec<String> {
        self.commands
            .iter()
            .map(|(c, _)| {
                c.split([' ', ':'])
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase()
            })
            .collect()
    }
}

pub type Handler = Box<dyn FnMut(&str, bool) -> Action + Send>;

pub struct Fake {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// Starts a fake that sends `greeting` (each part written separately, after its delay)
    /// and answers each command with `handler(line, in_tls)`. Serves connections one by one.
    pub async fn start(
        greeting: Vec<(Duration, &'static str)>,
        tls: Option<TlsAcceptor>,
        handler: Handler,
    ) -> Self {
        Self::start_on(Ipv4Addr::LOCALHOST, greeting, tls, handler).await
    }

    /// Like [`Fake::start`], listening on `ip` (a 127.0.0.0/8 address), port 0.
    pub async fn start_on(
        ip: Ipv4Addr,
        greeting: Vec<(Duration, &'static str)>,
        tls: Option<TlsAcceptor>,
        handler: Handler,
    ) -> Self {
        assert!(ip.is_loopback(), "fakes listen on loopback only, not {ip}");
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut handler = handler;
            while let Ok((tcp, peer)) = listener.accept().await {
                let mut s = Seen {
                    peer: Some(peer),
                    ..Seen::default()
                };
                serve(Box::new(tcp), &greeting, tls.clone(), &mut handler, &mut s).await;
                log.lock().unwrap().push(s);
            }
        });
        Self { addr, seen }
    }

    /// What the n-th connection saw (waits until it has ended).
    pub async fn connection(&self, n: usize) -> Seen {
        for _ in 0..500 {
            if let Some(s) = self.seen.lock().unwrap().get(n) {
                return s.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("connection {n} never ended");
    }

    pub fn connections(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn serve(
    mut io: Box<dyn Io>,
    greeting: &[(Duration, &'static str)],
    tls: Option<TlsAcceptor>,
    handler: &mut Handler,
    seen: &mut Seen,
) {
    for (delay, part) in greeting {
        if !delay.is_zero() {
            // Anything the client sends now is a pregreet violation (postscreen).
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) = tokio::time::timeout(*delay, io.read(&mut buf)).await {
                seen.early.extend_from_slice(&buf[..n]);
            }
        }
        if io.write_all(part.as_bytes()).await.is_err() {
            return;
        }
    }
    let mut in_tls = false;
    let mut pending = Vec::new();
    loop {
        let mut buf = vec![0u8; 8192];
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        seen.reads.push(buf[..n].to_vec());
        pending.extend_from_slice(&buf[..n]);
        let mut out = String::new();
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            seen.commands.push((line.clone(), in_tls));
            match handler(&line, in_tls) {
                Action::Reply(r) => out.push_str(&r),
                Action::ReplyClose(r) => {
                    out.push_str(&r);
                    let _ = io.write_all(out.as_bytes()).await;
                    let _ = io.shutdown().await;
                    return;
                }
                Action::Drop => {
                    let _ = io.write_all(out.as_bytes()).await;
                    return;
                }
                Action::StartTls(r) => {
                    if io.write_all(r.as_bytes()).await.is_err() {
                        return;
                    }
                    let Some(acceptor) = tls.clone() else { return };
                    match acceptor.accept(io).await {
                        Ok(stream) => {
                            io = Box::new(stream);
                            in_tls = true;
                            pending.clear();
                        }
                        Err(_) => return,
                    }
                }
            }
        }
        if !out.is_empty() && io.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A TLS acceptor with a fresh self-signed certificate for `mx.example.test`.
pub fn tls_acceptor() -> TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["mx.example.test".into()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

pub const GREETING: &str = "220 mx.example.test ESMTP Postfix (Debian/GNU)\r\n";

pub fn greeting() -> Vec<(Duration, &'static str)> {
    vec![(Duration::ZERO, GREETING)]
}

pub fn ehlo_reply(pipelining: bool, starttls: bool) -> String {
    let mut s = String::from("250-mx.example.test\r\n");
    if pipelining {
        s.push_str("250-PIPELINING\r\n");
    }
    s.push_str("250-SIZE 10240000\r\n");
    if starttls {
        s.push_str("250-STARTTLS\r\n");
    }
    s.push_str("250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
    s
}

/// A Postfix-like handler: known users get 250, others 550 5.1.1.
pub fn postfix(pipelining: bool, starttls: bool, known: &'static [&'static str]) -> Handler {
    Box::new(move |line, in_tls| {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            reply(&ehlo_reply(pipelining, starttls && !in_tls))
        } else if upper == "STARTTLS" {
            Action::StartTls("220 2.0.0 Ready to start TLS\r\n".into())
        } else if upper.starts_with("MAIL FROM:") {
            reply("250 2.1.0 Ok\r\n")
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:<") {
            let addr = rest.trim_end_matches('>').to_ascii_lowercase();
            if known.contains(&addr.as_str()) {
                reply("250 2.1.5 Ok\r\n")
            } else {
                Action::Reply(format!(
                    "550 5.1.1 <{addr}>: Recipient address rejected: User unknown in virtual mailbox table\r\n"
                ))
            }
        } else if upper == "RSET" || upper == "NOOP" {
            reply("250 2.0.0 Ok\r\n")
        } else if upper == "QUIT" {
            Action::ReplyClose("221 2.0.0 Bye\r\n".into())
        } else {
            reply("502 5.5.2 Error: command not recognized\r\n")
        }
    })
}

pub fn config() -> ClientConfig {
    let mut c = ClientConfig::new(ClientName::parse("probe.example.test").unwrap());
    c.transcript_lines = 500;
    c.tls = TlsMode::Never;
    c
}
