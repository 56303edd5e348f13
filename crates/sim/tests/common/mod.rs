//! Test helpers: start a fleet from inline TOML, and a raw SMTP client over tokio sockets
//! that sends exactly the bytes a test asks for.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rollcall_sim::{Fleet, FleetSpec, SimOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub async fn fleet(toml: &str) -> Fleet {
    let spec = FleetSpec::from_toml(toml).unwrap();
    rollcall_sim::start(&spec, SimOptions::default())
        .await
        .unwrap()
}

/// One host `mx.t.test` serving `t.test` (alice valid, bob full, carol disabled), with the
/// given profile lines.
pub fn one_host(profile: &str) -> String {
    format!(
        r#"
[profiles.default]
error_delay_ms = 0
{profile}

[[host]]
name = "mx.t.test"

[[site]]
name = "t"
mx = [{{ host = "mx.t.test", preference = 10 }}]

[[domain]]
name = "t.test"
site = "t"
mailboxes = {{ "alice" = "valid", "bob" = "full", "carol" = "disabled" }}

[[domain]]
name = "grey.test"
behaviour = "greylist"
site = "t"
mailboxes = {{ "alice" = "valid" }}

[[domain]]
name = "any.test"
behaviour = "catch_all"
site = "t"

[[domain]]
name = "bl.test"
behaviour = "blocked"
site = "t"
mailboxes = {{ "alice" = "valid" }}
"#
    )
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct Client {
    pub io: Box<dyn Stream>,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let io = TcpStream::connect(addr).await.unwrap();
        Client {
            io: Box::new(io),
            buf: Vec::new(),
        }
    }

    /// Connects from the source address `from` (any 127.0.0.0/8 address works on Linux), so
    /// the server sees that client IP.
    pub async fn connect_from(from: IpAddr, addr: SocketAddr) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let io = socket.connect(addr).await.unwrap();
        Client {
            io: Box::new(io),
            buf: Vec::new(),
        }
    }

    /// Connects and reads the greeting.
    pub async fn greeted(addr: SocketAddr) -> Client {
        Client::connect(addr).await.expect_greeting().await
    }

    /// Connects from `from` and reads the greeting.
    pub async fn greeted_from(from: IpAddr, addr: SocketAddr) -> Client {
        Client::connect_from(from, addr)
            .await
            .expect_greeting()
            .await
    }

    async fn expect_greeting(mut self) -> Client {
        let g = self.reply().await;
        let last = g.lines().last().unwrap_or_default();
        assert!(last.starts_with("220 "), "{g}");
        self
    }

    pub async fn send(&mut self, raw: &str) {
        self.io.write_all(raw.as_bytes()).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// Reads one complete (possibly multi-line) reply; "" on EOF.
    pub async fn reply(&mut self) -> String {
        loop {
            // A reply ends with a line whose 4th byte is a space (RFC 5321 4.2.1).
            let mut start = 0;
            while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
                let line = &self.buf[start..start + pos + 1];
                if line.len() >= 4 && line[3] == b' ' {
                    let all: Vec<u8> = self.buf.drain(..start + pos + 1).collect();
                    return String::from_utf8_lossy(&all).trim_end().to_string();
                }
                start += pos + 1;
            }
            let mut tmp = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(20), self.io.read(&mut tmp))
                .await
                .expect("server did not answer")
                .unwrap_or(0);
            if n == 0 {
                let rest: Vec<u8> = self.buf.drain(..).collect();
                return String::from_utf8_lossy(&rest).trim_end().to_string();
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Sends one command and returns its reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// True when the server closed the connection.
    pub async fn closed(&mut self) -> bool {
        let mut tmp = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(20), self.io.read(&mut tmp)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Upgrades to TLS, trusting only the fleet's certificate.
    pub async fn starttls(self, fleet: &Fleet, host: &str) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(fleet.tls_certificate().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls_pki_types::ServerName::try_from(host.to_string()).unwrap();
        let tls = connector.connect(name, self.io).await.unwrap();
        Client {
            io: Box::new(tls),
            buf: Vec::new(),
        }
    }
}
