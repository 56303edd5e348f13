//! `rollcall watch`: follows a campaign on a coordinator (WatchCampaign) until it is done,
//! cancelled or failed, showing its progress and optionally writing its results (CSV or JSONL,
//! as `rollcall verify` writes them). Also the follow loop of `rollcall submit --wait`.
//!
//! Owns the client side of watching only. A watch stream that breaks (the coordinator
//! restarted, the network went away) is opened again, with backoff, for up to
//! `RECONNECT_FOR` without news; the server then sends the current state first and every
//! result again, and results already written are skipped.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rollcall_api::convert::campaign_state_from_wire;
use rollcall_api::{CampaignState, Client, ClientTls, v1};
use rollcall_core::Verdict;
use rollcall_engine::coordinator::OutputRow;

use crate::api::tls::ClientTlsFlags;
use crate::config::{ConfigError, EX_USAGE};
use crate::io::output::{InputShape, OutputFormat, RowSink, open_sink};
use crate::io::progress::{Progress, ProgressMode, group};
use crate::io::rows::Record;

/// Flags of `rollcall watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The campaign id `rollcall submit` printed.
    #[arg(value_name = "CAMPAIGN")]
    pub campaign: String,

    #[command(flatten)]
    pub remote: Remote,

    /// Also receive every result (written to -o, or standard output).
    #[arg(long)]
    pub results: bool,

    /// Where to write results (implies --results); -: standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,

    /// Output format. Default: jsonl for a .jsonl/.ndjson OUT, else csv.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,

    /// Progress on stderr: auto, bar, log or off.
    #[arg(
        long,
        value_name = "MODE",
        default_value = "auto",
        env = "ROLLCALL_PROGRESS"
    )]
    pub progress: ProgressMode,
}

/// Where the coordinator is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The coordinator's API, e.g. http://127.0.0.1:50051; https://HOST:PORT speaks TLS (see
    /// --ca).
    #[arg(
        long,
        value_name = "URL",
        env = "ROLLCALL_COORDINATOR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub coordinator: String,

    /// Bearer token of the coordinator's API.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ROLLCALL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    #[command(flatten)]
    pub tls: ClientTlsFlags,
}

impl Remote {
    /// Reads and checks the TLS flags: a usage error (exit 64) when a file is wrong, or when
    /// they are given with an http:// URL (the token would go in the clear to a server the
    /// user meant to authenticate).
    pub fn load_tls(&self) -> Result<Option<ClientTls>, ConfigError> {
        let tls = self.tls.load()?;
        if tls.is_some() && !self.coordinator.starts_with("https://") {
            return Err(ConfigError::Invalid {
                setting: "--coordinator (ROLLCALL_COORDINATOR)",
                reason: format!(
                    "{:?} is not an https:// URL, but TLS flags (--ca, --tls-client-cert) are \
                     given",
                    self.coordinator
                ),
                fix: "use https://HOST:PORT for a coordinator started with --tls-cert",
            });
        }
        Ok(tls)
    }

    /// Connects with the TLS settings `load_tls` returned.
    pub async fn connect(&self, tls: Option<&ClientTls>) -> anyhow::Result<Client> {
        rollcall_api::connect_with_tls(&self.coordinator, self.token.clone(), tls)
            .await
            .with_context(|| format!("cannot reach the coordinator at {}", self.coordinator))
    }
}

/// Opens the results writer for `output` (standard output for `-` or absent).
pub(crate) fn results_sink(
    output: Option<&std::path::Path>,
    format: Option<OutputFormat>,
    shape: InputShape,
) -> anyhow::Result<Box<dyn RowSink<Record> + Send>> {
    let path = output.filter(|p| p.as_os_str() != "-");
    let format = format.unwrap_or_else(|| OutputFormat::from_path(path));
    let out: Box<dyn Write + Send> = match path {
        None => Box::new(std::io::stdout()),
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
    };
    Ok(open_sink(format, out, shape)?)
}

/// What `follow` writes results with: the sink and, for `submit --wait`, the submitted rows'
/// own numbers and fields (indexed by their position in the submission).
pub(crate) struct Results {
    pub sink: Box<dyn RowSink<Record> + Send>,
    pub inputs: Vec<(u64, Record)>,
}

/// How a followed campaign ended.
pub(crate) struct Followed {
    pub state: Option<CampaignState>,
    pub last: Option<v1::Progress>,
    /// The user stopped watching (Ctrl-C); the campaign goes on.
    pub interrupted: bool,
}

const FLUSH_EVERY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(5);
/// A broken watch is opened again until this long has passed without an event.
const RECONNECT_FOR: Duration = Duration::from_secs(300);
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Whether a failed call is worth trying again (the coordinator may be restarting).
fn transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Aborted
    )
}

