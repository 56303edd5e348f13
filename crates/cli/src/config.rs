//! Settings of the commands that verify (`verify`, `demo`): the TOML config file (`Config`),
//! the flags and `ROLLCALL_*` environment variables that override it (`EngineFlags`), and their
//! merge into the engine's and the resolver's settings (`build_engine_config`).
//!
//! Precedence: built-in defaults < config file < `ROLLCALL_*` env < flags. clap reads an env
//! var into the flag's value when the flag is absent, so "env < flags" is clap's doing and
//! "file < env/flags" is `build_engine_config`'s.
//!
//! Owns parsing and validation; does not run anything. Every error names the setting and the
//! fix on one line (`ConfigError`, in `config::error`), and the command exits 64 (EX_USAGE) on
//! it. The HELO and MAIL FROM checks are `config::identity`, the egresses `config::egress`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rollcall_core::ports::CachePolicy;
use rollcall_core::{ProviderSpec, ProviderTable, ScoreWeights};
use rollcall_dns::ResolverConfig;
use rollcall_engine::config::{EngineConfig, TlsMode, parse_duration, parse_durations};
use rollcall_engine::shaping::{ShapingOverride, ShapingTable, SiteRule};
use serde::{Deserialize, Deserializer};

mod egress;
mod error;
mod identity;

pub use egress::EgressSection;
pub use error::ConfigError;
use error::invalid;
use identity::{check_helo, check_mail_from};

/// The config file, as written. Every section and key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub identity: IdentitySection,
    #[serde(default)]
    pub smtp: SmtpSection,
    #[serde(default)]
    pub dns: DnsSection,
    #[serde(default)]
    pub retry: RetrySection,
    #[serde(default)]
    pub shaping: ShapingSection,
    #[serde(default)]
    pub cache: CacheSection,
    #[serde(default)]
    pub engine: EngineSection,
    /// `[[egress]]`: the ways out (source addresses, SOCKS5 proxies).
    #[serde(default, rename = "egress")]
    pub egresses: Vec<EgressSection>,
    /// `[[provider]]`: provider rules ahead of the built-in ones (docs/providers.md); one named
    /// like a built-in entry replaces it.
    #[serde(default, rename = "provider")]
    pub providers: Vec<ProviderSpec>,
    /// `[score]`: the weights of the 0-100 score column (docs/scoring.md).
    #[serde(default)]
    pub score: ScoreWeights,
}

/// `[identity]`: who the prober says it is.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    pub helo: Option<String>,
    pub mail_from: Option<String>,
    pub egress: Option<IpAddr>,
}

/// `[smtp]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    pub port: Option<u16>,
    pub tls: Option<TlsSetting>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub greeting_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub command_timeout: Option<Duration>,
}

/// `[dns]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// `ADDR` or `ADDR:PORT`; empty or absent: the system's resolvers.
    #[serde(default, deserialize_with = "nameservers_opt")]
    pub servers: Option<Vec<SocketAddr>>,
    pub allow_private_targets: Option<bool>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub timeout: Option<Duration>,
    pub attempts: Option<usize>,
}

/// `[retry]`: delays as a list (`["6m", "10m"]`) or one comma string (`"6m,10m"`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    #[serde(default, deserialize_with = "durations_opt")]
    pub greylist: Option<Vec<Duration>>,
    #[serde(default, deserialize_with = "durations_opt")]
    pub defer: Option<Vec<Duration>>,
    /// `"10m"`, or `"off"` for no bound beyond the schedules.
    #[serde(default, deserialize_with = "max_wait_opt")]
    pub max_wait: Option<MaxWait>,
    /// `"60s"`, or `"off"`: when an address unknown for a temporary reason is tried again.
    #[serde(default, deserialize_with = "max_wait_opt")]
    pub second_pass: Option<MaxWait>,
}

