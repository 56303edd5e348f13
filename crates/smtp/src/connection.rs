//! The socket and its read buffer: connect (with an optional egress address), write bytes,
//! read one complete reply, upgrade to TLS in place.
//!
//! Owns framing only (mini-redis `connection.rs`): the buffer is fed to the sans-IO parser and
//! nothing here knows which command a reply answers. Timeouts are applied by the caller per
//! phase.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use rollcall_smtp_proto::{Reply, ReplyParser};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::error::Error;
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
    buf: Vec<u8>,
    /// Where parsing of `buf` stopped: each byte is examined once however the server cuts
    /// its replies into segments (one byte per segment must not cost a re-scan per byte).
    parser: ReplyParser,
}

impl Connection {
    /// TCP connect, binding `local` first when given (egress address selection).
    pub(crate) async fn connect(
        addr: SocketAddr,
        local: Option<std::net::IpAddr>,
    ) -> Result<Self, Error> {
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
        Ok(Self {
            io: Transport::Plain(tcp),
            buf: Vec::with_capacity(1024),
            parser: ReplyParser::new(),
        })
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

    /// Best-effort close of the write side.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.io {
            Transport::Plain(s) => s.shutdown().await,
            Transport::Tls(s) => s.shutdown().await,
            Transport::Gone => Ok(()),
        }
    }
}
