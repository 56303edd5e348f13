//! The run loop of the embedded engine, shared by `rollcall verify` and the simulated-fleet
//! runs (`demo`, `bench`): it feeds an input row stream to the engine, writes every output
//! row to a `RowSink` as it comes (in input order through `reorder`, or as rows finish),
//! flushes about every second, drives the progress display and stops cleanly on a shutdown
//! signal. Owns the loop only: where rows come from and go to is the caller's, the formats are
//! `io`'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rollcall_engine::WorkerMetrics;
use rollcall_engine::coordinator::{InputRow, OutputRow};
use rollcall_engine::summary::Summary;
use tokio::sync::{mpsc, watch};

use crate::io::output::RowSink;
use crate::io::progress::Progress;
use crate::run::reorder::Reorder;
use crate::run::settings::Verifier;

/// The order output rows are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RowOrder {
    /// The input's order.
    #[default]
    Input,
    /// As rows finish.
    Completion,
}

/// Why a run could not finish (a verdict is never one of these).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("the engine failed: {0}")]
    Engine(#[from] rollcall_engine::Error),
}

/// How often the output is flushed: rows that are out are on disk within about this long.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const PROGRESS_TICK: Duration = Duration::from_millis(250);
/// Rows between the reader and the engine; the engine's own bound is `max_outstanding`.
pub const INPUT_CHANNEL: usize = 1024;
const OUTPUT_CHANNEL: usize = 4096;

/// Verifies `input` with the embedded engine, writing every output row to `sink` as it comes
/// (and flushing about every second and at the end), showing progress on `progress`. When
/// `shutdown` completes (e.g. `ctrl_c()`), the engine is stopped, the rows already out are
/// written and flushed, and the summary has `interrupted` set. On an output error the run is
/// stopped and the error returned.
pub async fn run_verification<P: Send + 'static>(
    verifier: Verifier,
    input: mpsc::Receiver<InputRow<P>>,
    sink: &mut dyn RowSink<P>,
    progress: &mut Progress,
    order: RowOrder,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, RunError> {
    // Count rows as the engine takes them, so the display's total grows while reading.
    let read = Arc::new(AtomicU64::new(0));
    let (engine_tx, engine_rx) = mpsc::channel(INPUT_CHANNEL);
    // In input order, a row is let in only while fewer than `window` rows are in the engine or
    // waiting in the reorder buffer: the buffer stays bounded, and the output is always
    // drained (a full buffer pauses reading, never the engine's output).
    let window = verifier.engine.max_outstanding.max(1);
    let reorder = Arc::new(Reorder::new(window));
    tokio::spawn(feed(input, engine_tx, order, reorder.clone(), read.clone()));
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_CHANNEL);
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = verifier.metrics.clone();
    // The progress display says what the last rows wait for.
    metrics.waiting.enable();
    let engine = tokio::spawn(rollcall_engine::embedded::run(
        verifier.engine,
        verifier.resolver,
        verifier.connector,
        verifier.metrics,
        engine_rx,
        out_tx,
        stop_rx,
        verifier.cache,
    ));
    let mut run = RunLoop {
        out: Out { sink, error: None },
        stop: stop_tx,
        progress,
        order,
        reorder: &reorder,
        read: &read,
        metrics: &metrics,
    };
    run.drive(out_rx, shutdown).await;
    // Stopped early: the rows that finished are written whole, in input order, even where
    // rows before them never came out.
    for row in reorder.drain() {
        run.out.write(&row);
    }
    run.out.flush();
    let write_error = run.out.error.take();
    progress.set_read(read.load(Ordering::Relaxed));
    progress.finish();
    let summary = match engine.await {
        Ok(result) => result?,
        Err(join) => {
            return Err(RunError::Engine(rollcall_engine::Error::Config {
                setting: "engine",
                reason: format!("the engine task failed: {join}"),
            }));
        }
    };
    match write_error {
        Some(e) => Err(RunError::Output(e)),
        None => Ok(summary),
    }
}

/// Hands the input rows to the engine, counting them in `read`; in input order, each waits for
/// room in the reorder buffer first.
async fn feed<P>(
    mut input: mpsc::Receiver<InputRow<P>>,
    engine: mpsc::Sender<InputRow<P>>,
    order: RowOrder,
    reorder: Arc<Reorder<P>>,
    read: Arc<AtomicU64>,
) {
    while let Some(row) = input.recv().await {
        if order == RowOrder::Input && !reorder.admit(row.row).await {
            break;
        }
        read.fetch_add(1, Ordering::Relaxed);
        if engine.send(row).await.is_err() {
            break;
        }
    }
}

/// The output of a run and its first error, after which nothing more is written.
struct Out<'a, P> {
    sink: &'a mut dyn RowSink<P>,
    error: Option<std::io::Error>,
}