/// `[cache]`: how long a cached verdict stands for a probe, per verdict class (`0s`: never
/// cached), and how long an expired one is kept to tell what changed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    #[serde(default, deserialize_with = "duration_opt")]
    pub deliverable: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub undeliverable: Option<Duration>,
    /// Risky verdicts: catch-all domains, and mailbox full, disposable, role account.
    #[serde(default, deserialize_with = "duration_opt")]
    pub catch_all: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub unknown: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub keep_expired: Option<Duration>,
}

impl CacheSection {
    /// The policy: the built-in TTLs where the file says nothing.
    pub fn policy(&self) -> CachePolicy {
        let d = CachePolicy::default();
        CachePolicy {
            deliverable: self.deliverable.unwrap_or(d.deliverable),
            undeliverable: self.undeliverable.unwrap_or(d.undeliverable),
            risky: self.catch_all.unwrap_or(d.risky),
            unknown: self.unknown.unwrap_or(d.unknown),
            keep_expired: self.keep_expired.unwrap_or(d.keep_expired),
            ..d
        }
    }
}

/// `[shaping.default]` and `[[shaping.site]]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapingSection {
    #[serde(default)]
    pub default: ShapingOverride,
    #[serde(default)]
    pub site: Vec<SiteRule>,
}

/// `[engine]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub batch_size: Option<usize>,
    pub max_outstanding: Option<usize>,
    pub worker_prefetch: Option<usize>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub catch_all_ttl: Option<Duration>,
}

/// STARTTLS policy as spelled in the file and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsSetting {
    /// Use STARTTLS when offered, certificate not required to verify (what MTAs do).
    Opportunistic,
    /// Fail the probe (`unknown/tls_failed`) without STARTTLS.
    Require,
    /// Never STARTTLS.
    Never,
}

impl From<TlsSetting> for TlsMode {
    fn from(t: TlsSetting) -> TlsMode {
        match t {
            TlsSetting::Opportunistic => TlsMode::Opportunistic,
            TlsSetting::Require => TlsMode::Require,
            TlsSetting::Never => TlsMode::Never,
        }
    }
}

/// The `--lab` preset (config/lab.toml): what a lab aimed at `rollcall sim` needs.
pub const LAB_PRESET: &str = include_str!("config/lab.toml");

impl Config {
    /// Parses a config file's text. Pure: no I/O, no env.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| parse_error(text, &e))
    }

    /// The config of a command: the file at `path` (none: every setting at its default), over
    /// the `--lab` preset when `lab` is set (a setting in the file wins over the preset's).
    pub fn load(path: Option<&Path>, lab: bool) -> Result<Config, ConfigError> {
        match (path, lab) {
            (None, false) => Ok(Config::default()),
            (None, true) => Config::from_toml(LAB_PRESET),
            (Some(path), false) => Config::from_file(path),
            (Some(path), true) => {
                let text = read_file(path)?;
                // Checked alone first, so its errors name its own lines.
                Config::from_file_text(path, &text)?;
                Config::over_lab(&text)
            }
        }
    }

    /// `text` (a valid config) laid over the `--lab` preset, table by table.
    fn over_lab(text: &str) -> Result<Config, ConfigError> {
        let table = |t: &str| t.parse::<toml::Table>().map_err(|e| parse_error(t, &e));
        let mut merged = table(LAB_PRESET)?;
        overlay(&mut merged, table(text)?);
        toml::Value::Table(merged)
            .try_into()
            .map_err(|e| parse_error(text, &e))
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::from_file_text(path, &read_file(path)?)
    }

    /// Parses `text`, read from `path` (named in its errors).
    fn from_file_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text).map_err(|e| match e {
            ConfigError::Parse {
                line,
                setting,
                message,
                ..
            } => ConfigError::Parse {
                file: format!(" {}", path.display()),
                line,
                setting,
                message,
            },
            other => other,
        })
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Lays `top` over `base`: tables merge key by key, any other value of `top` replaces
/// `base`'s (an array of tables such as `[[shaping.site]]` too).
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(under)), toml::Value::Table(over)) => overlay(under, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// One line out of toml's error: the line number and the `section.key` the span falls on.
fn parse_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map_or(0, |s| s.start).min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
    let key = match line_text.split_once('=') {
        Some((key, _)) if !line_text.starts_with('[') => key.trim().to_string(),
        _ => String::new(),
    };
    let setting = match (section, key.is_empty()) {
        (Some(section), false) => format!("{section}.{key}"),
        (Some(section), true) => section,
        (None, false) => key,
        (None, true) => "(top level)".to_string(),
    };
    ConfigError::Parse {
        file: String::new(),
        line,
        setting,
        // toml's messages can span lines (e.g. a list of expected keys); keep one line.
        message: err
            .message()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn max_wait_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MaxWait>, D::Error> {
    let text = String::deserialize(d)?;
    parse_max_wait(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The longest an item waits for retries, or no bound (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxWait(pub Option<Duration>);

pub(crate) fn parse_max_wait(text: &str) -> Result<MaxWait, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(MaxWait(None));
    }
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!(
            "`{text}` is zero; give a duration such as 10m, or off"
        )),
        d => Ok(MaxWait(Some(d))),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn durations_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    let text = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s,
        OneOrMany::Many(list) => list.join(","),
    };
    parse_durations(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn nameservers_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<SocketAddr>>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|s| parse_nameserver(s))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `ADDR` (port 53) or `ADDR:PORT`; IPv6 as `::1` or `[::1]:5353`.
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("`{text}` is not ADDR or ADDR:PORT (e.g. 127.0.0.1:5353 or ::1)"))
}

