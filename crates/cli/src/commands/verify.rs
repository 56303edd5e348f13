//! `rollcall verify`: verifies a list (text, CSV or JSONL) in this process and writes one result
//! per input row (CSV or JSONL), with a progress display and a summary on stderr.
//!
//! Also owns `run_verification`, the run loop shared with `rollcall demo`: it feeds an input
//! row stream to the embedded engine, writes every output row to a `RowSink` as it comes,
//! flushes about every second, drives the progress display and stops cleanly on a shutdown
//! signal (Ctrl-C, and SIGTERM for `verify`). Input formats are in `rows`, output formats in
//! `output`, settings in `config`; this module only wires them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rollcall_dns::MxResolver;
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::{InputRow, OutputRow};
use rollcall_engine::probe::Connector;
use rollcall_engine::summary::Summary;
use tokio::sync::{mpsc, watch};

use crate::config::{self, Config, EX_USAGE, EngineFlags};
use crate::io::console;
use crate::io::output::{FormulaGuard, InputShape, OutputFormat, RowSink, open_sink_guarded};
use crate::io::progress::{Progress, ProgressMode, interrupted_line, summary_table};
use crate::io::rows::{CsvChoice, InputFormat, RowReader, spawn_reader};

/// sysexits.h codes.
const EX_DATAERR: u8 = 65;
const EX_NOINPUT: u8 = 66;
const EX_SOFTWARE: u8 = 70;
const EX_CANTCREAT: u8 = 73;
const EX_IOERR: u8 = 74;
/// 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C.
const EX_INTERRUPTED: u8 = 130;
/// 128 + SIGTERM, what a shell reports for a program stopped by `kill`.
const EX_TERMINATED: u8 = 143;

const AFTER_HELP: &str = "\
Settings come from, lowest to highest: built-in defaults, the --config file, ROLLCALL_* \
environment variables, flags. Every setting, with comments and provider shaping entries \
(Google, Microsoft, Yahoo), is in deploy/config/rollcall.example.toml.

Input: text (one address per line; blank lines are skipped), CSV with a header row, or JSONL \
(the field is --column, else email or address). CSV: the delimiter is --delimiter, else the \
one of , ; tab | that splits the header line most; the address column is --column, else the \
column named like an address (email, e-mail, e-mail address, mail, work email...) when its \
first 100 values are mostly addresses, else the column whose values are; stderr says which \
and why, and a CSV where no column holds mostly addresses stops with exit code 65. \
Every input record gives exactly one output row; a malformed record (wrong CSV field count, \
bytes that are not UTF-8, a JSONL line that is not an object or lacks the field, a line or CSV \
record longer than 64 KiB, of which only the start is kept) is reported as \
undeliverable/invalid_syntax with the problem in `detail`. A CSV quoted field may span lines, \
but a quote still open at the end of the file or after 64 KiB is a mistake: its line is one \
invalid_syntax row (`detail` names the line) and the next line starts a new record, so no \
line is lost. A UTF-8 byte order mark before the first line is ignored.

Output: rows come out in input order (--order completion writes each as it finishes); the \
`row` column gives each \
row's input position (line number for text and JSONL, record number after the header for \
CSV). CSV columns: the input's columns (text: address; JSONL: address,input), then \
status,reason,mx,smtp_code,enhanced_code,flags,duplicate,detail,smtp_text,row. JSONL fields: \
row,address,status,reason,mx,smtp_code,enhanced_code,smtp_text,flags,duplicate,detail and \
input (the original fields).

Exit codes: 0 done, 64 bad flags or config, 65 CSV header unreadable (a quote never closed, \
longer than 64 KiB), 66 input not readable, 73 output not writable, 74 I/O error during the \
run, 130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (both: the rows verified so \
far are written whole, then the summary).";