impl<P> Out<'_, P> {
    /// Writes `row` unless an earlier write failed; true when this one failed.
    fn write(&mut self, row: &OutputRow<P>) -> bool {
        if self.error.is_some() {
            return false;
        }
        match self.sink.write_row(row) {
            Ok(()) => false,
            Err(e) => {
                self.error = Some(e);
                true
            }
        }
    }

    /// Flushes unless an earlier write failed; true when this flush failed.
    fn flush(&mut self) -> bool {
        if self.error.is_some() {
            return false;
        }
        match self.sink.flush() {
            Ok(()) => false,
            Err(e) => {
                self.error = Some(e);
                true
            }
        }
    }
}

/// What the loop of a run holds while the engine works.
struct RunLoop<'a, 'p, P> {
    out: Out<'a, P>,
    /// Tells the engine to stop (Ctrl-C, or the output failed).
    stop: watch::Sender<bool>,
    progress: &'p mut Progress,
    order: RowOrder,
    reorder: &'p Reorder<P>,
    read: &'p AtomicU64,
    metrics: &'p WorkerMetrics,
}

impl<P> RunLoop<'_, '_, P> {
    /// Runs until the engine drops its output sender: every row it emitted has been received.
    async fn drive(
        &mut self,
        mut out_rx: mpsc::Receiver<OutputRow<P>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(PROGRESS_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = Instant::now();
        let mut stopping = false;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                row = out_rx.recv() => match row {
                    Some(row) => self.finished(row),
                    None => break,
                },
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    let _ = self.stop.send(true);
                    self.progress.println("rollcall: stopping; writing the rows already verified");
                }
                _ = tick.tick() => {
                    self.progress.set_read(self.read.load(Ordering::Relaxed));
                    self.progress.set_waiting(self.metrics.waiting.summary());
                    self.progress.tick();
                    if self.out.error.is_none() && last_flush.elapsed() >= FLUSH_EVERY {
                        last_flush = Instant::now();
                        if self.out.flush() {
                            let _ = self.stop.send(true);
                        }
                    }
                }
            }
        }
    }

    /// Counts a finished row and writes the rows it lets out; the first failed write stops the
    /// engine.
    fn finished(&mut self, row: OutputRow<P>) {
        self.progress.record(row.verdict.status());
        let ready = match self.order {
            RowOrder::Completion => vec![row],
            RowOrder::Input => self.reorder.ready(row),
        };
        for row in ready {
            if self.out.write(&row) {
                let _ = self.stop.send(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use rollcall_engine::config::EngineConfig;

    use crate::config;
    use crate::io::output::InputShape;
    use crate::io::rows::{InputFormat, RowReader, spawn_reader};
    use crate::run::settings::verifier;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use rollcall_dns::ResolverConfig;
    use tokio::net::UdpSocket;

    use super::*;
    use crate::io::output::{CsvOutput, JsonlOutput};
    use crate::io::rows::Record;

    /// A nameserver on loopback that answers every query NXDOMAIN (RFC 1035 4.1.1), so every
    /// domain is unresolvable and nothing leaves the machine.
    async fn nxdomain_server() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let query = &buf[..n];
                if n < 12 {
                    continue;
                }
                // The question: labels up to the root label, then QTYPE and QCLASS.
                let mut end = 12;
                while end < n && query[end] != 0 {
                    end += 1 + query[end] as usize;
                }
                let end = (end + 5).min(n);
                let mut reply = Vec::with_capacity(end);
                reply.extend_from_slice(&query[..2]); // ID
                reply.push(0x80 | (query[2] & 0x79)); // QR, opcode, RD
                reply.push(0x80 | 3); // RA, RCODE=3 (NXDOMAIN)
                reply.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question, no records
                reply.extend_from_slice(&query[12..end]);
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        addr
    }

    async fn loopback_verifier() -> Verifier {
        let dns = nxdomain_server().await;
        let settings = config::Settings {
            engine: EngineConfig {
                helo_name: "probe.example.test".into(),
                mail_from: "verify@probe.example.test".into(),
                ..EngineConfig::default()
            },
            resolver: ResolverConfig {
                nameservers: vec![dns],
                timeout: Duration::from_secs(2),
                attempts: 1,
                ..ResolverConfig::default()
            },
            helo_defaulted: false,
            cache: Default::default(),
        };
        verifier(settings).unwrap()
    }

    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SharedBuf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    const LIST: &[u8] = b"name,email,team\n\
Ann,ann@nowhere.example,red\n\
Bob,not an address,blue\n\
Cy,ANN@nowhere.example,red\n\
Di,di@elsewhere.example,green,extra\n\
Ed,ed@elsewhere.example,blue\n\
Fi,ann@nowhere.example,red\n";

    async fn verify_csv(verifier: Verifier, out: SharedBuf, jsonl: bool) -> Summary {
        let reader = RowReader::open(
            Box::new(std::io::Cursor::new(LIST.to_vec())),
            InputFormat::Csv,
            None,
        )
        .unwrap();
        let shape = InputShape::Csv(reader.columns().to_vec());
        let mut sink: Box<dyn RowSink<Record>> = if jsonl {
            Box::new(JsonlOutput::new(out, shape))
        } else {
            Box::new(CsvOutput::new(out, shape).unwrap())
        };
        let (tx, rx) = mpsc::channel(4);
        let done = spawn_reader(reader, tx);
        let summary = run_verification(
            verifier,
            rx,
            sink.as_mut(),
            &mut Progress::hidden(),
            RowOrder::Input,
            std::future::pending(),
        )
        .await
        .unwrap();
        assert_eq!(done.await.unwrap().unwrap(), 6);
        summary
    }

    #[tokio::test]
    async fn every_row_comes_out_once_with_a_verdict() {
        let out = SharedBuf::default();
        let summary = verify_csv(loopback_verifier().await, out.clone(), false).await;
        assert_eq!((summary.rows, summary.out), (6, 6));
        assert_eq!(summary.duplicates, 2);
        assert!(!summary.interrupted);

        let text = out.text();
        let mut csv = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header,
            [
                "name",
                "email",
                "team",
                "status",
                "reason",
                "normalized",
                "domain",
                "did_you_mean",
                "mx",
                "provider",
                "egress",
                "smtp_code",
                "enhanced_code",
                "flags",
                "is_disposable",
                "is_role",
                "is_free",
                "is_catch_all",
                "duplicate",
                "detail",
                "smtp_text",
                "row",
                "cached",
                "verified_at",
                "changed",
                "score",
            ]
        );
        let mut by_row = BTreeMap::new();
        for record in csv.records() {
            let record = record.unwrap();
            let row: u64 = record[21].parse().unwrap();
            let fields: Vec<String> = record.iter().map(String::from).collect();
            assert!(
                by_row.insert(row, fields).is_none(),
                "row {row} written twice"
            );
        }
        assert_eq!(
            by_row.keys().copied().collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        let status = |row: u64| (by_row[&row][3].as_str(), by_row[&row][4].as_str());
        assert_eq!(status(1), ("undeliverable", "no_such_domain"));
        assert_eq!(status(2), ("undeliverable", "invalid_syntax"));
        assert_eq!(status(3), ("undeliverable", "no_such_domain"));
        assert_eq!(status(4), ("undeliverable", "invalid_syntax"));
        assert_eq!(status(5), ("undeliverable", "no_such_domain"));
        assert_eq!(status(6), ("undeliverable", "no_such_domain"));
        let duplicate = |row: u64| by_row[&row][18].as_str();
        assert_eq!(
            (duplicate(1), duplicate(3), duplicate(5), duplicate(6)),
            ("false", "true", "false", "true")
        );
        // The original columns are written back; the malformed record keeps the header's width.
        assert_eq!(by_row[&2][..3], ["Bob", "not an address", "blue"]);
        assert_eq!(by_row[&4][..3], ["Di", "di@elsewhere.example", "green"]);
        assert!(by_row[&4][19].starts_with("malformed input: the record has 4 fields"));
    }

    #[tokio::test]
    async fn jsonl_output_of_a_csv_run() {
        let out = SharedBuf::default();
        verify_csv(loopback_verifier().await, out.clone(), true).await;
        let lines: Vec<serde_json::Value> = out
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        let ann = lines.iter().find(|l| l["row"] == 1).unwrap();
        assert_eq!(ann["address"], "ann@nowhere.example");
        assert_eq!(ann["status"], "undeliverable");
        assert_eq!(ann["reason"], "no_such_domain");
        assert_eq!(ann["duplicate"], false);
        assert_eq!(ann["input"]["name"], "Ann");
        assert_eq!(ann["input"]["team"], "red");
        let di = lines.iter().find(|l| l["row"] == 4).unwrap();
        assert_eq!(di["reason"], "invalid_syntax");
        assert_eq!(di["input"]["_extra"], serde_json::json!(["extra"]));
    }

    #[tokio::test]
    async fn a_stopped_run_writes_only_whole_rows_once() {
        let out = SharedBuf::default();
        let reader = RowReader::open(
            Box::new(std::io::Cursor::new(LIST.to_vec())),
            InputFormat::Csv,
            None,
        )
        .unwrap();
        let mut sink =
            CsvOutput::new(out.clone(), InputShape::Csv(reader.columns().to_vec())).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let _done = spawn_reader(reader, tx);
        let summary = run_verification(
            loopback_verifier().await,
            rx,
            &mut sink,
            &mut Progress::hidden(),
            RowOrder::Input,
            std::future::ready(()),
        )
        .await
        .unwrap();
        assert!(summary.interrupted);
        let text = out.text();
        let mut csv = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<u64> = csv
            .records()
            .map(|r| r.unwrap()[12].parse().unwrap())
            .collect();
        assert_eq!(rows.len() as u64, summary.out);
        let mut unique = rows.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), rows.len());
    }
}