/// A comma-separated list of durations given as one flag value (`6m,10m,20m`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationList(pub Vec<Duration>);

fn parse_duration_list(text: &str) -> Result<DurationList, String> {
    parse_durations(text).map(DurationList)
}

/// Flags (and their `ROLLCALL_*` env vars) that set the engine's and the resolver's settings.
/// Shared by every command that verifies; absent means "from the config file, else default".
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EngineFlags {
    /// TOML config file; every setting is shown, commented, in deploy/config/rollcall.example.toml.
    #[arg(long, value_name = "FILE", env = "ROLLCALL_CONFIG")]
    pub config: Option<PathBuf>,

    /// A lab aimed at `rollcall sim` on this machine, in one flag: DNS 127.0.0.1:5353 and SMTP
    /// port 2525 (the sim's defaults), private MX targets allowed, retries after 7s, 15s, 30s
    /// (at most 1m of waiting), permissive politeness (8 sessions, 60,000 RCPT/min per site).
    /// The config file, ROLLCALL_* variables and flags override it. Never for real servers.
    #[arg(long, env = "ROLLCALL_LAB", value_parser = clap::builder::BoolishValueParser::new())]
    pub lab: bool,

    /// DNS server to query for MX records, ADDR or ADDR:PORT (port 53 by default); repeat for
    /// more. Default: the system's resolvers (/etc/resolv.conf). [config: dns.servers]
    #[arg(long = "dns", value_name = "ADDR[:PORT]", env = "ROLLCALL_DNS", value_delimiter = ',',
          value_parser = parse_nameserver)]
    pub dns: Vec<SocketAddr>,

    /// Time to wait for one DNS answer, e.g. 3s or 500ms. [config: dns.timeout; default 3s]
    #[arg(long, value_name = "DURATION", env = "ROLLCALL_DNS_TIMEOUT", value_parser = parse_duration)]
    pub dns_timeout: Option<Duration>,

    /// TCP port of every MX host; 25 in the wild, another for a lab. [config: smtp.port]
    #[arg(long, value_name = "N", env = "ROLLCALL_SMTP_PORT")]
    pub smtp_port: Option<u16>,

    /// Name sent in EHLO. Set it to a name whose A/AAAA record is your egress IP and whose
    /// PTR points back: many servers refuse a HELO name that does not resolve. Default: this
    /// machine's host name when fully qualified, else rollcall.invalid. [config: identity.helo]
    #[arg(long, value_name = "NAME", env = "ROLLCALL_HELO")]
    pub helo: Option<String>,

    /// Reverse path of every probe (MAIL FROM), `<>` for the null sender. Use an address at a
    /// domain you own: servers check that its domain exists. Default: verify@HELO-NAME.
    /// [config: identity.mail_from]
    #[arg(long, value_name = "ADDR", env = "ROLLCALL_MAIL_FROM")]
    pub mail_from: Option<String>,

    /// Local IP address to probe from; repeat it (or separate with commas) for several, each
    /// an egress named by its address with its own politeness budget at every site
    /// (servers count per client address). Overrides the file's [[egress]] tables.
    /// [config: [[egress]] or identity.egress]
    #[arg(
        long,
        value_name = "IP",
        env = "ROLLCALL_EGRESS",
        value_delimiter = ','
    )]
    pub egress: Vec<IpAddr>,

    /// STARTTLS policy. [config: smtp.tls; default opportunistic]
    #[arg(long, value_name = "MODE", env = "ROLLCALL_TLS")]
    pub tls: Option<TlsSetting>,

    /// Time to wait for a TCP connection to an MX host. [config: smtp.connect_timeout; default 10s]
    #[arg(long, value_name = "DURATION", env = "ROLLCALL_CONNECT_TIMEOUT", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// Time to wait for the server's greeting (RFC 5321 4.5.3.2 allows 5 min).
    /// [config: smtp.greeting_timeout; default 60s]
    #[arg(long, value_name = "DURATION", env = "ROLLCALL_GREETING_TIMEOUT", value_parser = parse_duration)]
    pub greeting_timeout: Option<Duration>,

    /// Time to wait for the reply to one command. [config: smtp.command_timeout; default 60s]
    #[arg(long, value_name = "DURATION", env = "ROLLCALL_COMMAND_TIMEOUT", value_parser = parse_duration)]
    pub command_timeout: Option<Duration>,

    /// Delays before each retry of a greylisted address, comma-separated, e.g. 6m,10m,20m,40m,60m
    /// (the default) or 7s,15s,30s for a lab; used up: unknown/greylisted. [config: retry.greylist]
    #[arg(long, value_name = "DURATIONS", env = "ROLLCALL_GREYLIST_RETRY", value_parser = parse_duration_list)]
    pub greylist_retry: Option<DurationList>,

    /// Delays before each retry of a deferral (4xx, connection failure), comma-separated.
    /// [config: retry.defer; default 1m,5m,15m]
    #[arg(long, value_name = "DURATIONS", env = "ROLLCALL_DEFER_RETRY", value_parser = parse_duration_list)]
    pub defer_retry: Option<DurationList>,

    /// The longest an address waits for retries (greylisting, deferrals), counted from its
    /// first wait: a retry that would come later is not made, and the address ends as unknown
    /// with the reason it was waiting for (greylisted, deferred, timeout...), so a run ends at
    /// most this long after its last address was first tried. `off`: the retry schedules alone
    /// decide (greylisting's full schedule takes over 2 h). [config: retry.max_wait; default 10m]
    #[arg(long, value_name = "DURATION|off", env = "ROLLCALL_MAX_WAIT", value_parser = parse_max_wait)]
    pub max_wait: Option<MaxWait>,

    /// How long after an address ended unknown for a temporary reason (deferred: throttled or
    /// a 4xx; timeout; greylisting not through) it is verified once more, later in the same
    /// run; its verdict is the second try's. `off`: no second pass.
    /// [config: retry.second_pass; default 60s]
    #[arg(long, value_name = "DURATION|off", env = "ROLLCALL_SECOND_PASS", value_parser = parse_max_wait)]
    pub second_pass: Option<MaxWait>,

    /// Probe MX targets in private and special-purpose ranges (labs, tests). Off by default:
    /// such targets are refused as unknown/forbidden_target (SSRF guard).
    /// [config: dns.allow_private_targets]
    #[arg(long, env = "ROLLCALL_ALLOW_PRIVATE", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_private: bool,

    /// Addresses per queued batch (one domain, one site). [config: engine.batch_size; default 100]
    #[arg(long, value_name = "N", env = "ROLLCALL_BATCH_SIZE")]
    pub batch_size: Option<usize>,

    /// Addresses in flight at most; input reading pauses beyond (bounds memory).
    /// [config: engine.max_outstanding; default 100000]
    #[arg(long, value_name = "N", env = "ROLLCALL_MAX_OUTSTANDING")]
    pub max_outstanding: Option<usize>,
}

