//! `rollcall verify`: verifies a list (text, CSV or JSONL) in this process and writes one result
//! per input row (CSV or JSONL), with a progress display and a summary on stderr.
//!
//! Owns the flags, the order of the start-up checks, the messages and the exit codes; the run
//! loop is `run::embedded`, the signals `run::signals`, input formats `io::rows`, output
//! formats `io::output`, settings `config` and `run::settings`. This module only wires them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rollcall_engine::summary::Summary;
use tokio::sync::{mpsc, oneshot};

use crate::config::EngineFlags;
use crate::exit::{
    EX_CANTCREAT, EX_DATAERR, EX_INTERRUPTED, EX_IOERR, EX_SOFTWARE, EX_TERMINATED, EX_USAGE,
    Failure, fail,
};
use crate::io::console;
use crate::io::flags::{InputFlags, OutputFlags, ProgressFlags, flag};
use crate::io::list::{self, is_stdio};
use crate::io::output::{
    ChangesOnly, FormulaGuard, InputShape, OutputFormat, RowSink, open_sink_guarded, result_prefix,
};
use crate::io::progress::{Progress, interrupted_line, summary_table};
use crate::io::rows::{CsvChoice, InputError, Record, spawn_reader};
use crate::run::cache::CacheFlags;
use crate::run::embedded::{INPUT_CHANNEL, RowOrder, RunError, run_verification};
use crate::run::settings::{load_settings, verifier};
use crate::run::signals::{Stop, StopSignals};

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
status,reason,normalized,domain,mx,egress,smtp_code,enhanced_code,flags,is_disposable,is_role,\
is_free,is_catch_all,duplicate,detail,smtp_text,row,cached,verified_at,changed. JSONL fields: \
the same names, and input (the original fields).

Result cache: verdicts are remembered in a SQLite file (--cache FILE; default \
$XDG_CACHE_HOME/rollcall/results.sqlite, else ~/.cache/rollcall/results.sqlite). An address \
whose cached verdict is fresh (deliverable 30d, undeliverable 90d, catch-all 7d, unknown never \
cached; [cache] in the config file) comes out at once with cached=true and its verified_at, \
and nothing is probed for it; the others are verified and written back. When a cached verdict \
was verified again (expired, --refresh, --max-age) and its status changed, `changed` says so \
(deliverable->undeliverable); --changes-only writes only those rows. --no-cache turns the \
cache off. `rollcall demo` and `rollcall bench` never use the cache, so their figures stay \
comparable.

Exit codes: 0 done, 64 bad flags or config, 65 bad input data (no column holds mostly \
addresses; a CSV header unreadable: a quote never closed, longer than 64 KiB), 66 input \
missing or not readable (a directory), 70 internal failure, 73 output not writable, 74 I/O \
error during the run, 130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (both: the rows verified so \
far are written whole, then the summary).";

/// Flags of `rollcall verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = AFTER_HELP,
    mut_args(flag("column", |a| a.help(
        "The CSV column or JSONL field holding the address. Default: detected (see above)"
    ))),
    mut_args(flag("progress", |a| a.help(
        "Progress on stderr: a bar on a terminal, a log line every 5 s otherwise (auto), or \
         forced bar, log, or off (the summary is printed in every mode)"
    ))),
)]
pub struct Args {
    /// The list to verify: a .txt (or any) file with one address per line, a .csv, a
    /// .jsonl/.ndjson file, or - for standard input (read as text unless --input-format).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,

    #[command(flatten)]
    pub results: OutputFlags,

    #[command(flatten)]
    pub list: InputFlags,

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

    #[command(flatten)]
    pub progress: ProgressFlags,

    #[command(flatten)]
    pub cache: CacheFlags,

    /// Write only the rows whose status changed since the cached verdict (a nightly hygiene
    /// job's report); the summary still counts every row.
    #[arg(long, env = "ROLLCALL_CHANGES_ONLY", value_parser = clap::builder::BoolishValueParser::new())]
    pub changes_only: bool,

    /// Serve Prometheus metrics on ADDR (`GET /metrics`), e.g. 127.0.0.1:9185, to watch the
    /// run. Off by default.
    #[arg(long, value_name = "ADDR", env = "ROLLCALL_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Also write the summary as JSON to FILE when the run ends (rows, rows written,
    /// duplicates, counts by status and by reason, whether it was interrupted, elapsed seconds,
    /// the exit code), for a scheduled job to check without parsing stderr.
    #[arg(long, value_name = "FILE", env = "ROLLCALL_SUMMARY_JSON")]
    pub summary_json: Option<PathBuf>,

    /// Boxed: the engine flags are large, and `Command` holds one variant per command.
    #[command(flatten)]
    pub engine: Box<EngineFlags>,
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
    let output = args.results.output.as_deref().filter(|p| !is_stdio(p));
    let list::List { reader, shape } = match open_input(&args, output) {
        Ok(list) => list,
        Err(failure) => return failure.exit(),
    };
    let mut sink = match open_output(&args, output, shape) {
        Ok(sink) => sink,
        Err(failure) => return failure.exit(),
    };
    let policy = settings.cache;
    let mut verifier = match verifier(settings) {
        Ok(v) => v,
        Err(e) => return fail(EX_USAGE, e),
    };
    verifier.cache = match args.cache.open(policy).await {
        Ok(cache) => cache,
        Err(failure) => return failure.exit(),
    };
    let mut signals = StopSignals::listen();
    let mut stopped_by = None;
    let (tx, rx) = mpsc::channel(INPUT_CHANNEL);
    let reading = spawn_reader(reader, tx);
    let mut progress = Progress::new(args.progress.progress, None);
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
    finish(&args, &summary, stopped_by, reading).await
}