/// Flags of `rollcall verify`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// The list to verify: a .txt (or any) file with one address per line, a .csv, a
    /// .jsonl/.ndjson file, or - for standard input (read as text unless --input-format).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,

    /// Where to write results; - or absent: standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,

    /// Output format. Default: jsonl for a .jsonl/.ndjson OUT, else csv.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,

    /// Input format, when the extension does not tell (.csv, .jsonl/.ndjson, else text).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,

    /// The CSV column or JSONL field holding the address. Default: detected (see above).
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,

    /// CSV field separator: `,` `;` `tab` or `|`. Default: detected from the header line.
    #[arg(long, value_name = "CHAR", value_parser = crate::io::rows::parse_delimiter)]
    pub delimiter: Option<u8>,

    /// Spreadsheet formula guard for CSV output (OWASP "CSV Injection"): `on` writes a single
    /// quote ' before every cell that starts with =, +, -, @, a tab or a CR (an input field, a
    /// server's reply text, an MX name), so Excel, LibreOffice or Google Sheets show it as text
    /// instead of running it. The rule applies to legitimate values too: an address or a reply
    /// text that starts with - or + comes out as '-... (strip the leading ' when a program reads
    /// the file). `off` writes cells as they are; JSONL output is never changed.
    #[arg(
        long,
        value_name = "on|off",
        default_value = "on",
        env = "ROLLCALL_CSV_FORMULA_GUARD"
    )]
    pub csv_formula_guard: FormulaGuard,

    /// Order of the output rows: `input` (the input's order, what a spreadsheet or CRM takes
    /// back; rows that finish early wait in a buffer of at most `engine.max_outstanding` rows,
    /// and reading pauses while it is full, so a row waiting out a greylist retry can hold up
    /// a long list for that long) or `completion` (each row as soon as it is done: the fastest
    /// for very large lists, sort by the `row` column afterwards).
    #[arg(
        long,
        value_name = "ORDER",
        default_value = "input",
        env = "ROLLCALL_ORDER"
    )]
    pub order: RowOrder,

    /// Progress on stderr: a bar on a terminal, a log line every 5 s otherwise (auto), or
    /// forced bar, log, or off (the summary is printed in every mode).
    #[arg(
        long,
        value_name = "MODE",
        default_value = "auto",
        env = "ROLLCALL_PROGRESS"
    )]
    pub progress: ProgressMode,

    /// Serve Prometheus metrics on ADDR (`GET /metrics`), e.g. 127.0.0.1:9185, to watch the
    /// run. Off by default.
    #[arg(long, value_name = "ADDR", env = "ROLLCALL_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Boxed: the engine flags are large, and `Command` holds one variant per command.
    #[command(flatten)]
    pub engine: Box<EngineFlags>,
}

/// The order output rows are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RowOrder {
    /// The input's order.
    #[default]
    Input,
    /// As rows finish.
    Completion,
}

/// What a run needs besides its rows: the engine's settings and its ports to the world.
pub(crate) struct Verifier {
    pub engine: Arc<EngineConfig>,
    pub resolver: MxResolver,
    pub connector: Arc<dyn Connector>,
    pub metrics: Arc<WorkerMetrics>,
}

/// Why a run could not finish (a verdict is never one of these).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("the engine failed: {0}")]
    Engine(#[from] rollcall_engine::Error),
}

/// How often the output is flushed: rows that are out are on disk within about this long.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const PROGRESS_TICK: Duration = Duration::from_millis(250);
/// Rows between the reader and the engine; the engine's own bound is `max_outstanding`.
const INPUT_CHANNEL: usize = 1024;
const OUTPUT_CHANNEL: usize = 4096;

