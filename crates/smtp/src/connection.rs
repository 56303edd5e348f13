//! The socket and its read buffer: connect (directly with an optional egress address, or
//! through a SOCKS5 proxy), write bytes, read one complete reply, upgrade to TLS in place.
//!
//! Owns framing only (mini-redis `connection.rs`): the buffer is fed to the sans-IO parser and
//! nothing here knows which command a reply answers. Timeouts are applied by the caller per
//! phase.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use rollcall_smtp_proto::{Reply, ReplyParser};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::error::Error;
use crate::proxy::{self, Socks5Proxy};
use crate::tls::{self, TlsInfo};
use crate::transcript::Transcript;

/// Most bytes [`Connection::read_ahead`] takes in: one byte out of turn already condemns the
/// session; this is only what the transcript gets to show.
const READ_AHEAD_LIMIT: usize = 4096;

enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between taking the plain socket for the handshake and getting the TLS one back, or
    /// after a failed handshake.
    Gone,
}

pub(crate) struct Connection {
    io: Transport,
    /// This end of the TCP connection (to the proxy, when there is one).
    local: Option<SocketAddr>,
    buf: Vec<u8>,
    /// Where parsing of `buf` stopped: each byte is examined once however the server cuts
    /// its replies into segments (one byte per segment must not cost a re-scan per byte).
    parser: ReplyParser,
}

impl Connection {
    /// TCP connect, through `proxy` when given, else directly, binding `local` first when
    /// given (egress address selection). The two exclude each other; the caller has checked
    /// that (`ClientConfig::validate`), and `local` is not used with a proxy.
    pub(crate) async fn connect(
        addr: SocketAddr,
        local: Option<std::net::IpAddr>,
        proxy: Option<&Socks5Proxy>,
    ) -> Result<Self, Error> {
        let tcp = match proxy {
            // Past the handshake the tunnel is a plain TcpStream: STARTTLS upgrades it exactly
            // as it upgrades a direct connection.
            Some(proxy) => proxy::tunnel(proxy, addr).await?,
            None => Self::connect_direct(addr, local).await?,
        };
        Ok(Self {
            local: tcp.local_addr().ok(),
            io: Transport::Plain(tcp),
            buf: Vec::with_capacity(1024),
            parser: ReplyParser::new(),
        })
    }

