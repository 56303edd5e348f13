//! The result cache of a command: its flags (`--cache FILE`, `--no-cache`, `--refresh`,
//! `--max-age`), where the file lives by default (the user's cache folder), and opening it
//! into the engine's `CacheSetup` with the `[cache]` TTLs. `verify` uses a SQLite file
//! (`rollcall-sqlite`), `coordinator` the fleet's Redis (`rollcall-redis`); `demo` and `bench`
//! use none, so their figures stay comparable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rollcall_core::ports::{CacheClock, CachePolicy, ResultCache};
use rollcall_engine::config::parse_duration;
use rollcall_engine::coordinator::CacheSetup;
use rollcall_sqlite::SqliteCache;

use crate::exit::{EX_CANTCREAT, EX_USAGE, Failure};

/// The file under the user's cache folder.
const FILE: &str = "rollcall/results.sqlite";

/// How a run reads the cache (shared by `verify` and `coordinator`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CacheReadFlags {
    /// No result cache: every address is verified, nothing is remembered.
    #[arg(long, env = "ROLLCALL_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,

    /// Verify every address again, whatever the cache holds (the new verdicts are written
    /// to it, and `changed` says what changed).
    #[arg(long, env = "ROLLCALL_REFRESH", value_parser = clap::builder::BoolishValueParser::new())]
    pub refresh: bool,

    /// Verify again every address whose cached verdict is older than this, e.g. 7d or 12h,
    /// even within its TTL ([cache] in the config file: deliverable 30d, undeliverable 90d,
    /// catch-all 7d, unknown never).
    #[arg(long, value_name = "DURATION", env = "ROLLCALL_MAX_AGE", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
}

impl CacheReadFlags {
    /// `policy` (the file's TTLs) with this run's `--refresh` and `--max-age`.
    pub fn policy(&self, policy: CachePolicy) -> CachePolicy {
        CachePolicy {
            refresh: self.refresh,
            max_age: self.max_age,
            ..policy
        }
    }

    /// The setup over `store`, or `None` under `--no-cache`.
    pub fn setup(&self, store: Arc<dyn ResultCache>, policy: CachePolicy) -> Option<CacheSetup> {
        (!self.no_cache).then(|| CacheSetup {
            store,
            policy: self.policy(policy),
            clock: CacheClock::System,
        })
    }
}

/// The result cache flags of `verify`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CacheFlags {
    /// The result cache, a SQLite file: a fresh verdict found there comes out with `cached`
    /// true and no probe, new verdicts are written to it. Default:
    /// $XDG_CACHE_HOME/rollcall/results.sqlite, else ~/.cache/rollcall/results.sqlite.
    #[arg(
        long,
        value_name = "FILE",
        env = "ROLLCALL_CACHE",
        conflicts_with = "no_cache"
    )]
    pub cache: Option<PathBuf>,

    #[command(flatten)]
    pub read: CacheReadFlags,
}

/// The cache file used when `--cache` is not given: under `$XDG_CACHE_HOME` when it is set to
/// an absolute path (the XDG Base Directory rule), else under `$HOME/.cache`; `None` when
/// neither is known.
pub fn default_cache_path(xdg_cache_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    if let Some(xdg) = xdg_cache_home.filter(|x| Path::new(x).is_absolute()) {
        return Some(Path::new(xdg).join(FILE));
    }
    home.filter(|h| !h.is_empty())
        .map(|h| Path::new(h).join(".cache").join(FILE))
}

impl CacheFlags {
    /// The file this run uses, or `None` under `--no-cache`.
    pub fn path(&self) -> Result<Option<PathBuf>, Failure> {
        if self.read.no_cache {
            return Ok(None);
        }
        if let Some(path) = &self.cache {
            return Ok(Some(path.clone()));
        }
        let xdg = std::env::var("XDG_CACHE_HOME").ok();
        let home = std::env::var("HOME").ok();
        default_cache_path(xdg.as_deref(), home.as_deref())
            .map(Some)
            .ok_or_else(|| {
                Failure::new(
                    EX_USAGE,
                    "no cache folder is known (neither XDG_CACHE_HOME nor HOME is set); fix: \
                     --cache FILE, or --no-cache",
                )
            })
    }

    /// Opens the cache file (creating it and its folder) and forgets what has lapsed.
    pub async fn open(&self, policy: CachePolicy) -> Result<Option<CacheSetup>, Failure> {
        let Some(path) = self.path()? else {
            return Ok(None);
        };
        let cache = SqliteCache::open(&path).map_err(|e| {
            Failure::new(
                EX_CANTCREAT,
                format!("{e}; fix: --cache FILE somewhere writable, or --no-cache"),
            )
        })?;
        if let Err(e) = cache.prune(CacheClock::System.now()).await {
            tracing::warn!(error = %e, path = %path.display(), "cannot prune the result cache");
        }
        tracing::info!(path = %path.display(), "result cache");
        Ok(self.read.setup(Arc::new(cache), policy))
    }
}

#[cfg(test)]
mod sim_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_follows_xdg_then_home() {
        assert_eq!(
            default_cache_path(Some("/var/cache/me"), Some("/home/me")),
            Some(PathBuf::from("/var/cache/me/rollcall/results.sqlite"))
        );
        // A relative XDG_CACHE_HOME is invalid by the spec and ignored.
        assert_eq!(
            default_cache_path(Some("rel"), Some("/home/me")),
            Some(PathBuf::from("/home/me/.cache/rollcall/results.sqlite"))
        );
        assert_eq!(
            default_cache_path(None, Some("/home/me")),
            Some(PathBuf::from("/home/me/.cache/rollcall/results.sqlite"))
        );
        assert_eq!(default_cache_path(None, None), None);
    }

    #[test]
    fn no_cache_means_no_file_and_flags_bound_the_policy() {
        let flags = CacheFlags {
            cache: Some("/x/y.sqlite".into()),
            read: CacheReadFlags {
                no_cache: true,
                ..CacheReadFlags::default()
            },
        };
        assert_eq!(flags.path().ok().flatten(), None);
        let read = CacheReadFlags {
            no_cache: false,
            refresh: true,
            max_age: Some(Duration::from_secs(60)),
        };
        let policy = read.policy(CachePolicy::default());
        assert!(policy.refresh);
        assert_eq!(policy.max_age, Some(Duration::from_secs(60)));
        assert_eq!(policy.deliverable, CachePolicy::default().deliverable);
    }
}
