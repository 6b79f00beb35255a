//! The prompt-source seam: where training queries come from, with a resumable cursor.

use crate::{Query, Result};

/// An endless, deterministic stream of training queries.
///
/// The position counts queries handed out so far; restoring it makes the stream continue exactly
/// where it was (checkpoint resume). Implementations reshuffle per epoch from their seed.
pub trait PromptSource {
    /// Name of the dataset, for baseline caches (e.g. `gsm8k/train`).
    fn dataset_id(&self) -> String;

    /// Number of distinct queries, when known.
    fn len(&self) -> Option<usize>;

    /// True when the source holds no query at all.
    fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The next `n` queries (wrapping into a new epoch when needed).
    fn next_batch(&mut self, n: usize) -> Result<Vec<Query>>;

    /// Queries handed out so far.
    fn position(&self) -> u64;

    /// Continues from `position` as if that many queries had been drawn.
    fn set_position(&mut self, position: u64) -> Result<()>;
}

/// `&mut S` and `Box<S>` are sources too.
macro_rules! forward_source {
    ($($outer:ty),+) => {$(
        impl<T: PromptSource + ?Sized> PromptSource for $outer {
            fn dataset_id(&self) -> String {
                (**self).dataset_id()
            }
            fn len(&self) -> Option<usize> {
                (**self).len()
            }
            fn next_batch(&mut self, n: usize) -> Result<Vec<Query>> {
                (**self).next_batch(n)
            }
            fn position(&self) -> u64 {
                (**self).position()
            }
            fn set_position(&mut self, position: u64) -> Result<()> {
                (**self).set_position(position)
            }
        }
    )+};
}

forward_source!(&mut T, Box<T>);

/// A [`PromptSource`] over a fixed list, shuffled per epoch with a seed (splitmix64 + Fisher-Yates,
/// so the order is the same on every platform and version).
#[derive(Debug, Clone)]
pub struct VecSource {
    dataset: String,
    queries: Vec<Query>,
    seed: u64,
    shuffle: bool,
    position: u64,
    order: Vec<usize>,
    order_epoch: Option<u64>,
}

impl VecSource {
    /// A source over `queries`, reshuffled every epoch when `shuffle` is set.
    pub fn new(dataset: impl Into<String>, queries: Vec<Query>, seed: u64, shuffle: bool) -> Self {
        VecSource {
            dataset: dataset.into(),
            queries,
            seed,
            shuffle,
            position: 0,
            order: Vec::new(),
            order_epoch: None,
        }
    }

    /// The underlying queries, in their original order.
    pub fn queries(&self) -> &[Query] {
        &self.queries
    }

    fn order_for(&mut self, epoch: u64) -> &[usize] {
        if self.order_epoch != Some(epoch) {
            let n = self.queries.len();
            self.order = (0..n).collect();
            if self.shuffle {
                let mut state = self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for i in (1..n).rev() {
                    let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
                    self.order.swap(i, j);
                }
            }
            self.order_epoch = Some(epoch);
        }
        &self.order
    }
}

/// One step of the splitmix64 generator.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl PromptSource for VecSource {
    fn dataset_id(&self) -> String {
        self.dataset.clone()
    }
    fn len(&self) -> Option<usize> {
        Some(self.queries.len())
    }
    fn next_batch(&mut self, n: usize) -> Result<Vec<Query>> {
        let len = self.queries.len() as u64;
        if len == 0 {
            return Err(crate::Error::InvalidConfig(vec![format!(
                "dataset `{}` has no queries",
                self.dataset
            )]));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let epoch = self.position / len;
            let idx = (self.position % len) as usize;
            let q = self.order_for(epoch)[idx];
            out.push(self.queries[q].clone());
            self.position += 1;
        }
        Ok(out)
    }
    fn position(&self) -> u64 {
        self.position
    }
    fn set_position(&mut self, position: u64) -> Result<()> {
        self.position = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qs(n: usize) -> Vec<Query> {
        (0..n)
            .map(|i| Query::new(format!("q{i}"), format!("{i}")))
            .collect()
    }

    #[test]
    fn epochs_cover_every_query_once() {
        let mut s = VecSource::new("t", qs(7), 3, true);
        let mut ids: Vec<String> = s.next_batch(7).unwrap().into_iter().map(|q| q.id).collect();
        ids.sort();
        assert_eq!(ids, (0..7).map(|i| format!("q{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn resume_continues_exactly() {
        let mut a = VecSource::new("t", qs(5), 11, true);
        let all: Vec<_> = a.next_batch(13).unwrap();
        let mut b = VecSource::new("t", qs(5), 11, true);
        b.set_position(6).unwrap();
        assert_eq!(b.next_batch(7).unwrap(), all[6..].to_vec());
    }

    #[test]
    fn empty_source_is_an_error() {
        assert!(VecSource::new("t", vec![], 0, false).next_batch(1).is_err());
    }
}
