//! `MemoryCache`: the `ResultCache` of one process, for tests and as the reference for the
//! stores' semantics. It keeps entries as the stores do, in their encoded form, so the
//! encoding is exercised by every test that uses it.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::cache::{CacheEntry, CacheError, ResultCache, decode_entry, encode_entry};

/// Entries in a map: key -> (keep until, encoded entry).
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (u64, String)>>,
}

impl MemoryCache {
    pub fn new() -> Self {
        MemoryCache::default()
    }

    /// Entries held, lapsed ones included.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ResultCache for MemoryCache {
    async fn get_many(
        &self,
        keys: &[String],
        now: u64,
    ) -> Result<Vec<Option<CacheEntry>>, CacheError> {
        let entries = self
            .entries
            .lock()
            .map_err(|_| CacheError::Data("memory cache poisoned".into()))?;
        keys.iter()
            .map(|key| match entries.get(key) {
                Some((keep_until, value)) if *keep_until > now => {
                    decode_entry(key, value).map(Some)
                }
                _ => Ok(None),
            })
            .collect()
    }

    async fn put_many(&self, new: &[CacheEntry], _now: u64) -> Result<(), CacheError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| CacheError::Data("memory cache poisoned".into()))?;
        for entry in new {
            entries.insert(entry.key.clone(), (entry.keep_until, encode_entry(entry)));
        }
        Ok(())
    }
}