/// What a verifying command needs besides its input and output.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub engine: EngineConfig,
    pub resolver: ResolverConfig,
    /// True when no HELO name was configured and a guess is used (worth a warning).
    pub helo_defaulted: bool,
    /// The result cache's TTLs (`[cache]`); `--max-age` and `--refresh` are the command's.
    pub cache: CachePolicy,
}

/// Merges defaults < `file` < env/flags (`flags`) into engine and resolver settings, and checks
/// them. `default_helo` is used when neither the file nor the flags name one.
pub(crate) fn build_engine_config(
    file: &Config,
    flags: &EngineFlags,
    default_helo: &str,
) -> Result<Settings, ConfigError> {
    let mut engine = EngineConfig::default();
    let helo_defaulted = merge_identity(&mut engine, file, flags, default_helo)?;
    merge_smtp(&mut engine, file, flags)?;
    merge_retry(&mut engine, file, flags);
    let allow_private = flags.allow_private || file.dns.allow_private_targets.unwrap_or(false);
    engine.allow_private_targets = allow_private;
    engine.shaping = ShapingTable::with_overrides(&file.shaping.default, file.shaping.site.clone());
    engine.providers = ProviderTable::with_overrides(file.providers.clone())
        .map_err(|e| invalid("[[provider]]", &e, "see docs/providers.md for the fields"))?;
    file.score.validate_for(&engine.providers).map_err(|e| {
        invalid(
            "[score]",
            &e.to_string(),
            "see docs/scoring.md for the keys",
        )
    })?;
    engine.score = file.score.clone();
    merge_engine(&mut engine, file, flags)?;
    let resolver = resolver_config(file, flags, allow_private)?;
    Ok(Settings {
        engine,
        resolver,
        helo_defaulted,
        cache: file.cache.policy(),
    })
}

