//! How a run shows its progress on stderr: an indicatif bar on a terminal (done/total, rate,
//! ETA, counts by status), plain log lines every few seconds otherwise (CI, `2>log`), and the
//! summary table at the end. The numbers come from the run loop; this module only shows them.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rollcall_core::Status;
use rollcall_engine::summary::Summary;
use rollcall_engine::waiting::WaitingSummary;

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    Bar,
    /// A line every 5 seconds.
    Log,
    /// Only the summary at the end.
    Off,
}

/// How often a log line is written when there is no bar.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The progress display of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    log: bool,
    last_log: Instant,
    /// Rows known to exist: the expected total if given, else rows read so far.
    total: u64,
    expected: Option<u64>,
    done: u64,
    by_status: [u64; 4],
    /// What the rows not done yet are waiting for (retries, pacing).
    waiting: WaitingSummary,
    /// Time spent with some row not waiting: the rate and ETA leave idle waits out.
    active: Duration,
    last_tick: Instant,
    /// Rows per second over `active`, x1000, shared with the bar's rate and ETA keys.
    rate_milli: Arc<AtomicU64>,
}

impl Progress {
    /// A display in `mode`; `expected` is the number of rows when known in advance (the demo),
    /// otherwise the total grows as rows are read.
    pub fn new(mode: ProgressMode, expected: Option<u64>) -> Progress {
        let bar = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bar => true,
            ProgressMode::Log | ProgressMode::Off => false,
        };
        let bar = bar.then(|| {
            ProgressBar::with_draw_target(Some(expected.unwrap_or(0)), ProgressDrawTarget::stderr())
        });
        let rate_milli = Arc::new(AtomicU64::new(0));
        if let Some(bar) = &bar
            && let Ok(style) = ProgressStyle::with_template(
                // Counts with thousands separators; the message (counts by status, what the
                // last rows wait for) is cut to the terminal's width, so the bar stays on one
                // line and redraws in place however narrow the window.
                "{elapsed_precise} [{bar:24.cyan/blue}] {human_pos}/{human_len} {rate:.dim} ETA {eta} {wide_msg}",
            )
        {
            let milli = rate_milli.clone();
            let rate = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let per_sec = milli.load(Ordering::Relaxed) as f64 / 1000.0;
                let _ = write!(w, "{}/s", group(per_sec.round() as u64));
            };
            let milli = rate_milli.clone();
            let eta = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let per_sec = milli.load(Ordering::Relaxed) as f64 / 1000.0;
                let left = state.len().unwrap_or(0).saturating_sub(state.pos());
                let _ = match eta_secs(left, per_sec) {
                    Some(secs) => write!(w, "{}", short_secs(secs)),
                    None => write!(w, "-"),
                };
            };
            bar.set_style(
                style
                    .with_key("rate", rate)
                    .with_key("eta", eta)
                    .progress_chars("=> "),
            );
        }
        let now = Instant::now();
        Progress {
            log: bar.is_none() && matches!(mode, ProgressMode::Auto | ProgressMode::Log),
            bar,
            last_log: now,
            total: expected.unwrap_or(0),
            expected,
            done: 0,
            by_status: [0; 4],
            waiting: WaitingSummary::default(),
            active: Duration::ZERO,
            last_tick: now,
            rate_milli,
        }
    }

    /// What the rows not done yet wait for (the engine's `WaitingItems::summary`).
    pub fn set_waiting(&mut self, waiting: WaitingSummary) {
        self.waiting = waiting;
    }

    /// A display that shows nothing (tests).
    #[cfg(test)]
    pub fn hidden() -> Progress {
        Progress::new(ProgressMode::Off, None)
    }

    /// Rows read so far (ignored when the total was given up front).
    pub fn set_read(&mut self, read: u64) {
        if self.expected.is_none() && read != self.total {
            self.total = read;
            if let Some(bar) = &self.bar {
                bar.set_length(read);
            }
        }
    }

    /// One row is out.
    pub fn record(&mut self, status: Status) {
        self.done += 1;
        self.by_status[status_slot(status)] += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Refreshes the counts; writes a log line when one is due. Call a few times a second.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let outstanding = self.total.saturating_sub(self.done);
        // Idle: every row not done yet waits for a retry (none is being probed or queued).
        let idle = outstanding > 0 && self.waiting.count >= outstanding;
        if !idle {
            self.active += now.duration_since(self.last_tick);
        }
        self.last_tick = now;
        self.rate_milli
            .store((self.rate() * 1000.0).round() as u64, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            let mut message = status_counts(&self.by_status);
            if let Some(waiting) = waiting_text(&self.waiting) {
                message = format!("{message}; {waiting}");
            }
            bar.set_message(message);
        } else if self.log && self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            crate::io::console::err_line(format_args!("rollcall: {}", self.line()));
        }
    }

    /// One line of progress: `41,200 of 100,000 rows verified (812/s); deliverable 30,100, ...`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} of {} rows verified ({}/s); {}",
            group(self.done),
            group(self.total.max(self.done)),
            group(self.rate().round() as u64),
            status_counts(&self.by_status)
        );
        if let Some(waiting) = waiting_text(&self.waiting) {
            line.push_str("; ");
            line.push_str(&waiting);
        }
        line
    }

    /// Rows per second over the time some row was not waiting.
    fn rate(&self) -> f64 {
        let secs = self.active.as_secs_f64();
        if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        }
    }

    /// Prints a line on stderr without tearing the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| crate::io::console::err_line(line)),
            None => crate::io::console::err_line(line),
        }
    }

    /// Removes the bar (before the summary is printed).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `2 waiting (1 greylisted, 1 connection_failed): greylisted, next try in 4m12s`, or nothing.