    async fn connect_direct(
        addr: SocketAddr,
        local: Option<std::net::IpAddr>,
    ) -> Result<TcpStream, Error> {
        let fail = |source| Error::Connect { addr, source };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(fail)?;
        if let Some(ip) = local {
            socket.bind(SocketAddr::new(ip, 0)).map_err(fail)?;
        }
        let tcp = socket.connect(addr).await.map_err(fail)?;
        // Commands are small and latency-bound.
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// This end of the TCP connection: the egress address servers see (without a proxy).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match &mut self.io {
            Transport::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await?;
            }
            Transport::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await?;
            }
            Transport::Gone => return Err(Error::Closed),
        }
        Ok(())
    }

    /// Reads until one complete reply is buffered; leaves any following bytes (the next
    /// pipelined reply) in the buffer.
    pub(crate) async fn read_reply(
        &mut self,
        transcript: Option<&mut Transcript>,
    ) -> Result<Reply, Error> {
        loop {
            if let Some((reply, used)) = self.parser.parse(&self.buf)? {
                if let Some(t) = transcript {
                    t.server(&self.buf[..used]);
                }
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0u8; 4096];
            let n = match &mut self.io {
                Transport::Plain(s) => s.read(&mut chunk).await?,
                Transport::Tls(s) => s.read(&mut chunk).await?,
                Transport::Gone => return Err(Error::Closed),
            };
            if n == 0 {
                return Err(Error::Eof);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Takes in what the server has already sent, without waiting for more, and returns the
    /// bytes now buffered that no command has asked for (the caller asks when every command
    /// written so far has had its reply). Stops at EOF, on an error (the next read reports it)
    /// or once [`READ_AHEAD_LIMIT`] bytes are buffered (enough to know the server is talking
    /// out of turn).
    pub(crate) async fn read_ahead(&mut self) -> &[u8] {
        let mut chunk = [0u8; 4096];
        while self.buf.len() < READ_AHEAD_LIMIT {
            let io = &mut self.io;
            // One poll: Ready means bytes (or EOF) were already there; Pending means the
            // server is quiet now.
            let n = poll_fn(|cx| {
                let mut read = ReadBuf::new(&mut chunk);
                let polled = match io {
                    Transport::Plain(s) => Pin::new(s).poll_read(cx, &mut read),
                    Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, &mut read),
                    Transport::Gone => return Poll::Ready(0),
                };
                Poll::Ready(match polled {
                    Poll::Ready(Ok(())) => read.filled().len(),
                    Poll::Ready(Err(_)) | Poll::Pending => 0,
                })
            })
            .await;
            if n == 0 {
                break;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        &self.buf
    }

    /// Upgrades the plain socket after STARTTLS's 220.
    pub(crate) async fn start_tls(&mut self, name: ServerName<'static>) -> Result<TlsInfo, Error> {
        // RFC 3207 5 / CVE-2011-0411: plaintext that arrived after the 220 must not be read as
        // if it came through TLS.
        self.buf.clear();
        self.parser.reset();
        let tcp = match std::mem::replace(&mut self.io, Transport::Gone) {
            Transport::Plain(tcp) => tcp,
            other => {
                self.io = other;
                return Err(Error::Tls("not a plain connection".into()));
            }
        };
        let (stream, info) = tls::handshake(tcp, name).await.map_err(Error::Tls)?;
        self.io = Transport::Tls(Box::new(stream));
        Ok(info)
    }

    /// Reads (and discards) until the server closes its side: after the 221 to QUIT the server
    /// closes the channel (RFC 5321 4.1.1.10). Waiting for that before giving a session slot
    /// back means the server, which counts the connection until it has closed it, never sees
    /// one more session than the cap. Callers bound this with a timeout.
    pub(crate) async fn await_close(&mut self) {
        let mut chunk = [0u8; 512];
        // Bounded: a server that keeps talking after 221 gets at most this much attention.
        for _ in 0..16 {
            let read = match &mut self.io {
                Transport::Plain(s) => s.read(&mut chunk).await,
                Transport::Tls(s) => s.read(&mut chunk).await,
                Transport::Gone => return,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Best-effort close of the write side, within `within`. On TLS this writes close_notify
    /// first (RFC 8446 6.1), which waits for room in the socket: a server that stopped reading
    /// would otherwise hold the session (and its leases) forever. Past the bound the socket is
    /// simply dropped with the connection.
    pub(crate) async fn shutdown(&mut self, within: Duration) -> io::Result<()> {
        let close = async {
            match &mut self.io {
                Transport::Plain(s) => s.shutdown().await,
                Transport::Tls(s) => s.shutdown().await,
                Transport::Gone => Ok(()),
            }
        };
        match tokio::time::timeout(within, close).await {
            Ok(done) => done,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "close did not complete in time",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::net::TcpSocket;

    use super::*;

    fn acceptor() -> tokio_rustls::TlsAcceptor {
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
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    #[tokio::test(start_paused = true)]
    async fn tls_close_is_bounded_when_the_server_stops_reading() {
        // The server completes the handshake, then never reads again: once the socket
        // buffers are full, close_notify cannot be written.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor().accept(tcp).await.unwrap();
            let _ = stop_rx.await;
            drop(tls);
        });
        let mut conn = Connection::connect(addr, None, None).await.unwrap();
        let name = ServerName::try_from("mx.example.test").unwrap();
        conn.start_tls(name).await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut full = false;
        for _ in 0..10_000 {
            if tokio::time::timeout(Duration::from_secs(1), conn.write(&chunk))
                .await
                .is_err()
            {
                full = true;
                break;
            }
        }
        assert!(full, "the socket never filled up");
        let closed = tokio::time::timeout(
            Duration::from_secs(60),
            conn.shutdown(Duration::from_secs(2)),
        )
        .await
        .expect("shutdown has no bound");
        assert_eq!(closed.unwrap_err().kind(), io::ErrorKind::TimedOut);
        let _ = stop_tx.send(());
        server.await.unwrap();
    }
}
