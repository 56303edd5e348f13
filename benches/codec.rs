//! Criterion benches for the hot pure paths: parsing server replies and classifying them.
//! Run: `cargo bench --bench codec` (figures in docs/BENCHMARKS.md).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rollcall_core::{CommandKind, EnhancedCode, Reply, classify};
use rollcall_smtp_proto::{ReplyParser, parse_reply};

const EHLO: &[u8] = b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n\
250-SMTPUTF8\r\n250 CHUNKING\r\n";
const RCPT_OK: &[u8] = b"250 2.1.5 Ok\r\n";
const RCPT_UNKNOWN: &[u8] = b"550 5.1.1 <nobody@example.test>: Recipient address rejected: \
User unknown in virtual mailbox table\r\n";

fn parser(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_reply");
    for (name, bytes) in [
        ("ehlo_11_lines", EHLO),
        ("rcpt_ok", RCPT_OK),
        ("rcpt_unknown", RCPT_UNKNOWN),
    ] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_reply(black_box(bytes))));
    }
    // A pipelined group's replies arriving in one read: 50 RCPT replies back to back.
    let many: Vec<u8> = RCPT_OK
        .iter()
        .copied()
        .cycle()
        .take(RCPT_OK.len() * 50)
        .collect();
    group.throughput(Throughput::Elements(50));
    group.bench_function("50_rcpt_replies_in_one_buffer", |b| {
        b.iter(|| {
            let mut rest = black_box(&many[..]);
            let mut n = 0;
            while let Ok(Some((_, used))) = parse_reply(rest) {
                rest = &rest[used..];
                n += 1;
            }
            n
        })
    });
    // A server dribbling a 16-line, 16 KiB reply one byte per read: the driver asks its
    // parser again after every byte. The kept parser's cost per byte is flat.
    let dribbled: Vec<u8> = (0..16)
        .flat_map(|i| {
            let sep = if i == 15 { b' ' } else { b'-' };
            let mut line = vec![b'2', b'5', b'0', sep];
            line.extend(std::iter::repeat_n(b'a', 1018));
            line.extend_from_slice(b"\r\n");
            line
        })
        .collect();
    group.throughput(Throughput::Bytes(dribbled.len() as u64));
    group.bench_function("dribbled_16k_one_byte_per_read", |b| {
        b.iter(|| {
            let wire = black_box(&dribbled[..]);
            let mut parser = ReplyParser::new();
            let mut done = 0;
            for end in 1..=wire.len() {
                if let Ok(Some((_, used))) = parser.parse(&wire[..end]) {
                    done = used;
                }
            }
            done
        })
    });
    group.finish();
}

fn classifier(c: &mut Criterion) {
    let cases: [(u16, &str, &str); 6] = [
        (250, "2.1.5", "Ok"),
        (
            550,
            "5.1.1",
            "<nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table",
        ),
        (
            450,
            "4.2.0",
            "<a@example.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.test.html",
        ),
        (550, "5.7.1", "No such user!"),
        (
            550,
            "5.7.1",
            "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        ),
        (452, "4.5.3", "Error: too many recipients"),
    ];
    let replies: Vec<Reply> = cases
        .iter()
        .map(|(code, enhanced, text)| Reply::new(*code, EnhancedCode::parse(enhanced), text))
        .collect();
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(replies.len() as u64));
    group.bench_function("six_common_replies", |b| {
        b.iter(|| {
            for reply in &replies {
                black_box(classify(CommandKind::RcptTo, black_box(reply)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, parser, classifier);
criterion_main!(benches);
