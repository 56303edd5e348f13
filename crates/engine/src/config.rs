//! What the engine needs to know besides shaping: who we say we are (HELO name, MAIL FROM,
//! egress identities), the SMTP port, how long to wait, how to retry. Parsing of the file and
//! flags lives in the CLI; this is the resolved result.

use std::time::Duration;

use crate::egress::Egress;
use crate::shaping::ShapingTable;
use rollcall_core::ProviderTable;

/// Resolved engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Name announced in EHLO/HELO. Should resolve to the egress address (many MTAs check).
    pub helo_name: String,
    /// Reverse path of every probe; greylisting keys on it, so it stays the same across retries.
    pub mail_from: String,
    /// The ways out this worker probes from, each with its own politeness budget at every
    /// site. Empty: one direct egress with `helo_name` and `mail_from` (see [`Self::egress_list`]).
    pub egresses: Vec<Egress>,
    /// The SMTP port of every MX host (25 in the wild; the sim and labs use others).
    pub smtp_port: u16,
    pub tls: TlsMode,
    pub connect_timeout: Duration,
    pub greeting_timeout: Duration,
    pub command_timeout: Duration,
    /// Delays before each greylist retry; when used up the verdict is `unknown/greylisted`.
    pub greylist_retry: Vec<Duration>,
    /// Delays before each retry of a deferral (4xx, connection failure); when used up the
    /// verdict is `unknown/deferred` (or the failure's own reason).
    pub defer_retry: Vec<Duration>,
    /// The longest an item waits for retries (greylisting, deferrals), counted from the first
    /// time it had to wait: a retry that would come later is not scheduled, and the item ends
    /// as `unknown` with the reason it was waiting for. `None`: the schedules alone decide.
    pub max_wait: Option<Duration>,
    /// Addresses that ended `unknown` for a temporary reason (deferred: throttled or 4xx,
    /// timeout, greylisting not through) are verified once more this long after, later in the
    /// same run, on a fresh item (any egress). `None`: no second pass (the library's default;
    /// the CLI's is 60 s).
    pub second_pass: Option<Duration>,
    /// How long a catch-all verdict is believed.
    pub catch_all_ttl: Duration,
    /// MX targets in private ranges (labs, tests, the demo's sim) are probed only when set.
    pub allow_private_targets: bool,
    pub shaping: ShapingTable,
    /// Who runs a domain's mail and that provider's rules (RCPTs per transaction, whether a
    /// 250 is believed, its own reply rows): the built-in table with the user's entries ahead.
    pub providers: ProviderTable,
    /// The weights of each row's 0-100 score (`[score]`, docs/scoring.md).
    pub score: rollcall_core::ScoreWeights,
    /// Addresses per queued batch (one domain, one site).
    pub batch_size: usize,
    /// Items ingested and not yet finished, at most: bounds the coordinator's memory.
    pub max_outstanding: usize,
    /// Batches a worker holds at once (prefetch).
    pub worker_prefetch: usize,
    /// TTL of the fleet-wide slots a live session holds (site and server address), renewed
    /// every third of it while the session lives: how soon a dead worker's slots are free.
    pub session_lease_ttl: Duration,
}

/// STARTTLS policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Use STARTTLS when offered, without verifying the certificate (record whether it would
    /// have verified). What MTAs do among themselves.
    #[default]
    Opportunistic,
    /// Fail (`unknown/tls_failed`) when STARTTLS is missing or its handshake fails.
    Require,
    Never,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            helo_name: "rollcall.invalid".to_string(),
            mail_from: String::new(),
            egresses: Vec::new(),
            smtp_port: 25,
            tls: TlsMode::Opportunistic,
            connect_timeout: Duration::from_secs(10),
            // RFC 5321 4.5.3.2 allows servers 5 minutes; tarpits use it. 60 s keeps a bulk run
            // moving while still outwaiting ordinary slow greeters.
            greeting_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(60),
            greylist_retry: [6, 10, 20, 40, 60]
                .iter()
                .map(|m| Duration::from_secs(m * 60))
                .collect(),
            defer_retry: [60, 300, 900]
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            // Ten minutes: a list with a few broken servers still ends soon after its last
            // address was first tried (the defer schedule alone would take 21 minutes).
            max_wait: Some(Duration::from_secs(600)),
            second_pass: None,
            catch_all_ttl: Duration::from_secs(7 * 24 * 3600),
            allow_private_targets: false,
            shaping: ShapingTable::default(),
            providers: ProviderTable::default(),
            score: rollcall_core::ScoreWeights::default(),
            batch_size: 100,
            max_outstanding: 100_000,
            worker_prefetch: 512,
            session_lease_ttl: Duration::from_secs(15),
        }
    }
}

impl EngineConfig {
    /// The egresses to probe from: the configured ones, or the one direct egress.
    pub fn egress_list(&self) -> Vec<Egress> {
        if self.egresses.is_empty() {
            vec![Egress::direct(&self.helo_name, &self.mail_from)]
        } else {
            self.egresses.clone()
        }
    }
}

/// Parses `6m,10m,20m` / `7s,15s,30s` / `500ms,1s` / `1h` into durations.
pub fn parse_durations(text: &str) -> Result<Vec<Duration>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_duration)
        .collect()
}

/// Parses one duration: a number followed by `ms`, `s`, `m`, `h` or `d` (days, for cache ages).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("`{text}` has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_durations("6m,10m, 20m").unwrap(),
            vec![
                Duration::from_secs(360),
                Duration::from_secs(600),
                Duration::from_secs(1200)
            ]
        );
        assert_eq!(
            parse_durations("500ms,1.5s").unwrap(),
            vec![Duration::from_millis(500), Duration::from_millis(1500)]
        );
        assert!(parse_duration("10").is_err());
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("10w").is_err());
        assert!(parse_duration("m").is_err());
    }
}
