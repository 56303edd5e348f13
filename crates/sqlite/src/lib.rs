//! `rollcall-sqlite`: the `ResultCache` of the embedded wiring, in one local SQLite file (the
//! bundled SQLite, no system library). It passes the same contract
//! (`rollcall_core::ports::contract::result_cache`) as the in-memory and Redis caches.
//!
//! Owns the file's schema, its pragmas and the batched reads and writes; does not decide what
//! is fresh (the caller's `CachePolicy` does) nor where the file lives (the command line does).
//!
//! # Layout
//!
//! One table, `results (key TEXT PRIMARY KEY, keep_until INTEGER, value TEXT) WITHOUT ROWID`:
//! `key` is `EmailAddress::cache_key`, `value` the entry in the encoding every store shares
//! (`rollcall_core::ports::encode_entry`), `keep_until` repeated in a column so lapsed entries
//! are skipped and pruned without decoding them. The file is in WAL mode (readers never wait
//! for the writer; a second run on the same file waits up to `BUSY_TIMEOUT` for a write), and
//! every `put_many` is one transaction.
//!
//! Calls run on tokio's blocking pool, one at a time over one connection: a batch of a
//! thousand keys is one statement per `IN_CHUNK` keys, so the lock is held briefly.

#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::ports::{CacheEntry, CacheError, ResultCache, decode_entry, encode_entry};
use rusqlite::{Connection, ToSql, params};

/// How long a write waits for another process's write to the same file.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys per `SELECT ... IN (...)` (well under SQLite's limit of bound parameters).
const IN_CHUNK: usize = 500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY NOT NULL,
    keep_until INTEGER NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_keep_until ON results (keep_until);
";

/// Why the cache file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot create the folder of the cache file {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the cache file {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cache file: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl Error {
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Error::Folder { .. } => "folder",
            Error::Open { .. } => "open",
            Error::Sqlite(_) => "sqlite",
        }
    }
}

impl From<Error> for CacheError {
    fn from(e: Error) -> CacheError {
        match e {
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                CacheError::Transport(e.to_string())
            }
            other => CacheError::Data(other.to_string()),
        }
    }
}

/// Verdicts in a SQLite file. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct SqliteCache {
    con: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn seconds(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteCache {
    /// Opens (or creates, with its folder) the cache file at `path`.
    pub fn open(path: &Path) -> Result<SqliteCache, Error> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|source| Error::Folder {
                path: folder.to_path_buf(),
                source,
            })?;
        }
        let open = |path: &Path| -> Result<Connection, rusqlite::Error> {
            let con = Connection::open(path)?;
            con.busy_timeout(BUSY_TIMEOUT)?;
            // WAL: readers never block the writer; NORMAL sync is durable across a crash of
            // the process (a power cut may lose the last transactions: a cache can afford it).
            let _mode: String = con.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            con.execute_batch("PRAGMA synchronous = NORMAL;")?;
            con.execute_batch(SCHEMA)?;
            Ok(con)
        };
        // Two runs opening a new file at once: switching it to WAL and creating the schema
        // can answer `database is locked` at once, without waiting in the busy handler. Try
        // again for up to `BUSY_TIMEOUT`.
        let started = std::time::Instant::now();
        let con = loop {
            match open(path) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other,
            }
        }
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(SqliteCache {
            con: Arc::new(Mutex::new(con)),
            path: path.to_path_buf(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the entries kept no longer than `now`; returns how many.
    pub async fn prune(&self, now: u64) -> Result<usize, CacheError> {
        self.with(move |con| {
            Ok(con.execute(
                "DELETE FROM results WHERE keep_until <= ?1",
                params![seconds(now)],
            )?)
        })
        .await
    }

    /// Entries held, lapsed ones included.
    pub async fn count(&self) -> Result<u64, CacheError> {
        self.with(|con| {
            let n: i64 = con.query_row("SELECT count(*) FROM results", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, CacheError> {
        let con = self.con.clone();
        tokio::task::spawn_blocking(move || {
            let mut con = con
                .lock()
                .map_err(|_| CacheError::Data("the cache connection was poisoned".into()))?;
            f(&mut con).map_err(CacheError::from)
        })
        .await
        .map_err(|e| CacheError::Data(format!("a cache task failed: {e}")))?
    }
}

#[async_trait]
impl ResultCache for SqliteCache {
    async fn get_many(
        &self,
        keys: &[String],
        now: u64,
    ) -> Result<Vec<Option<CacheEntry>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        let found = self
            .with(move |con| {
                let mut found: HashMap<String, String> = HashMap::with_capacity(keys.len());
                for chunk in keys.chunks(IN_CHUNK) {
                    let marks = vec!["?"; chunk.len()].join(",");
                    let sql = format!(
                        "SELECT key, value FROM results WHERE keep_until > ? AND key IN ({marks})"
                    );
                    let mut stmt = con.prepare_cached(&sql)?;
                    let now = seconds(now);
                    let mut args: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() + 1);
                    args.push(&now);
                    for key in chunk {
                        args.push(key);
                    }
                    let mut rows = stmt.query(&args[..])?;
                    while let Some(row) = rows.next()? {
                        found.insert(row.get(0)?, row.get(1)?);
                    }
                }
                Ok((keys, found))
            })
            .await?;
        let (keys, found) = found;
        keys.iter()
            .map(|key| match found.get(key) {
                Some(value) => decode_entry(key, value).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    async fn put_many(&self, entries: &[CacheEntry], _now: u64) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, i64, String)> = entries
            .iter()
            .map(|e| (e.key.clone(), seconds(e.keep_until), encode_entry(e)))
            .collect();
        self.with(move |con| {
            let tx = con.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO results (key, keep_until, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET keep_until = excluded.keep_until, \
                     value = excluded.value",
                )?;
                for (key, keep_until, value) in &rows {
                    stmt.execute(params![key, keep_until, value])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
