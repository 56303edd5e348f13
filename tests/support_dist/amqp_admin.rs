//! Deletes a test's RabbitMQ queues and exchanges: a minimal AMQP 0-9-1 client (PLAIN login
//! as guest, one channel, `queue.delete` and `exchange.delete`) over std's TcpStream.
//!
//! The names are the topology's (crates/amqp/src/topology.rs: `P.work`, `P.dlx`, `P.dead`,
//! `P.shard.<i>`, `P.delay.<d>` for the default retry ladder), plus whatever else
//! `rabbitmqctl list_queues` / `list_exchanges` shows under the prefix when rabbitmqctl is at
//! hand. Deleting a name that does not exist is not an error for RabbitMQ.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const FRAME_METHOD: u8 = 1;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;

/// The default retry ladder's rung names (`AmqpConfig::default().delays`).
const DELAY_LABELS: [&str; 6] = ["1s", "5s", "30s", "2m", "10m", "1h"];

/// Deletes every queue and exchange named under `prefix.`.
pub fn delete_topology(prefix: &str, shards: u32) -> io::Result<()> {
    let mut queues: Vec<String> = (0..shards)
        .map(|i| format!("{prefix}.shard.{i}"))
        .chain(DELAY_LABELS.iter().map(|d| format!("{prefix}.delay.{d}")))
        .chain([format!("{prefix}.dead")])
        .collect();
    let mut exchanges: Vec<String> = [format!("{prefix}.work"), format!("{prefix}.dlx")]
        .into_iter()
        .chain(DELAY_LABELS.iter().map(|d| format!("{prefix}.delay.{d}")))
        .collect();
    let own = format!("{prefix}.");
    for name in rabbitmqctl_names("list_queues") {
        if name.starts_with(&own) && !queues.contains(&name) {
            queues.push(name);
        }
    }
    for name in rabbitmqctl_names("list_exchanges") {
        if name.starts_with(&own) && !exchanges.contains(&name) {
            exchanges.push(name);
        }
    }
    let mut link = Link::open()?;
    for queue in &queues {
        // queue.delete: reserved short, queue, flags (if-unused, if-empty, no-wait) = 0.
        let mut args = 0u16.to_be_bytes().to_vec();
        short_string(&mut args, queue);
        args.push(0);
        link.call(50, 40, &args, (50, 41))?;
    }
    for exchange in &exchanges {
        // exchange.delete: reserved short, exchange, flags (if-unused, no-wait) = 0.
        let mut args = 0u16.to_be_bytes().to_vec();
        short_string(&mut args, exchange);
        args.push(0);
        link.call(40, 20, &args, (40, 21))?;
    }
    link.close()
}

/// Messages in the retry ladder of `prefix` (the rungs of the default ladder), counted with
/// passive `queue.declare`s.
pub fn ladder_messages(prefix: &str) -> io::Result<u64> {
    let mut link = Link::open()?;
    let mut total = 0;
    for label in DELAY_LABELS {
        // queue.declare: reserved short, queue, flags (bit 0: passive), arguments (empty).
        let mut args = 0u16.to_be_bytes().to_vec();
        short_string(&mut args, &format!("{prefix}.delay.{label}"));
        args.push(1);
        args.extend_from_slice(&0u32.to_be_bytes());
        let ok = link.call_for(50, 10, &args, (50, 11))?;
        // queue.declare-ok: queue (short string), message-count (long), consumer-count.
        let count = ok
            .first()
            .map(|&len| 1 + usize::from(len))
            .and_then(|at| ok.get(at..at + 4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| protocol_error("short queue.declare-ok".into()))?;
        total += u64::from(count);
    }
    link.close()?;
    Ok(total)
}

/// For a failed test's log: each queue under `prefix.` with its ready and unacknowledged
/// messages and its consumers (`rabbitmqctl list_queues`); why not, when that fails.
pub fn queue_report(prefix: &str) -> String {
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let own = format!("{prefix}.");
            let text = String::from_utf8_lossy(&out.stdout);
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&own)).collect();
            format!("queue, ready, unacked, consumers:\n{}", lines.join("\n"))
        }
        Ok(out) => format!(
            "rabbitmqctl list_queues failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("rabbitmqctl list_queues: {e}"),
    }
}

