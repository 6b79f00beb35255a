//! The baseline seam: cached per-query student baselines `s_i`.

use serde::{Deserialize, Serialize};

use crate::Result;

/// What a baseline depends on. Two runs that agree on all of it can share the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BaselineKey {
    /// [`crate::Student::id`].
    pub student_id: String,
    /// [`crate::PromptSource::dataset_id`].
    pub dataset: String,
    /// The query.
    pub query_id: String,
    /// [`crate::Query::content_hash`]: the query's text and reference. Ids can be row positions,
    /// so an edited or reordered file must not return another question's value.
    pub query_hash: String,
    /// [`crate::stable_hash`] of the student prompt template.
    pub template_hash: String,
    /// [`crate::stable_hash`] of the whole reward definition (kind, weights, models, options).
    pub reward_hash: String,
    /// [`crate::SamplingParams::cache_key`] of the student's sampling.
    pub sampling: String,
}

/// A cached baseline: the mean reward of `samples` student replies with no instruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineValue {
    /// Mean scalar reward over the completed samples.
    pub mean: f64,
    /// Completed samples the mean is over.
    pub samples: u32,
    /// Samples that failed and were left out.
    pub failures: u32,
}

/// Lookup and append of baselines. The Parquet implementation lives in `wst-data`.
pub trait BaselineStore {
    /// The cached value, if any.
    fn get(&self, key: &BaselineKey) -> Option<BaselineValue>;

    /// Records new values and persists them (atomically).
    fn put(&mut self, entries: &[(BaselineKey, BaselineValue)]) -> Result<()>;
}

impl<T: BaselineStore + ?Sized> BaselineStore for &mut T {
    fn get(&self, key: &BaselineKey) -> Option<BaselineValue> {
        (**self).get(key)
    }
    fn put(&mut self, entries: &[(BaselineKey, BaselineValue)]) -> Result<()> {
        (**self).put(entries)
    }
}

impl<T: BaselineStore + ?Sized> BaselineStore for Box<T> {
    fn get(&self, key: &BaselineKey) -> Option<BaselineValue> {
        (**self).get(key)
    }
    fn put(&mut self, entries: &[(BaselineKey, BaselineValue)]) -> Result<()> {
        (**self).put(entries)
    }
}

/// An in-memory [`BaselineStore`].
#[derive(Debug, Default, Clone)]
pub struct MemoryBaselines(pub std::collections::BTreeMap<BaselineKey, BaselineValue>);

impl BaselineStore for MemoryBaselines {
    fn get(&self, key: &BaselineKey) -> Option<BaselineValue> {
        self.0.get(key).cloned()
    }
    fn put(&mut self, entries: &[(BaselineKey, BaselineValue)]) -> Result<()> {
        for (k, v) in entries {
            self.0.insert(k.clone(), v.clone());
        }
        Ok(())
    }
}

/// FNV-1a 64-bit hash as 16 hex digits: stable across platforms, versions and runs (unlike
/// `std::hash`), for cache keys of templates and configs.
pub fn stable_hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// [`BaselineKey::reward_hash`] of a `[reward]` table: everything that changes a score (kind,
/// weights, reward models, extraction options); `batch_size` only changes speed and is left out.
pub fn reward_hash(reward: &crate::RewardConfig) -> String {
    let crate::RewardConfig {
        kind,
        weights,
        models,
        last_number_fallback,
        batch_size: _,
        components,
    } = reward;
    let definition =
        serde_json::to_string(&(kind, weights, models, last_number_fallback, components))
            .unwrap_or_default();
    stable_hash(&["reward", &definition])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reward_hash_covers_the_definition_but_not_the_batch_size() {
        let base = crate::RewardConfig::default();
        let h = reward_hash(&base);
        let mut c = base.clone();
        c.batch_size = 3;
        assert_eq!(reward_hash(&c), h);
        let mut c = base.clone();
        c.last_number_fallback = !c.last_number_fallback;
        assert_ne!(reward_hash(&c), h);
        let mut c = base.clone();
        c.models.insert("helpful".into(), "org/rm".into());
        assert_ne!(reward_hash(&c), h);
        let mut c = base.clone();
        c.kind = crate::RewardKind::RewardModel;
        assert_ne!(reward_hash(&c), h);
        let mut c = base;
        c.weights.insert("correct".into(), 0.5);
        assert_ne!(reward_hash(&c), h);
    }

    #[test]
    fn stable_hash_is_pinned_and_separates_parts() {
        assert_eq!(stable_hash(&[""]), "af64724c8602eb6e"); // FNV-1a of the byte 0xff
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
    }
}