/// The HELO name, MAIL FROM and egresses; true when the HELO name is `default_helo`.
fn merge_identity(
    engine: &mut EngineConfig,
    file: &Config,
    flags: &EngineFlags,
    default_helo: &str,
) -> Result<bool, ConfigError> {
    let id = &file.identity;
    let helo = flags.helo.clone().or_else(|| id.helo.clone());
    let helo_defaulted = helo.is_none();
    engine.helo_name = helo.unwrap_or_else(|| default_helo.to_string());
    check_helo(&engine.helo_name)?;
    engine.mail_from = match flags.mail_from.clone().or_else(|| id.mail_from.clone()) {
        Some(from) => check_mail_from(&from)?,
        None => format!("verify@{}", engine.helo_name),
    };
    engine.egresses = egress::resolve(
        &flags.egress,
        &file.egresses,
        id.egress,
        &engine.helo_name,
        &engine.mail_from,
    )?;
    Ok(helo_defaulted)
}

/// The SMTP port, STARTTLS and the timeouts.
fn merge_smtp(
    engine: &mut EngineConfig,
    file: &Config,
    flags: &EngineFlags,
) -> Result<(), ConfigError> {
    let smtp = &file.smtp;
    engine.smtp_port = flags.smtp_port.or(smtp.port).unwrap_or(engine.smtp_port);
    if engine.smtp_port == 0 {
        return Err(invalid(
            "smtp.port",
            "is 0",
            "give the MX hosts' SMTP port (25 in the wild)",
        ));
    }
    if let Some(tls) = flags.tls.or(smtp.tls) {
        engine.tls = tls.into();
    }
    let timeouts = [
        (
            "smtp.connect_timeout",
            flags.connect_timeout.or(smtp.connect_timeout),
            &mut engine.connect_timeout,
        ),
        (
            "smtp.greeting_timeout",
            flags.greeting_timeout.or(smtp.greeting_timeout),
            &mut engine.greeting_timeout,
        ),
        (
            "smtp.command_timeout",
            flags.command_timeout.or(smtp.command_timeout),
            &mut engine.command_timeout,
        ),
    ];
    for (setting, value, slot) in timeouts {
        if let Some(value) = value {
            if value.is_zero() {
                return Err(invalid(setting, "is zero", "give a duration such as 10s"));
            }
            *slot = value;
        }
    }
    Ok(())
}