/// Verifies `input` with the embedded engine, writing every output row to `sink` as it comes
/// (and flushing about every second and at the end), showing progress on `progress`. When
/// `shutdown` completes (e.g. `ctrl_c()`), the engine is stopped, the rows already out are
/// written and flushed, and the summary has `interrupted` set. On an output error the run is
/// stopped and the error returned.
pub(crate) async fn run_verification<P: Send + 'static>(
    verifier: Verifier,
    mut input: mpsc::Receiver<InputRow<P>>,
    sink: &mut dyn RowSink<P>,
    progress: &mut Progress,
    order: RowOrder,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, RunError> {
    // Count rows as the engine takes them, so the display's total grows while reading.
    let read = Arc::new(AtomicU64::new(0));
    let (engine_tx, engine_rx) = mpsc::channel(INPUT_CHANNEL);
    let counter = read.clone();
    // In input order, a row is let in only while fewer than `window` rows are in the engine or
    // waiting in the reorder buffer: the buffer stays bounded, and the output is always
    // drained (a full buffer pauses reading, never the engine's output).
    let window = verifier.engine.max_outstanding.max(1);
    let reorder = Arc::new(Reorder::new(window));
    let letting_in = reorder.clone();
    tokio::spawn(async move {
        while let Some(row) = input.recv().await {
            if order == RowOrder::Input && !letting_in.admit(row.row).await {
                break;
            }
            counter.fetch_add(1, Ordering::Relaxed);
            if engine_tx.send(row).await.is_err() {
                break;
            }
        }
    });
    let (out_tx, mut out_rx) = mpsc::channel(OUTPUT_CHANNEL);
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_metrics = verifier.metrics.clone();
    // The progress display says what the last rows wait for.
    worker_metrics.waiting.enable();
    let engine = tokio::spawn(rollcall_engine::embedded::run(
        verifier.engine,
        verifier.resolver,
        verifier.connector,
        verifier.metrics,
        engine_rx,
        out_tx,
        stop_rx,
    ));

    let mut tick = tokio::time::interval(PROGRESS_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_flush = Instant::now();
    let mut write_error: Option<std::io::Error> = None;
    let mut stopping = false;
    tokio::pin!(shutdown);
    // Runs until the engine drops its output sender: every row it emitted has been received.
    loop {
        tokio::select! {
            row = out_rx.recv() => match row {
                Some(row) => {
                    progress.record(row.verdict.status());
                    let ready = match order {
                        RowOrder::Completion => vec![row],
                        RowOrder::Input => reorder.ready(row),
                    };
                    for row in ready {
                        if write_error.is_none()
                            && let Err(e) = sink.write_row(&row)
                        {
                            write_error = Some(e);
                            let _ = stop_tx.send(true);
                        }
                    }
                }
                None => break,
            },
            () = &mut shutdown, if !stopping => {
                stopping = true;
                let _ = stop_tx.send(true);
                progress.println("rollcall: stopping; writing the rows already verified");
            }
            _ = tick.tick() => {
                progress.set_read(read.load(Ordering::Relaxed));
                progress.set_waiting(worker_metrics.waiting.summary());
                progress.tick();
                if write_error.is_none() && last_flush.elapsed() >= FLUSH_EVERY {
                    last_flush = Instant::now();
                    if let Err(e) = sink.flush() {
                        write_error = Some(e);
                        let _ = stop_tx.send(true);
                    }
                }
            }
        }
    }
    // Stopped early: the rows that finished are written whole, in input order, even where
    // rows before them never came out.
    for row in reorder.drain() {
        if write_error.is_none()
            && let Err(e) = sink.write_row(&row)
        {
            write_error = Some(e);
        }
    }
    if write_error.is_none()
        && let Err(e) = sink.flush()
    {
        write_error = Some(e);
    }
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

/// Completes on Ctrl-C (SIGINT); never, when signals cannot be listened to.
pub(crate) async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The signal that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Interrupt,
    Terminate,
}

/// SIGINT and SIGTERM, listened to from creation on: made before the first row is read, so a
/// signal during start-up stops the run cleanly instead of killing it without a summary.
struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// The first of the two to arrive; never, for one that cannot be listened to.
    async fn recv(&mut self) -> Stop {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => Stop::Interrupt,
            () = next(&mut self.terminate) => Stop::Terminate,
        }
    }
}