/// The names `rabbitmqctl -q LIST name` prints; none when rabbitmqctl is missing or fails.
fn rabbitmqctl_names(list: &str) -> Vec<String> {
    Command::new("rabbitmqctl")
        .args(["-q", list, "name"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn short_string(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
}

fn long_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn protocol_error(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One connection with channel 1 open.
struct Link {
    stream: TcpStream,
}

impl Link {
    fn open() -> io::Result<Link> {
        let stream = TcpStream::connect(("127.0.0.1", 5672))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut link = Link { stream };
        link.stream.write_all(b"AMQP\x00\x00\x09\x01")?;
        link.expect(0, (10, 10))?; // connection.start

        let mut start_ok = Vec::new();
        start_ok.extend_from_slice(&0u32.to_be_bytes()); // client properties: empty table
        short_string(&mut start_ok, "PLAIN");
        long_string(&mut start_ok, b"\0guest\0guest");
        short_string(&mut start_ok, "en_US");
        link.send(0, 10, 11, &start_ok)?;

        let tune = link.expect(0, (10, 30))?;
        let (channel_max, frame_max) = match tune.as_slice() {
            [a, b, c, d, e, f, ..] => (
                u16::from_be_bytes([*a, *b]),
                u32::from_be_bytes([*c, *d, *e, *f]),
            ),
            _ => return Err(protocol_error("short connection.tune".into())),
        };
        let mut tune_ok = channel_max.to_be_bytes().to_vec();
        tune_ok.extend_from_slice(&frame_max.to_be_bytes());
        tune_ok.extend_from_slice(&0u16.to_be_bytes()); // no heartbeats
        link.send(0, 10, 31, &tune_ok)?;

        let mut open = Vec::new();
        short_string(&mut open, "/");
        short_string(&mut open, "");
        open.push(0);
        link.send(0, 10, 40, &open)?;
        link.expect(0, (10, 41))?;
        link.open_channel()?;
        Ok(link)
    }

    fn open_channel(&mut self) -> io::Result<()> {
        let mut open = Vec::new();
        short_string(&mut open, "");
        self.send(1, 20, 10, &open)?;
        self.expect(1, (20, 11)).map(drop)
    }

    /// Calls a method on channel 1 and waits for `ok`. A channel.close from the broker (the
    /// call was refused) is acknowledged, the channel reopened, and the refusal returned.
    fn call(&mut self, class: u16, method: u16, args: &[u8], ok: (u16, u16)) -> io::Result<()> {
        self.call_for(class, method, args, ok).map(drop)
    }

    /// Like `call`; returns the arguments of `ok`.
    fn call_for(
        &mut self,
        class: u16,
        method: u16,
        args: &[u8],
        ok: (u16, u16),
    ) -> io::Result<Vec<u8>> {
        self.send(1, class, method, args)?;
        let (channel, got, payload) = self.read_method()?;
        if channel == 1 && got == ok {
            return Ok(payload);
        }
        if channel == 1 && got == (20, 40) {
            self.send(1, 20, 41, &[])?;
            self.open_channel()?;
            let text = payload.get(3..).map(String::from_utf8_lossy);
            return Err(protocol_error(format!(
                "broker refused ({class}, {method}): {}",
                text.unwrap_or_default()
            )));
        }
        Err(protocol_error(format!(
            "unexpected method {got:?} on channel {channel}"
        )))
    }

    fn close(mut self) -> io::Result<()> {
        let mut close = 200u16.to_be_bytes().to_vec();
        short_string(&mut close, "done");
        close.extend_from_slice(&0u16.to_be_bytes());
        close.extend_from_slice(&0u16.to_be_bytes());
        self.send(0, 10, 50, &close)?;
        self.expect(0, (10, 51)).map(drop)
    }

    fn send(&mut self, channel: u16, class: u16, method: u16, args: &[u8]) -> io::Result<()> {
        let mut payload = class.to_be_bytes().to_vec();
        payload.extend_from_slice(&method.to_be_bytes());
        payload.extend_from_slice(args);
        let mut frame = vec![FRAME_METHOD];
        frame.extend_from_slice(&channel.to_be_bytes());
        frame.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame.push(FRAME_END);
        self.stream.write_all(&frame)
    }

    /// The next method frame (heartbeats skipped): its channel, (class, method) and arguments.
    fn read_method(&mut self) -> io::Result<(u16, (u16, u16), Vec<u8>)> {
        loop {
            let mut header = [0u8; 7];
            self.stream.read_exact(&mut header)?;
            let kind = header[0];
            let channel = u16::from_be_bytes([header[1], header[2]]);
            let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
            let mut payload = vec![0u8; size as usize + 1];
            self.stream.read_exact(&mut payload)?;
            if payload.pop() != Some(FRAME_END) {
                return Err(protocol_error("frame without its end octet".into()));
            }
            match kind {
                FRAME_HEARTBEAT => continue,
                FRAME_METHOD if payload.len() >= 4 => {
                    let class = u16::from_be_bytes([payload[0], payload[1]]);
                    let method = u16::from_be_bytes([payload[2], payload[3]]);
                    return Ok((channel, (class, method), payload[4..].to_vec()));
                }
                _ => return Err(protocol_error(format!("unexpected frame type {kind}"))),
            }
        }
    }

    fn expect(&mut self, channel: u16, want: (u16, u16)) -> io::Result<Vec<u8>> {
        let (got_channel, got, payload) = self.read_method()?;
        if (got_channel, got) == (channel, want) {
            Ok(payload)
        } else {
            Err(protocol_error(format!(
                "expected {want:?} on channel {channel}, got {got:?} on {got_channel}"
            )))
        }
    }
}
