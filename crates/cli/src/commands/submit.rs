//! `rollcall submit`: streams a list (text, CSV or JSONL, read as `rollcall verify` reads it)
//! to a coordinator in chunks of `CHUNK` addresses and prints the new campaign's id and counts.
//! With `--wait` it then follows the campaign (see `watch`) and writes every result with the
//! input's own row numbers and fields.
//!
//! Owns the upload only. A list that cannot be read to its end is not submitted at all: the
//! call is abandoned, and the coordinator drops what it had received.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use rollcall_api::v1;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::commands::watch::{Remote, Results, follow, report, results_sink};
use crate::io::output::{InputShape, OutputFormat};
use crate::io::progress::{Progress, ProgressMode};
use crate::io::rows::{InputFormat, Record, RowReader, spawn_reader};

/// Addresses per submitted chunk.
const CHUNK: usize = 1_000;
const EX_USAGE: u8 = 64;
const EX_NOINPUT: u8 = 66;
/// The input's content is unusable (no address column, an unreadable CSV header).
const EX_DATAERR: u8 = 65;
const EX_INTERRUPTED: u8 = 130;

/// Flags of `rollcall submit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The list: a .txt (or any) file with one address per line, a .csv, a .jsonl/.ndjson
    /// file, or - for standard input (read as text unless --input-format).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,

    #[command(flatten)]
    pub remote: Remote,

    /// The campaign's name. Default: the input's file name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Follow the campaign until it is done and write its results.
    #[arg(long)]
    pub wait: bool,

    /// Where --wait writes results; - or absent: standard output.
    #[arg(short, long, value_name = "OUT", requires = "wait")]
    pub output: Option<PathBuf>,

    /// Output format. Default: jsonl for a .jsonl/.ndjson OUT, else csv.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,

    /// Input format, when the extension does not tell (.csv, .jsonl/.ndjson, else text).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,

    /// The CSV column or JSONL field holding the address.
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,

    /// This campaign's bound on retry waits (greylisting, deferrals), counted from each
    /// address's first wait: past it the address ends as unknown with the reason it was waiting
    /// for; `off` for none. Default: the fleet's setting (the workers' `retry.max_wait`).
    #[arg(long, value_name = "DURATION|off", value_parser = crate::config::parse_max_wait)]
    pub max_wait: Option<crate::config::MaxWait>,

    /// Progress on stderr (with --wait): auto, bar, log or off.
    #[arg(
        long,
        value_name = "MODE",
        default_value = "auto",
        env = "ROLLCALL_PROGRESS"
    )]
    pub progress: ProgressMode,
}

fn fail(code: u8, message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("rollcall: {message}");
    Ok(ExitCode::from(code))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Checked first: a wrong TLS file should stop us before any input is read or output made.
    let tls = match args.remote.load_tls() {
        Ok(tls) => tls,
        Err(e) => return fail(EX_USAGE, e),
    };
    let stdin = args.input.as_os_str() == "-";
    let input_format = args
        .input_format
        .unwrap_or_else(|| InputFormat::from_path(&args.input));
    let source: Box<dyn std::io::Read + Send> = if stdin {
        Box::new(std::io::stdin())
    } else {
        match std::fs::File::open(&args.input) {
            Ok(file) => Box::new(file),
            Err(e) => {
                return fail(
                    EX_NOINPUT,
                    format!("cannot open {}: {e}", args.input.display()),
                );
            }
        }
    };
    let reader = match RowReader::open(source, input_format, args.column.as_deref()) {
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
    // Open the output before uploading: a bad -o should not leave a campaign behind.
    let sink = if args.wait {
        Some(results_sink(args.output.as_deref(), args.format, shape)?)
    } else {
        None
    };
    let name = args.name.clone().unwrap_or_else(|| {
        args.input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "stdin".to_string())
    });

    let mut client = args.remote.connect(tls.as_ref()).await?;
    let (rows_tx, mut rows_rx) = mpsc::channel(CHUNK);
    let reading = spawn_reader(reader, rows_tx);
    let (chunk_tx, chunk_rx) = mpsc::channel::<Vec<String>>(4);
    let (failed_tx, failed_rx) = oneshot::channel::<String>();
    let (kept_tx, kept_rx) = oneshot::channel::<Vec<(u64, Record)>>();
    let keep = args.wait;
    let chunker = tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(row) = rows_rx.recv().await {
            if keep {
                kept.push((row.row, row.payload));
            }
            chunk.push(row.text);
            if chunk.len() == CHUNK && chunk_tx.send(std::mem::take(&mut chunk)).await.is_err() {
                return;
            }
        }
        match reading.await {
            Ok(Ok(_)) => {
                if !chunk.is_empty() && chunk_tx.send(chunk).await.is_err() {
                    return;
                }
                let _ = kept_tx.send(kept);
                // Dropping `chunk_tx` ends the upload.
            }
            Ok(Err(e)) => {
                let _ = failed_tx.send(e.to_string());
                // Keep the upload open: the caller abandons the call, so the coordinator sees a
                // broken stream rather than a shorter list.
                let _hold = chunk_tx;
                std::future::pending::<()>().await;
            }
            Err(_) => {
                let _ = failed_tx.send("the input reader stopped".to_string());
                let _hold = chunk_tx;
                std::future::pending::<()>().await;
            }
        }
    });

    let options = v1::SubmitCampaignRequest {
        payload: Some(v1::submit_campaign_request::Payload::Options(
            v1::CampaignOptions {
                name,
                max_wait_secs: args.max_wait.map(|crate::config::MaxWait(wait)| {
                    // 0 is "no bound"; a bound is at least a second.
                    wait.map_or(0, |d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX))
                }),
                ..Default::default()
            },
        )),
    };
    let requests = futures_util::stream::once(async move { options }).chain(
        ReceiverStream::new(chunk_rx).map(|addresses| v1::SubmitCampaignRequest {
            payload: Some(v1::submit_campaign_request::Payload::Chunk(
                v1::AddressChunk { addresses },
            )),
        }),
    );
    let submitted = tokio::select! {
        response = client.submit_campaign(requests) => response,
        Ok(why) = failed_rx => {
            chunker.abort();
            return fail(EX_NOINPUT, format!("cannot read {}: {why}; nothing was submitted",
                args.input.display()));
        }
        _ = crate::commands::verify::ctrl_c() => {
            chunker.abort();
            return fail(EX_INTERRUPTED, "interrupted; nothing was submitted");
        }
    };
    chunker.abort();
    let submitted = submitted
        .context("the coordinator did not take the list")?
        .into_inner();
    let campaign = submitted.campaign_id;
    eprintln!(
        "rollcall: campaign {campaign}: {} accepted, {} duplicate, {} invalid",
        submitted.accepted, submitted.duplicate, submitted.invalid
    );
    let Some(sink) = sink else {
        println!("{campaign}");
        return Ok(ExitCode::SUCCESS);
    };
    let inputs = kept_rx.await.unwrap_or_default();
    let mut progress = Progress::new(args.progress, Some(inputs.len() as u64));
    let followed = follow(
        &mut client,
        &campaign,
        Some(Results { sink, inputs }),
        &mut progress,
        false,
    )
    .await?;
    Ok(report(&campaign, &followed))
}
