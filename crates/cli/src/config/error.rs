//! `ConfigError`: a bad config file, flag or env var, one line each (the setting, what is
//! wrong, the fix), and where the commented example of every setting lives. Shared by the
//! config's parts (`config`, `config::identity`, `config::egress`); checks nothing itself.

use std::path::PathBuf;

/// Where the commented example of every setting lives (named in errors and `--help`).
pub(super) const EXAMPLE_CONFIG: &str = "deploy/config/rollcall.example.toml";

/// A bad config file, flag or env var. Displayed as one line: the setting, what is wrong, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (fix: check the --config path)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema (unknown key, wrong type, bad value).
    #[error("config{file} line {line}: `{setting}`: {message} (see {EXAMPLE_CONFIG})")]
    Parse {
        /// ` FILE` or empty.
        file: String,
        line: usize,
        setting: String,
        message: String,
    },
    /// A value that parsed but cannot be used.
    #[error("invalid setting `{setting}`: {reason} (fix: {fix})")]
    Invalid {
        setting: &'static str,
        reason: String,
        fix: &'static str,
    },
}

pub(super) fn invalid(setting: &'static str, reason: &str, fix: &'static str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.to_string(),
        fix,
    }
}