/// The CLI's second pass delay when neither the file nor the flags name one.
pub const DEFAULT_SECOND_PASS: Duration = Duration::from_secs(60);

/// The greylist and deferral retry schedules, the bound on retry waits and the second pass.
fn merge_retry(engine: &mut EngineConfig, file: &Config, flags: &EngineFlags) {
    let retry = &file.retry;
    if let Some(list) = flags
        .greylist_retry
        .as_ref()
        .map(|l| &l.0)
        .or(retry.greylist.as_ref())
    {
        engine.greylist_retry = list.clone();
    }
    if let Some(list) = flags
        .defer_retry
        .as_ref()
        .map(|l| &l.0)
        .or(retry.defer.as_ref())
    {
        engine.defer_retry = list.clone();
    }
    if let Some(MaxWait(max_wait)) = flags.max_wait.or(retry.max_wait) {
        engine.max_wait = max_wait;
    }
    engine.second_pass = match flags.second_pass.or(retry.second_pass) {
        Some(MaxWait(second_pass)) => second_pass,
        None => Some(DEFAULT_SECOND_PASS),
    };
}

/// Batch size, rows in flight, worker prefetch and the catch-all cache.
fn merge_engine(
    engine: &mut EngineConfig,
    file: &Config,
    flags: &EngineFlags,
) -> Result<(), ConfigError> {
    let eng = &file.engine;
    engine.batch_size = flags
        .batch_size
        .or(eng.batch_size)
        .unwrap_or(engine.batch_size);
    engine.max_outstanding = flags
        .max_outstanding
        .or(eng.max_outstanding)
        .unwrap_or(engine.max_outstanding);
    engine.worker_prefetch = eng.worker_prefetch.unwrap_or(engine.worker_prefetch);
    engine.catch_all_ttl = eng.catch_all_ttl.unwrap_or(engine.catch_all_ttl);
    for (setting, value) in [
        ("engine.batch_size", engine.batch_size),
        ("engine.max_outstanding", engine.max_outstanding),
        ("engine.worker_prefetch", engine.worker_prefetch),
    ] {
        if value == 0 {
            return Err(invalid(setting, "is 0", "give a positive number"));
        }
    }
    Ok(())
}

/// The resolver: nameservers, timeout, attempts, private targets.
fn resolver_config(
    file: &Config,
    flags: &EngineFlags,
    allow_private: bool,
) -> Result<ResolverConfig, ConfigError> {
    let dns = &file.dns;
    let mut resolver = ResolverConfig {
        nameservers: if flags.dns.is_empty() {
            dns.servers.clone().unwrap_or_default()
        } else {
            flags.dns.clone()
        },
        allow_private_targets: allow_private,
        ..ResolverConfig::default()
    };
    resolver.timeout = flags
        .dns_timeout
        .or(dns.timeout)
        .unwrap_or(resolver.timeout);
    resolver.attempts = dns.attempts.unwrap_or(resolver.attempts);
    resolver.validate().map_err(|e| ConfigError::Invalid {
        setting: "dns",
        reason: e.to_string(),
        fix: "see the [dns] section of the example config",
    })?;
    Ok(resolver)
}

/// The HELO name used when none is configured: the host name when it is fully qualified (what
/// an MTA would announce), else `rollcall.invalid`, which tells the truth that none was set.
pub(crate) fn default_helo_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
        .find(|name| name.contains('.') && check_helo(name).is_ok())
        .unwrap_or_else(|| EngineConfig::default().helo_name)
}

#[cfg(test)]
mod tests;
