//! Following a campaign on a coordinator (WatchCampaign) until it is done, cancelled or failed:
//! its progress shown, its results optionally written (CSV or JSONL, as `rollcall verify`
//! writes them), how it ended reported. The follow loop of `rollcall watch` and `rollcall
//! submit --wait`.
//!
//! Owns the client side of watching only. A watch stream that breaks (the coordinator
//! restarted, the network went away) is opened again, with backoff, for up to
//! `RECONNECT_FOR` without news; the server then sends the current state first and every
//! result again, and results already written are skipped.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rollcall_api::convert::campaign_state_from_wire;
use rollcall_api::{CampaignState, Client, v1};
use rollcall_core::Verdict;
use rollcall_engine::coordinator::OutputRow;

use crate::exit::EX_INTERRUPTED;
use crate::io::output::{InputShape, OutputFormat, RowSink, open_sink};
use crate::io::progress::{Progress, group};
use crate::io::rows::Record;
use crate::run::signals::ctrl_c;

/// Opens the results writer for `output` (standard output for `-` or absent).
pub fn results_sink(
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
pub struct Results {
    pub sink: Box<dyn RowSink<Record> + Send>,
    pub inputs: Vec<(u64, Record)>,
}

/// How a followed campaign ended.
pub struct Followed {
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
pub async fn follow(
    client: &mut Client,
    campaign: &str,
    results: Option<Results>,
    progress: &mut Progress,
    log_lines: bool,
) -> anyhow::Result<Followed> {
    let request = v1::WatchCampaignRequest {
        campaign_id: campaign.to_string(),
        include_results: results.is_some(),
    };
    let mut watch = Watch {
        results,
        progress,
        log_lines,
        last: None,
        flushed: Instant::now(),
        last_line: None,
        seen: HashMap::new(),
        heard: Instant::now(),
        retry: FIRST_RETRY,
    };
    let mut interrupted = false;
    loop {
        let broke = match client.watch_campaign(request.clone()).await {
            Ok(response) => match watch.stream(response.into_inner()).await? {
                Ended::Final => break,
                Ended::Interrupted => {
                    interrupted = true;
                    break;
                }
                Ended::Broke(why) => why,
            },
            Err(status) if transient(&status) => status.to_string(),
            Err(status) => {
                return Err(anyhow::anyhow!(status).context("cannot watch the campaign"));
            }
        };
        if watch.heard.elapsed() >= RECONNECT_FOR {
            anyhow::bail!(
                "the watch stream broke ({broke}) and the coordinator has not answered for {} s",
                RECONNECT_FOR.as_secs()
            );
        }
        watch.progress.println(&format!(
            "rollcall: the watch stream broke ({broke}); reconnecting"
        ));
        tokio::select! {
            _ = tokio::time::sleep(watch.retry) => {}
            _ = ctrl_c() => {
                interrupted = true;
                break;
            }
        }
        watch.retry = (watch.retry * 2).min(LAST_RETRY);
    }
    if let Some(results) = watch.results.as_mut() {
        results.sink.flush()?;
    }
    watch.progress.finish();
    let last = watch.last;
    let state = last
        .as_ref()
        .and_then(|p| campaign_state_from_wire(p.state).ok());
    Ok(Followed {
        state,
        last,
        interrupted,
    })
}

/// How one watch stream ended.
enum Ended {
    /// After the final progress.
    Final,
    /// The user pressed Ctrl-C.
    Interrupted,
    /// It broke in a way worth opening it again; why.
    Broke(String),
}

/// What a follow holds across the streams it opens.
struct Watch<'p> {
    results: Option<Results>,
    progress: &'p mut Progress,
    log_lines: bool,
    last: Option<v1::Progress>,
    flushed: Instant,
    last_line: Option<Instant>,
    /// Rows already written: a result sent again (after a reconnect) is written once.
    seen: HashMap<u64, ()>,
    /// When the last event (or the first attempt) came: reconnecting gives up this long after.
    heard: Instant,
    retry: Duration,
}

impl Watch<'_> {
    /// Reads one watch stream to its end.
    async fn stream(
        &mut self,
        mut stream: tonic::Streaming<v1::CampaignEvent>,
    ) -> anyhow::Result<Ended> {
        loop {
            let event = tokio::select! {
                event = stream.message() => event,
                _ = ctrl_c() => return Ok(Ended::Interrupted),
            };
            let event = match event {
                Ok(Some(event)) => event,
                // The stream ends after the final progress; ending before it means the
                // coordinator went away.
                Ok(None) if self.last.as_ref().is_some_and(is_final) => return Ok(Ended::Final),
                Ok(None) => return Ok(Ended::Broke("the watch stream ended early".to_string())),
                Err(status) if transient(&status) => return Ok(Ended::Broke(status.to_string())),
                Err(status) => {
                    return Err(anyhow::anyhow!(status).context("the watch stream broke"));
                }
            };
            self.heard = Instant::now();
            self.retry = FIRST_RETRY;
            match event.event {
                Some(v1::campaign_event::Event::Result(result)) => self.result(result)?,
                Some(v1::campaign_event::Event::Progress(snapshot)) => self.snapshot(snapshot),
                None => {}
            }
        }
    }

    /// Writes a result (once) when results are wanted.
    fn result(&mut self, result: v1::VerificationResult) -> anyhow::Result<()> {
        let Some(results) = self.results.as_mut() else {
            return Ok(());
        };
        // A result sent again (after a reconnect) is written once.
        if self.seen.insert(result.row, ()).is_some() {
            return Ok(());
        }
        let verdict = Verdict::try_from(&result)
            .with_context(|| format!("the coordinator sent a bad result (row {})", result.row))?;
        self.progress.record(verdict.status());
        let (row, payload) = usize::try_from(result.row)
            .ok()
            .and_then(|i| results.inputs.get(i).cloned())
            .unwrap_or_else(|| (result.row.saturating_add(1), Record::plain()));
        // The coordinator's own weights are its config's; here the built-in ones score the row.
        let score = rollcall_core::score(
            &verdict,
            verdict.evidence.provider.as_deref(),
            &rollcall_core::ScoreWeights::default(),
        );
        results.sink.write_row(&OutputRow {
            row,
            text: result.address,
            payload,
            score,
            verdict: Arc::new(verdict),
            duplicate: result.duplicate,
            // The gRPC results carry no cache note (yet): the coordinator's rows say nothing
            // of it.
            cache: Default::default(),
        })?;
        if self.flushed.elapsed() >= FLUSH_EVERY {
            results.sink.flush()?;
            self.flushed = Instant::now();
        }
        Ok(())
    }

    /// Shows a progress snapshot (a log line every few seconds with `log_lines`).
    fn snapshot(&mut self, snapshot: v1::Progress) {
        self.progress.set_read(snapshot.total);
        self.progress.tick();
        // The final counts are printed by `report`.
        if self.log_lines
            && !is_final(&snapshot)
            && self.last_line.is_none_or(|at| at.elapsed() >= LOG_EVERY)
        {
            self.progress.println(&progress_line(&snapshot));
            self.last_line = Some(Instant::now());
        }
        self.last = Some(snapshot);
    }
}

fn is_final(snapshot: &v1::Progress) -> bool {
    campaign_state_from_wire(snapshot.state).is_ok_and(|state| state.is_final())
}

/// `done of total verified (rate/s); deliverable N, ...` for a progress event.
pub fn progress_line(p: &v1::Progress) -> String {
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
pub fn report(campaign: &str, followed: &Followed) -> ExitCode {
    if followed.interrupted {
        eprintln!("rollcall: stopped watching; campaign {campaign} goes on");
        return ExitCode::from(EX_INTERRUPTED);
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

#[cfg(test)]
mod tests {
    use super::*;

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
