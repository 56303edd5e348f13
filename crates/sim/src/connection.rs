//! One SMTP connection's I/O: the per-IP connection cap and connection rate, the greeting
//! (with the pregreet
//! check), reading command groups, the latency model, the pipelining synchronisation check
//! (RFC 2920 3.1) and the STARTTLS upgrade. What each command gets is `session`'s job.
//!
//! Latency model: the server sleeps `latency_ms` once per read that yields at least one
//! complete command line, then answers every complete line it holds and writes all those
//! replies at once. A lockstep client pays the latency once per command; a pipelining client
//! pays it once per group it sends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::anvil::Event;
use crate::command;
use crate::counters::bump;
use crate::session::{Session, Step};
use crate::shared::Shared;

/// Longest line we buffer before giving up on the client.
const MAX_LINE: usize = 4096;
/// One read takes up to this much: a pipelined group the client wrote at once is one read.
const READ_SIZE: usize = 64 * 1024;
/// Postfix `smtpd_timeout`.
const IDLE: Duration = Duration::from_secs(300);
const SYNC_ERROR: &[u8] = b"554 5.5.0 Error: SMTP protocol synchronization\r\n";

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

struct Conn {
    /// Declared first so it drops first: the session leaves the concurrency count before the
    /// socket closes, so a client that saw the close and connects again is never counted twice
    /// (Postfix's anvil, too, counts a client until smtpd reports the disconnect).
    slot: Option<crate::counters::SessionSlot>,
    io: Io,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    /// Reads whatever is readable right now without waiting (the "has the client sent ahead?"
    /// probe). Returns the number of bytes added.
    async fn read_now(&mut self) -> usize {
        if self.eof {
            return 0;
        }
        self.buf.reserve(READ_SIZE);
        tokio::select! {
            biased;
            r = self.io.read_buf(&mut self.buf) => match r {
                Ok(0) | Err(_) => { self.eof = true; 0 }
                Ok(n) => n,
            },
            () = std::future::ready(()) => 0,
        }
    }

    /// Waits for more bytes; false on EOF or error.
    async fn read_more(&mut self) -> bool {
        if self.eof {
            return false;
        }
        self.buf.reserve(READ_SIZE);
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => {
                self.eof = true;
                false
            }
            Ok(_) => true,
        }
    }

    fn has_line(&self) -> bool {
        self.buf.contains(&b'\n')
    }

    /// Takes one line off the buffer, without its LF or CRLF.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        let pos = self.buf.iter().position(|b| *b == b'\n')?;
        let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }
}

/// Serves one accepted connection to the end.
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, host: u32, shared: Arc<Shared>) {
    let stats = shared.stats[host as usize].clone();
    let entry = &shared.world.hosts[host as usize];
    let profile = entry.profile.clone();
    let name = entry.name.clone();
    let (slot, from_ip) = stats.open(peer.ip());
    let client = slot.client().clone();
    let connection_no = stats.connections.load(std::sync::atomic::Ordering::Relaxed);
    let mut conn = Conn {
        slot: Some(slot),
        io: Io::Plain(stream),
        buf: Vec::new(),
        eof: false,
    };
    // Postfix smtpd asks anvil once per connection, which counts it for both the concurrency
    // and the rate (refused connections included), then checks the concurrency first.
    let over_rate = shared.anvils[host as usize].over(peer.ip(), Event::Connection);
    let over_cap = from_ip > u64::from(profile.max_conns_per_ip);
    if over_cap || over_rate {
        bump(&stats.connections_refused);
        bump(&client.connections_refused);
        if !over_cap {
            bump(&stats.rate_limited);
            bump(&client.rate_limited);
        }
        let line = format!(
            "421 4.7.0 {name} Error: too many connections from {}\r\n",
            peer.ip()
        );
        let _ = conn.send(line.as_bytes()).await;
        return;
    }

    // Greeting. postscreen style: `220-` first, the final `220 ` after the delay; a client
    // that speaks before the final line fails the pregreet test.
    if profile.multiline_greeting {
        let first = format!("220-{name} ESMTP rollcall-sim\r\n");
        if conn.send(first.as_bytes()).await.is_err() {
            return;
        }
    }
    if profile.greeting_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(profile.greeting_delay_ms)).await;
    }
    if conn.read_now().await > 0 {
        bump(&stats.pregreet_violations);
    }
    let greeting = format!("220 {name} ESMTP rollcall-sim\r\n");
    if conn.send(greeting.as_bytes()).await.is_err() {
        return;
    }

    let mut session = Session::new(shared.clone(), host, peer.ip(), client, connection_no);
    let latency = Duration::from_millis(profile.latency_ms);
    loop {
        while !conn.has_line() {
            if conn.buf.len() > MAX_LINE {
                let _ = conn.send(b"500 5.5.0 Error: line too long\r\n").await;
                return;
            }
            match tokio::time::timeout(IDLE, conn.read_more()).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(_) => {
                    let line = format!("421 4.4.2 {name} Error: timeout exceeded\r\n");
                    let _ = conn.send(line.as_bytes()).await;
                    return;
                }
            }
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut out = Vec::new();
        while let Some(line) = conn.next_line() {
            // Anything already here after this command was sent before its reply was read.
            if conn.buf.is_empty() {
                conn.read_now().await;
            }
            let sent_ahead = !conn.buf.is_empty();
            let parsed = command::parse(&line);
            session.count_command();
            if sent_ahead && (!session.pipelining() || parsed.ends_group) {
                bump(&stats.pipelining_violations);
                out.extend_from_slice(SYNC_ERROR);
                let _ = conn.send(&out).await;
                return;
            }
            match session.handle(parsed.command, &mut out).await {
                Step::Continue => {}
                Step::Close => {
                    let _ = conn.send(&out).await;
                    // Out of the count before the client can see the close.
                    conn.slot.take();
                    let _ = conn.io.shutdown().await;
                    return;
                }
                Step::Drop => return,
                Step::StartTls => {
                    if conn.send(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                    let (Some(acceptor), Io::Plain(tcp)) = (shared.tls.clone(), conn.io) else {
                        return;
                    };
                    match acceptor.accept(tcp).await {
                        Ok(tls) => conn.io = Io::Tls(Box::new(tls)),
                        Err(_) => return,
                    }
                    session.tls_started();
                }
            }
        }
        if conn.send(&out).await.is_err() {
            return;
        }
    }
}