/// Watches `campaign` until its stream ends (final progress) or Ctrl-C, writing results to
/// `results` when given; with `log_lines`, prints the server's progress every few seconds.
pub(crate) async fn follow(
    client: &mut Client,
    campaign: &str,
    mut results: Option<Results>,
    progress: &mut Progress,
    log_lines: bool,
) -> anyhow::Result<Followed> {
    let request = v1::WatchCampaignRequest {
        campaign_id: campaign.to_string(),
        include_results: results.is_some(),
    };
    let mut last: Option<v1::Progress> = None;
    let mut flushed = Instant::now();
    let mut last_line: Option<Instant> = None;
    let mut interrupted = false;
    let mut seen: HashMap<u64, ()> = HashMap::new();
    // When the last event (or the first attempt) came: reconnecting gives up this long after.
    let mut heard = Instant::now();
    let mut retry = FIRST_RETRY;
    'watch: loop {
        let broke = match client.watch_campaign(request.clone()).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    let event = tokio::select! {
                        event = stream.message() => event,
                        _ = crate::commands::verify::ctrl_c() => {
                            interrupted = true;
                            break 'watch;
                        }
                    };
                    let event = match event {
                        Ok(Some(event)) => event,
                        // The stream ends after the final progress; ending before it means
                        // the coordinator went away.
                        Ok(None) if last.as_ref().is_some_and(is_final) => break 'watch,
                        Ok(None) => break "the watch stream ended early".to_string(),
                        Err(status) if transient(&status) => break status.to_string(),
                        Err(status) => {
                            return Err(anyhow::anyhow!(status).context("the watch stream broke"));
                        }
                    };
                    heard = Instant::now();
                    retry = FIRST_RETRY;
                    match event.event {
                        Some(v1::campaign_event::Event::Result(result)) => {
                            let Some(results) = results.as_mut() else {
                                continue;
                            };
                            // A result sent again (after a reconnect) is written once.
                            if seen.insert(result.row, ()).is_some() {
                                continue;
                            }
                            let verdict = Verdict::try_from(&result).with_context(|| {
                                format!("the coordinator sent a bad result (row {})", result.row)
                            })?;
                            progress.record(verdict.status());
                            let (row, payload) = usize::try_from(result.row)
                                .ok()
                                .and_then(|i| results.inputs.get(i).cloned())
                                .unwrap_or_else(|| (result.row.saturating_add(1), Record::plain()));
                            results.sink.write_row(&OutputRow {
                                row,
                                text: result.address,
                                payload,
                                verdict: Arc::new(verdict),
                                duplicate: result.duplicate,
                            })?;
                            if flushed.elapsed() >= FLUSH_EVERY {
                                results.sink.flush()?;
                                flushed = Instant::now();
                            }
                        }
                        Some(v1::campaign_event::Event::Progress(snapshot)) => {
                            progress.set_read(snapshot.total);
                            progress.tick();
                            // The final counts are printed by `report`.
                            if log_lines
                                && !is_final(&snapshot)
                                && last_line.is_none_or(|at| at.elapsed() >= LOG_EVERY)
                            {
                                progress.println(&progress_line(&snapshot));
                                last_line = Some(Instant::now());
                            }
                            last = Some(snapshot);
                        }
                        None => {}
                    }
                }
            }
            Err(status) if transient(&status) => status.to_string(),
            Err(status) => {
                return Err(anyhow::anyhow!(status).context("cannot watch the campaign"));
            }
        };
        if heard.elapsed() >= RECONNECT_FOR {
            anyhow::bail!(
                "the watch stream broke ({broke}) and the coordinator has not answered for {} s",
                RECONNECT_FOR.as_secs()
            );
        }
        progress.println(&format!(
            "rollcall: the watch stream broke ({broke}); reconnecting"
        ));
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = crate::commands::verify::ctrl_c() => {
                interrupted = true;
                break 'watch;
            }
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
    if let Some(results) = results.as_mut() {
        results.sink.flush()?;
    }
    progress.finish();
    let state = last
        .as_ref()
        .and_then(|p| campaign_state_from_wire(p.state).ok());
    Ok(Followed {
        state,
        last,
        interrupted,
    })
}

fn is_final(snapshot: &v1::Progress) -> bool {
    campaign_state_from_wire(snapshot.state).is_ok_and(|state| state.is_final())
}

