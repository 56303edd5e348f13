//! `rollcall submit`: streams a list (text, CSV or JSONL, read as `rollcall verify` reads it)
//! to a coordinator in chunks of `CHUNK` addresses and prints the new campaign's id and counts.
//! With `--wait` it then follows the campaign (`api::follow`) and writes every result with the
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
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::api::follow::{Results, follow, report, results_sink};
use crate::api::remote::Remote;
use crate::exit::{EX_INTERRUPTED, EX_NOINPUT, EX_USAGE, fail};
use crate::io::flags::{InputFlags, OutputFlags, ProgressFlags, flag};
use crate::io::list;
use crate::io::progress::Progress;
use crate::io::rows::{CsvChoice, Record, RowReader, spawn_reader};
use crate::run::signals::ctrl_c;

/// Addresses per submitted chunk.
const CHUNK: usize = 1_000;

/// Flags of `rollcall submit`.
#[derive(Debug, clap::Args)]
#[command(
    // -o without --wait would silently write nothing.
    mut_args(flag("output", |a| a
        .help("Where --wait writes results; - or absent: standard output")
        .requires("wait"))),
    mut_args(flag("progress", |a| a.help("Progress on stderr (with --wait): auto, bar, log or off"))),
)]
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

    #[command(flatten)]
    pub results: OutputFlags,

    #[command(flatten)]
    pub list: InputFlags,

    /// This campaign's bound on retry waits (greylisting, deferrals), counted from each
    /// address's first wait: past it the address ends as unknown with the reason it was waiting
    /// for; `off` for none. Default: the fleet's setting (the workers' `retry.max_wait`).
    #[arg(long, value_name = "DURATION|off", value_parser = crate::config::parse_max_wait)]
    pub max_wait: Option<crate::config::MaxWait>,

    #[command(flatten)]
    pub progress: ProgressFlags,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Checked first: a wrong TLS file should stop us before any input is read or output made.
    let tls = match args.remote.load_tls() {
        Ok(tls) => tls,
        Err(e) => return fail(EX_USAGE, e),
    };
    let choice = CsvChoice {
        column: args.list.column.as_deref(),
        delimiter: None,
    };
    let list = match list::open(&args.input, args.list.input_format, choice, false) {
        Ok(list) => list,
        Err(failure) => return failure.exit(),
    };
    // Open the output before uploading: a bad -o should not leave a campaign behind.
    let sink = if args.wait {
        Some(results_sink(
            args.results.output.as_deref(),
            args.results.format,
            list.shape,
        )?)
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
    let chunks = Chunks::spawn(list.reader, args.wait);
    let requests = campaign_requests(name, args.max_wait, chunks.chunks);
    let submitted = tokio::select! {
        response = client.submit_campaign(requests) => response,
        Ok(why) = chunks.failed => {
            chunks.task.abort();
            return fail(EX_NOINPUT, format!("cannot read {}: {why}; nothing was submitted",
                args.input.display()));
        }
        _ = ctrl_c() => {
            chunks.task.abort();
            return fail(EX_INTERRUPTED, "interrupted; nothing was submitted");
        }
    };
    chunks.task.abort();
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
    let inputs = chunks.kept.await.unwrap_or_default();
    let mut progress = Progress::new(args.progress.progress, Some(inputs.len() as u64));
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

/// The upload: the campaign's options first, then the list's chunks as they are read.
fn campaign_requests(
    name: String,
    max_wait: Option<crate::config::MaxWait>,
    chunks: mpsc::Receiver<Vec<String>>,
) -> impl futures_util::Stream<Item = v1::SubmitCampaignRequest> {
    let options = v1::SubmitCampaignRequest {
        payload: Some(v1::submit_campaign_request::Payload::Options(
            v1::CampaignOptions {
                name,
                max_wait_secs: max_wait.map(|crate::config::MaxWait(wait)| {
                    // 0 is "no bound"; a bound is at least a second.
                    wait.map_or(0, |d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX))
                }),
                ..Default::default()
            },
        )),
    };
    futures_util::stream::once(async move { options }).chain(ReceiverStream::new(chunks).map(
        |addresses| v1::SubmitCampaignRequest {
            payload: Some(v1::submit_campaign_request::Payload::Chunk(
                v1::AddressChunk { addresses },
            )),
        },
    ))
}

/// The list cut into chunks of `CHUNK` addresses as it is read.
struct Chunks {
    chunks: mpsc::Receiver<Vec<String>>,
    /// Why the list could not be read to its end; the upload is then never ended.
    failed: oneshot::Receiver<String>,
    /// With `keep`, every row's number and fields, once the whole list is read.
    kept: oneshot::Receiver<Vec<(u64, Record)>>,
    task: JoinHandle<()>,
}

impl Chunks {
    fn spawn(reader: RowReader, keep: bool) -> Chunks {
        let (rows_tx, mut rows_rx) = mpsc::channel(CHUNK);
        let reading = spawn_reader(reader, rows_tx);
        let (chunk_tx, chunk_rx) = mpsc::channel::<Vec<String>>(4);
        let (failed_tx, failed_rx) = oneshot::channel::<String>();
        let (kept_tx, kept_rx) = oneshot::channel::<Vec<(u64, Record)>>();
        let task = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut chunk = Vec::with_capacity(CHUNK);
            while let Some(row) = rows_rx.recv().await {
                if keep {
                    kept.push((row.row, row.payload));
                }
                chunk.push(row.text);
                if chunk.len() == CHUNK && chunk_tx.send(std::mem::take(&mut chunk)).await.is_err()
                {
                    return;
                }
            }
            let why = match reading.await {
                Ok(Ok(_)) => {
                    if !chunk.is_empty() && chunk_tx.send(chunk).await.is_err() {
                        return;
                    }
                    let _ = kept_tx.send(kept);
                    // Dropping `chunk_tx` ends the upload.
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the input reader stopped".to_string(),
            };
            let _ = failed_tx.send(why);
            // Keep the upload open: the caller abandons the call, so the coordinator sees a
            // broken stream rather than a shorter list.
            let _hold = chunk_tx;
            std::future::pending::<()>().await;
        });
        Chunks {
            chunks: chunk_rx,
            failed: failed_rx,
            kept: kept_rx,
            task,
        }
    }
}