fn waiting_text(waiting: &WaitingSummary) -> Option<String> {
    if waiting.count == 0 {
        return None;
    }
    let mut text = format!("{} waiting", group(waiting.count));
    if waiting.by_kind.len() > 1 {
        let kinds: Vec<String> = waiting
            .by_kind
            .iter()
            .map(|(kind, n)| format!("{} {kind}", group(*n)))
            .collect();
        let _ = write!(text, " ({})", kinds.join(", "));
    }
    if let Some(example) = &waiting.example {
        let _ = write!(text, ": {example}");
    }
    if let Some(next) = waiting.next_in {
        let _ = write!(text, ", next try in {}", short_secs(next.as_secs()));
    }
    Some(text)
}

/// Seconds left at `per_sec` for `left` rows, when there is a rate to go by.
fn eta_secs(left: u64, per_sec: f64) -> Option<u64> {
    (per_sec > 0.0).then(|| (left as f64 / per_sec).ceil() as u64)
}

/// `252` as `4m12s`, `3` as `3s`, `7260` as `2h1m`.
fn short_secs(secs: u64) -> String {
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn status_slot(status: Status) -> usize {
    Status::ALL.iter().position(|s| *s == status).unwrap_or(3)
}

fn status_counts(by_status: &[u64; 4]) -> String {
    Summary::STATUS_NAMES
        .iter()
        .zip(by_status)
        .map(|(name, n)| format!("{name} {}", group(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `41200` as `41,200`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary table printed at the end of a run.
pub fn summary_table(summary: &Summary) -> String {
    let mut out = String::new();
    let secs = summary.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        summary.out as f64 / secs
    } else {
        0.0
    };
    let pct = |n: u64| {
        if summary.out == 0 {
            0.0
        } else {
            n as f64 * 100.0 / summary.out as f64
        }
    };
    let _ = writeln!(out, "{:<22}{:>12}", "rows read", group(summary.rows));
    let _ = writeln!(out, "{:<22}{:>12}", "rows verified", group(summary.out));
    let _ = writeln!(out, "{:<22}{:>12}", "duplicates", group(summary.duplicates));
    if summary.cached + summary.cache_misses > 0 {
        let _ = writeln!(
            out,
            "{:<22}{:>12}",
            "cached (no probe)",
            group(summary.cached)
        );
        let _ = writeln!(
            out,
            "{:<22}{:>12}",
            "not cached",
            group(summary.cache_misses)
        );
        let _ = writeln!(out, "{:<22}{:>12}", "changed", group(summary.changed));
    }
    if summary.cache_errors > 0 {
        let _ = writeln!(
            out,
            "{:<22}{:>12}",
            "cache errors",
            group(summary.cache_errors)
        );
    }
    for (name, n) in Summary::STATUS_NAMES.iter().zip(summary.by_status) {
        let _ = writeln!(out, "{name:<22}{:>12}  {:>5.1}%", group(n), pct(n));
    }
    let mut reasons: Vec<(&&str, &u64)> = summary.by_reason.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (reason, n) in reasons {
        let _ = writeln!(out, "  {reason:<20}{:>12}  {:>5.1}%", group(*n), pct(*n));
    }
    if summary.second_pass > 0 {
        let _ = writeln!(
            out,
            "{:<22}{:>12}",
            "second pass",
            group(summary.second_pass)
        );
    }
    for (provider, reasons) in &summary.unknown_by {
        let words: Vec<String> = reasons
            .iter()
            .map(|(reason, n)| format!("{reason} {}", group(*n)))
            .collect();
        let _ = writeln!(out, "  unknown at {provider}: {}", words.join(", "));
    }
    let _ = writeln!(out, "{:<22}{:>12.2}s", "elapsed", secs);
    let _ = write!(out, "{:<22}{:>12}/s", "rate", group(rate.round() as u64));
    out
}

/// What an interrupted run says about its output.
pub fn interrupted_line(summary: &Summary) -> String {
    format!(
        "interrupted: {} of {} rows verified; the output holds those {} rows, complete and \
         valid (the `row` column gives each one's input position)",
        group(summary.out),
        group(summary.rows),
        group(summary.out)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(41_200), "41,200");
        assert_eq!(group(1_234_567), "1,234,567");
    }

    #[test]
    fn summary_table_lists_statuses_and_reasons() {
        let mut summary = Summary {
            rows: 4,
            out: 4,
            duplicates: 1,
            by_status: [1, 3, 0, 0],
            elapsed: Duration::from_secs(2),
            ..Summary::default()
        };
        summary.by_reason.insert("accepted", 1);
        summary.by_reason.insert("no_such_domain", 2);
        summary.by_reason.insert("invalid_syntax", 1);
        let table = summary_table(&summary);
        assert!(table.contains("undeliverable"), "{table}");
        assert!(table.contains("75.0%"), "{table}");
        let no_such = table.find("no_such_domain").unwrap();
        let invalid = table.find("invalid_syntax").unwrap();
        assert!(no_such < invalid, "larger counts first:\n{table}");
        assert!(table.contains("2/s"), "{table}");
    }

    #[test]
    fn progress_line_counts_rows_by_status() {
        let mut p = Progress::hidden();
        p.set_read(10);
        p.record(Status::Deliverable);
        p.record(Status::Unknown);
        p.record(Status::Unknown);
        let line = p.line();
        assert!(line.starts_with("3 of 10 rows verified"), "{line}");
        assert!(
            line.contains("deliverable 1, undeliverable 0, risky 0, unknown 2"),
            "{line}"
        );
    }

    #[test]
    fn interrupted_line_says_how_far() {
        let summary = Summary {
            rows: 100_000,
            out: 41_200,
            interrupted: true,
            ..Summary::default()
        };
        assert!(
            interrupted_line(&summary).starts_with("interrupted: 41,200 of 100,000 rows verified")
        );
    }

    #[test]
    fn the_line_says_what_the_last_rows_wait_for_and_when() {
        let mut progress = Progress::hidden();
        progress.set_read(4);
        for _ in 0..3 {
            progress.record(Status::Deliverable);
        }
        progress.set_waiting(WaitingSummary {
            count: 1,
            by_kind: vec![("connection_failed".into(), 1)],
            example: Some("connection_failed (cannot connect: refused)".into()),
            next_in: Some(Duration::from_secs(252)),
        });
        progress.tick();
        let line = progress.line();
        assert!(
            line.ends_with(
                "; 1 waiting: connection_failed (cannot connect: refused), next try in 4m12s"
            ),
            "{line}"
        );
        progress.set_waiting(WaitingSummary::default());
        assert!(!progress.line().contains("waiting"));
    }

    #[test]
    fn several_kinds_of_wait_are_counted() {
        let text = waiting_text(&WaitingSummary {
            count: 3,
            by_kind: vec![("greylisted".into(), 2), ("deferred".into(), 1)],
            example: Some("greylisted".into()),
            next_in: Some(Duration::from_secs(7260)),
        });
        assert_eq!(
            text.as_deref(),
            Some("3 waiting (2 greylisted, 1 deferred): greylisted, next try in 2h01m")
        );
        assert_eq!(eta_secs(10, 0.0), None, "no rate, no ETA");
        assert_eq!(eta_secs(10, 4.0), Some(3));
    }
}