/// Opens the list, refusing an output that would overwrite it.
fn open_input(args: &Args, output: Option<&Path>) -> Result<list::List, Failure> {
    if let Some(out) = output
        && !is_stdio(&args.input)
        && same_file(&args.input, out)
    {
        return Err(Failure::new(
            EX_USAGE,
            "the output would overwrite the input; fix: give another -o",
        ));
    }
    let choice = CsvChoice {
        column: args.list.column.as_deref(),
        delimiter: args.delimiter,
    };
    list::open(&args.input, args.list.input_format, choice, true)
}

/// Creates the output (standard output when `output` is `None`) and its writer.
fn open_output(
    args: &Args,
    output: Option<&Path>,
    shape: InputShape,
) -> Result<Box<dyn RowSink<Record> + Send>, Failure> {
    let format = args
        .results
        .format
        .unwrap_or_else(|| OutputFormat::from_path(output));
    // Before the output file is made: a refused run leaves none behind.
    if let (InputShape::Csv(columns), OutputFormat::Csv) = (&shape, format) {
        match result_prefix(columns) {
            Ok("") => {}
            Ok(prefix) => console::err_line(format_args!(
                "rollcall: the input already has result columns (a results file?); the new \
                 results are in the columns {prefix}status, {prefix}reason, ..."
            )),
            Err(taken) => {
                return Err(Failure::new(
                    EX_DATAERR,
                    format!(
                        "the input already has the columns {}; remove them (or verify the \
                         original list) so the new results do not stand beside old ones",
                        taken.join(", ")
                    ),
                ));
            }
        }
    }
    let out: Box<dyn Write + Send> = match output {
        None => Box::new(std::io::stdout()),
        Some(path) => match File::create(path) {
            Ok(file) => Box::new(file),
            Err(e) => {
                return Err(Failure::new(
                    EX_CANTCREAT,
                    format!("cannot create {}: {e}", path.display()),
                ));
            }
        },
    };
    let sink = open_sink_guarded(format, out, shape, args.csv_formula_guard)
        .map_err(|e| Failure::new(EX_IOERR, format!("cannot write the output: {e}")))?;
    Ok(if args.changes_only {
        Box::new(ChangesOnly(sink))
    } else {
        sink
    })
}

/// Prints the summary (and writes it as JSON when asked) and gives the exit code of a run that
/// went to its end or was stopped.
async fn finish(
    args: &Args,
    summary: &Summary,
    stopped_by: Option<Stop>,
    reading: oneshot::Receiver<Result<u64, InputError>>,
) -> anyhow::Result<ExitCode> {
    console::err_line(summary_table(summary));
    let (code, problem) = if summary.interrupted {
        let code = match stopped_by {
            Some(Stop::Terminate) => EX_TERMINATED,
            Some(Stop::Interrupt) | None => EX_INTERRUPTED,
        };
        (code, Some(interrupted_line(summary)))
    } else {
        // The engine has seen the end of the input; the reader says whether that was the
        // real end.
        match reading.await {
            Ok(Err(e)) => (
                EX_IOERR,
                Some(format!(
                    "{e}; the output holds the {} rows read before it",
                    summary.out
                )),
            ),
            _ => (0, None),
        }
    };
    if let Some(path) = &args.summary_json
        && let Err(e) = write_summary_json(path, args, summary, code)
    {
        let message = format!("cannot write the summary to {}: {e}", path.display());
        return fail(if code == 0 { EX_IOERR } else { code }, message);
    }
    match problem {
        Some(message) => fail(code, message),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// `--summary-json FILE`: what the summary table says, for a program (a cron job's check).
fn write_summary_json(
    path: &Path,
    args: &Args,
    summary: &Summary,
    exit_code: u8,
) -> std::io::Result<()> {
    let by_status: serde_json::Map<String, serde_json::Value> = Summary::STATUS_NAMES
        .iter()
        .zip(summary.by_status)
        .map(|(name, n)| ((*name).to_string(), n.into()))
        .collect();
    let json = serde_json::json!({
        "input": args.input.display().to_string(),
        "output": args.results.output.as_ref().map(|p| p.display().to_string()),
        "rows": summary.rows,
        "written": summary.out,
        "duplicates": summary.duplicates,
        "cached": summary.cached,
        "cache_misses": summary.cache_misses,
        "changed": summary.changed,
        "cache_errors": summary.cache_errors,
        "by_status": by_status,
        "by_reason": summary.by_reason,
        "second_pass": summary.second_pass,
        "unknown_by_provider": summary.unknown_by,
        "interrupted": summary.interrupted,
        "elapsed_secs": summary.elapsed.as_secs_f64(),
        "exit_code": exit_code,
    });
    let mut text = serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "--cache",
            "--no-cache",
            "--refresh",
            "--max-age",
            "--changes-only",
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