/// Why the engine's ports could not be built from valid-looking settings.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error("DNS: {0} (fix: --dns ADDR[:PORT] or [dns] servers)")]
    Dns(#[from] rollcall_dns::Error),
    #[error("SMTP identity: {0} (fix: --helo / --mail-from, or [identity])")]
    Smtp(String),
}

/// Builds the resolver and the connector for `settings`.
pub(crate) fn verifier(settings: config::Settings) -> Result<Verifier, SetupError> {
    let resolver = MxResolver::new(settings.resolver)?;
    let connector = rollcall_engine::connector(&settings.engine).map_err(SetupError::Smtp)?;
    Ok(Verifier {
        engine: Arc::new(settings.engine),
        resolver,
        connector,
        metrics: Arc::new(WorkerMetrics::default()),
    })
}

/// Loads the config file named by the flags (if any) and merges it with the flags. Prints the
/// one-line error and gives the exit code on failure.
pub(crate) fn load_settings(flags: &EngineFlags) -> Result<config::Settings, ExitCode> {
    let file = match &flags.config {
        Some(path) => Config::from_file(path),
        None => Ok(Config::default()),
    };
    let settings = file
        .and_then(|file| config::build_engine_config(&file, flags, &config::default_helo_name()));
    match settings {
        Ok(settings) => Ok(settings),
        Err(e) => {
            console::err_line(format_args!("rollcall: {e}"));
            Err(ExitCode::from(EX_USAGE))
        }
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    console::err_line(format_args!("rollcall: {message}"));
    Ok(ExitCode::from(code))
}

fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = match load_settings(&args.engine) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    if settings.helo_defaulted {
        console::err_line(format_args!(
            "rollcall: warning: no HELO name set, using `{}`; set --helo (or identity.helo) to a \
             name that resolves to your egress IP, or many servers will refuse the probes",
            settings.engine.helo_name
        ));
    }

    if let Some(listen) = args.metrics_listen
        && let Err(e) = crate::metrics::install(listen)
    {
        return fail(EX_USAGE, format!("{e:#}"));
    }

    let output = args.output.as_deref().filter(|p| !is_stdio(p));
    if let Some(out) = output
        && !is_stdio(&args.input)
        && same_file(&args.input, out)
    {
        return fail(
            EX_USAGE,
            "the output would overwrite the input; fix: give another -o",
        );
    }
    let input_format = args
        .input_format
        .unwrap_or_else(|| InputFormat::from_path(&args.input));
    let source: Box<dyn std::io::Read + Send> = if is_stdio(&args.input) {
        Box::new(std::io::stdin())
    } else {
        match File::open(&args.input) {
            // Opening a directory succeeds on Unix; reading it fails later as an I/O error.
            Ok(_) if args.input.is_dir() => {
                return fail(
                    EX_NOINPUT,
                    format!(
                        "cannot read {}: it is a directory; give a file",
                        args.input.display()
                    ),
                );
            }
            Ok(file) => Box::new(file),
            Err(e) => {
                return fail(
                    EX_NOINPUT,
                    format!("cannot open {}: {e}", args.input.display()),
                );
            }
        }
    };
    let choice = CsvChoice {
        column: args.column.as_deref(),
        delimiter: args.delimiter,
    };
    let reader = match RowReader::open_with(source, input_format, choice) {
        Ok(reader) => reader,
        Err(e) if e.is_usage() => return fail(EX_USAGE, e),
        Err(e) if e.is_data() => return fail(EX_DATAERR, e),
        Err(e) => return fail(EX_NOINPUT, e),
    };
    for note in reader.notes() {
        crate::io::console::err_line(format_args!("rollcall: {note}"));
    }
    let shape = match input_format {
        InputFormat::Text => InputShape::Text,
        InputFormat::Csv => InputShape::Csv(reader.columns().to_vec()),
        InputFormat::Jsonl => InputShape::Jsonl,
    };

    let format = args
        .format
        .unwrap_or_else(|| OutputFormat::from_path(output));
    let out: Box<dyn Write + Send> = match output {
        None => Box::new(std::io::stdout()),
        Some(path) => match File::create(path) {
            Ok(file) => Box::new(file),
            Err(e) => {
                return fail(
                    EX_CANTCREAT,
                    format!("cannot create {}: {e}", path.display()),
                );
            }
        },
    };
    let mut sink = match open_sink_guarded(format, out, shape, args.csv_formula_guard) {
        Ok(sink) => sink,
        Err(e) => return fail(EX_IOERR, format!("cannot write the output: {e}")),
    };

    let verifier = match verifier(settings) {
        Ok(v) => v,
        Err(e) => return fail(EX_USAGE, e),
    };
    let mut signals = StopSignals::listen();
    let mut stopped_by = None;
    let (tx, rx) = mpsc::channel(INPUT_CHANNEL);
    let reading = spawn_reader(reader, tx);
    let mut progress = Progress::new(args.progress, None);
    let shutdown = async { stopped_by = Some(signals.recv().await) };
    let result = run_verification(
        verifier,
        rx,
        sink.as_mut(),
        &mut progress,
        args.order,
        shutdown,
    )
    .await;
    drop(progress);
    let summary = match result {
        Ok(summary) => summary,
        Err(RunError::Output(e)) => return fail(EX_IOERR, format!("cannot write the output: {e}")),
        Err(e @ RunError::Engine(_)) => return fail(EX_SOFTWARE, e),
    };
    console::err_line(summary_table(&summary));
    if summary.interrupted {
        console::err_line(format_args!("rollcall: {}", interrupted_line(&summary)));
        return Ok(ExitCode::from(match stopped_by {
            Some(Stop::Terminate) => EX_TERMINATED,
            Some(Stop::Interrupt) | None => EX_INTERRUPTED,
        }));
    }
    // The engine has seen the end of the input; the reader says whether that was the real end.
    match reading.await {
        Ok(Err(e)) => fail(
            EX_IOERR,
            format!(
                "{e}; the output holds the {} rows read before it",
                summary.out
            ),
        ),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The reorder buffer of `RowOrder::Input`: rows are let in (`admit`) in input order while
/// fewer than `window` are in the engine or waiting here; a finished row waits until every
/// row before it is out.
struct Reorder<P> {
    window: Arc<tokio::sync::Semaphore>,
    inner: std::sync::Mutex<ReorderInner<P>>,
}

struct ReorderInner<P> {
    /// Row numbers let in and not written yet, in input order.
    order: std::collections::VecDeque<u64>,
    /// Finished rows waiting for the rows before them.
    done: std::collections::BTreeMap<u64, OutputRow<P>>,
}

impl<P> Reorder<P> {
    fn new(window: usize) -> Self {
        Reorder {
            window: Arc::new(tokio::sync::Semaphore::new(window)),
            inner: std::sync::Mutex::new(ReorderInner {
                order: Default::default(),
                done: Default::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReorderInner<P>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for room, then notes `row` as the next in input order. False when closed.
    async fn admit(&self, row: u64) -> bool {
        match self.window.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return false,
        }
        self.lock().order.push_back(row);
        true
    }

    /// Takes a finished row; returns the rows that can be written now, in input order.
    fn ready(&self, row: OutputRow<P>) -> Vec<OutputRow<P>> {
        let mut inner = self.lock();
        inner.done.insert(row.row, row);
        let mut out = Vec::new();
        while let Some(next) = inner.order.front().copied() {
            let Some(row) = inner.done.remove(&next) else {
                break;
            };
            inner.order.pop_front();
            out.push(row);
        }
        drop(inner);
        self.window.add_permits(out.len());
        out
    }

    /// Whatever finished and still waits (a run stopped early), in input order; no more rows
    /// are let in.
    fn drain(&self) -> Vec<OutputRow<P>> {
        self.window.close();
        let mut inner = self.lock();
        inner.order.clear();
        std::mem::take(&mut inner.done).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    fn out_row(row: u64) -> OutputRow<()> {
        OutputRow {
            row,
            text: format!("a{row}@example.test"),
            payload: (),
            verdict: Arc::new(rollcall_core::Verdict::new(
                rollcall_core::Reason::Accepted,
                rollcall_core::Evidence::for_input("x"),
            )),
            duplicate: false,
        }
    }

    #[tokio::test]
    async fn the_reorder_buffer_writes_input_order_and_bounds_what_it_holds() {
        let reorder: Reorder<()> = Reorder::new(3);
        for row in [1, 2, 3] {
            assert!(reorder.admit(row).await);
        }
        // A fourth row waits for room: three are in the engine or the buffer.
        let blocked = tokio::time::timeout(Duration::from_millis(50), reorder.admit(4)).await;
        assert!(blocked.is_err(), "the window bounds the rows let in");
        let rows = |out: Vec<OutputRow<()>>| out.iter().map(|r| r.row).collect::<Vec<_>>();
        assert_eq!(rows(reorder.ready(out_row(3))), Vec::<u64>::new());
        assert_eq!(rows(reorder.ready(out_row(2))), Vec::<u64>::new());
        assert_eq!(rows(reorder.ready(out_row(1))), vec![1, 2, 3]);
        assert!(reorder.admit(4).await, "room again once rows are out");
        assert!(reorder.admit(5).await);
        assert_eq!(rows(reorder.ready(out_row(5))), Vec::<u64>::new());
        // Stopped early: what finished comes out, in order, and nothing more is let in.
        assert_eq!(rows(reorder.drain()), vec![5]);
        assert!(!reorder.admit(6).await);
    }

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
                "mx",
                "smtp_code",
                "enhanced_code",
                "flags",
                "duplicate",
                "detail",
                "smtp_text",
                "row"
            ]
        );
        let mut by_row = BTreeMap::new();
        for record in csv.records() {
            let record = record.unwrap();
            let row: u64 = record[12].parse().unwrap();
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
        let duplicate = |row: u64| by_row[&row][9].as_str();
        assert_eq!(
            (duplicate(1), duplicate(3), duplicate(5), duplicate(6)),
            ("false", "true", "false", "true")
        );
        // The original columns are written back; the malformed record keeps the header's width.
        assert_eq!(by_row[&2][..3], ["Bob", "not an address", "blue"]);
        assert_eq!(by_row[&4][..3], ["Di", "di@elsewhere.example", "green"]);
        assert!(by_row[&4][10].starts_with("malformed input: the record has 4 fields"));
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

    #[test]
    fn help_explains_the_flags() {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--output",
            "--format",
            "--input-format",
            "--column",
            "--dns",
            "--smtp-port",
            "--helo",
            "--mail-from",
            "--config",
            "--greylist-retry",
            "--allow-private",
            "--tls",
            "--progress",
            "--csv-formula-guard",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
        assert!(help.contains("deploy/config/rollcall.example.toml"));
        assert!(help.contains("ROLLCALL_HELO"));
    }

    #[test]
    fn metrics_listen_takes_a_socket_address() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parsed =
            Cli::try_parse_from(["verify", "in.txt", "--metrics-listen", "127.0.0.1:9185"])
                .unwrap();
        assert_eq!(
            parsed.args.metrics_listen,
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9185)))
        );
        let unset = Cli::try_parse_from(["verify", "in.txt"]).unwrap();
        if std::env::var_os("ROLLCALL_METRICS_LISTEN").is_none() {
            assert_eq!(unset.args.metrics_listen, None);
        }
        assert!(
            Cli::try_parse_from(["verify", "in.txt", "--metrics-listen", "localhost"]).is_err()
        );
    }
}
