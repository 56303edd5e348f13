//! A server that dribbles one long reply one byte per read, as the driver sees it: the read
//! buffer grows by one byte and the parser is asked again after every read. Prints the reply's
//! size and the CPU-bound wall time of the whole feed; run it under `/usr/bin/time` for the
//! CPU figure.
//!
//! `cargo run --release -p rollcall-smtp-proto --example dribble -- [LINES] [LINE_LEN] [MODE]`
//! (defaults: 64 lines of 4096 bytes; MODE `stateless` asks `parse_reply` from byte 0 on every
//! read, `resumable` keeps one `ReplyParser` across reads).

use std::time::Instant;

use rollcall_smtp_proto::{ReplyParser, parse_reply};

fn main() {
    let mut args = std::env::args().skip(1);
    let lines: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let len: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4096);
    let mode = args.next().unwrap_or_else(|| "stateless".to_owned());
    let mut wire = Vec::new();
    for i in 0..lines {
        let sep = if i + 1 == lines { ' ' } else { '-' };
        wire.extend_from_slice(format!("250{sep}").as_bytes());
        wire.extend(std::iter::repeat_n(b'a', len.saturating_sub(4)));
        wire.extend_from_slice(b"\r\n");
    }
    let started = Instant::now();
    let mut buf = Vec::with_capacity(wire.len());
    let mut done = None;
    match mode.as_str() {
        "stateless" => {
            for &b in &wire {
                buf.push(b);
                match parse_reply(&buf) {
                    Ok(Some((reply, used))) => done = Some((reply.lines.len(), used)),
                    Ok(None) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
        "resumable" => {
            let mut parser = ReplyParser::new();
            for &b in &wire {
                buf.push(b);
                match parser.parse(&buf) {
                    Ok(Some((reply, used))) => done = Some((reply.lines.len(), used)),
                    Ok(None) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            println!("bytes examined: {}", parser.bytes_examined());
        }
        other => panic!("unknown mode {other}"),
    }
    println!(
        "mode={mode} bytes={} reply={done:?} elapsed={:?}",
        wire.len(),
        started.elapsed()
    );
}