/// `done of total verified (rate/s); deliverable N, ...` for a progress event.
pub(crate) fn progress_line(p: &v1::Progress) -> String {
    format!(
        "{} of {} verified ({:.0}/s); deliverable {}, undeliverable {}, risky {}, unknown {}",
        group(p.done),
        group(p.total),
        p.rate_per_s,
        group(p.deliverable),
        group(p.undeliverable),
        group(p.risky),
        group(p.unknown)
    )
}

/// Prints how the campaign ended; the exit code: success once done, 1 otherwise, 130 when the
/// user stopped watching.
pub(crate) fn report(campaign: &str, followed: &Followed) -> ExitCode {
    if followed.interrupted {
        eprintln!("rollcall: stopped watching; campaign {campaign} goes on");
        return ExitCode::from(130);
    }
    if let Some(last) = &followed.last {
        eprintln!("rollcall: {}", progress_line(last));
    }
    match followed.state {
        Some(CampaignState::Done) => {
            eprintln!("rollcall: campaign {campaign} is done");
            ExitCode::SUCCESS
        }
        state => {
            let detail = followed
                .last
                .as_ref()
                .map(|p| p.detail.as_str())
                .filter(|d| !d.is_empty())
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            let state = state.map_or("in an unknown state".to_string(), |s| format!("{s:?}"));
            eprintln!("rollcall: campaign {campaign} ended {state}{detail}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tls = match args.remote.load_tls() {
        Ok(tls) => tls,
        Err(e) => {
            crate::io::console::err_line(format_args!("rollcall: {e}"));
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let mut client = args.remote.connect(tls.as_ref()).await?;
    let results = if args.results || args.output.is_some() {
        Some(Results {
            sink: results_sink(args.output.as_deref(), args.format, InputShape::Text)?,
            inputs: Vec::new(),
        })
    } else {
        None
    };
    // Without results there is nothing to count here: the server's own counts are printed as
    // log lines instead of a bar (none with --progress off).
    let mut progress = match (&results, args.progress) {
        (Some(_), mode) => Progress::new(mode, None),
        (None, _) => Progress::new(ProgressMode::Off, None),
    };
    let log_lines = results.is_none() && args.progress != ProgressMode::Off;
    let followed = follow(
        &mut client,
        &args.campaign,
        results,
        &mut progress,
        log_lines,
    )
    .await?;
    Ok(report(&args.campaign, &followed))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::Cli;

    #[test]
    fn progress_line_groups_counts() {
        let line = progress_line(&v1::Progress {
            total: 12_000,
            done: 1_500,
            deliverable: 1_000,
            undeliverable: 300,
            risky: 150,
            unknown: 50,
            rate_per_s: 42.4,
            ..Default::default()
        });
        assert_eq!(
            line,
            "1,500 of 12,000 verified (42/s); deliverable 1,000, undeliverable 300, risky 150, \
             unknown 50"
        );
    }

    #[test]
    fn client_commands_parse() {
        assert!(
            Cli::try_parse_from([
                "rollcall",
                "watch",
                "c1",
                "--coordinator",
                "http://127.0.0.1:1"
            ])
            .is_ok()
        );
        assert!(
            Cli::try_parse_from(["rollcall", "submit", "list.txt", "--wait", "-o", "out.csv"])
                .is_ok()
        );
        // -o without --wait would silently write nothing.
        assert!(Cli::try_parse_from(["rollcall", "submit", "list.txt", "-o", "out.csv"]).is_err());
        assert!(
            Cli::try_parse_from([
                "rollcall",
                "coordinator",
                "--amqp",
                "amqp://127.0.0.1",
                "--redis",
                "redis://127.0.0.1",
                "--listen",
                "127.0.0.1:0",
            ])
            .is_ok()
        );
        let limited = Cli::try_parse_from([
            "rollcall",
            "coordinator",
            "--amqp",
            "amqp://127.0.0.1",
            "--redis",
            "redis://127.0.0.1",
            "--max-rows",
            "10",
            "--keep-finished",
            "0",
        ]);
        match limited.map(|cli| cli.command) {
            Ok(crate::Command::Coordinator(args)) => {
                assert_eq!((args.max_rows, args.keep_finished), (10, 0));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn report_exit_codes() {
        let done = Followed {
            state: Some(CampaignState::Done),
            last: None,
            interrupted: false,
        };
        assert_eq!(report("c", &done), ExitCode::SUCCESS);
        let cancelled = Followed {
            state: Some(CampaignState::Cancelled),
            last: None,
            interrupted: false,
        };
        assert_eq!(report("c", &cancelled), ExitCode::FAILURE);
        let stopped = Followed {
            state: None,
            last: None,
            interrupted: true,
        };
        assert_eq!(report("c", &stopped), ExitCode::from(130));
    }
}
