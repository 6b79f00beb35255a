//! [`KvCache`]: keys and values of every layer, preallocated for a batch and written in place.

use tch::{Kind, Tensor};

use super::DecoderLm;
use crate::{Error, Result};

/// Preallocated keys and values of every layer for a batch, written in place as tokens arrive.
pub struct KvCache {
    pub(super) keys: Vec<Tensor>,
    pub(super) values: Vec<Tensor>,
    /// `[B, capacity]` bool: which slots hold real tokens.
    pub(super) key_mask: Tensor,
    /// `[B]` i64: position id of the next real token of each row.
    pub(super) next_pos: Tensor,
    /// `[1]` i64 on the device: the slot the next decoded token is written to (equals `len`).
    pub(super) slot: Tensor,
    /// `[B, 1, 1, capacity]` additive attention mask in the model kind: 0 where `key_mask`
    /// holds, -inf elsewhere. Kept up to date by the decode step; rebuilt when stale.
    pub(super) bias: Tensor,
    /// False when a multi-token forward changed `key_mask` after `bias` was built.
    pub(super) bias_fresh: bool,
    pub(super) len: i64,
    pub(super) capacity: i64,
    pub(super) batch: i64,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("batch", &self.batch)
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl KvCache {
    /// A cache for `batch` rows of up to `capacity` tokens (prompt + generated) of `model`, in
    /// the model's kind and on its device.
    pub fn new(model: &DecoderLm, batch: i64, capacity: i64) -> Result<Self> {
        if batch < 1 || capacity < 1 {
            return Err(Error::Invalid(format!(
                "KV cache needs batch >= 1 and capacity >= 1, got {batch} and {capacity}"
            )));
        }
        let c = &model.config;
        let opts = (model.kind(), model.device());
        let shape = [batch, c.num_key_value_heads, capacity, c.head_dim];
        let n = c.num_hidden_layers as usize;
        Ok(KvCache {
            keys: (0..n)
                .map(|_| Tensor::f_zeros(shape, opts))
                .collect::<Result<_, _>>()?,
            values: (0..n)
                .map(|_| Tensor::f_zeros(shape, opts))
                .collect::<Result<_, _>>()?,
            key_mask: Tensor::f_zeros([batch, capacity], (Kind::Bool, model.device()))?,
            next_pos: Tensor::f_zeros([batch], (Kind::Int64, model.device()))?,
            slot: Tensor::f_zeros([1], (Kind::Int64, model.device()))?,
            bias: Tensor::f_full(
                [batch, 1, 1, capacity],
                f64::NEG_INFINITY,
                (model.kind(), model.device()),
            )?,
            bias_fresh: true,
            len: 0,
            capacity,
            batch,
        })
    }

    /// Slots filled so far (prompt and generated tokens, pads included).
    pub fn len(&self) -> i64 {
        self.len
    }

    /// True before the first forward.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots available in all.
    pub fn capacity(&self) -> i64 {
        self.capacity
    }

    /// Rows of the batch.
    pub fn batch_size(&self) -> i64 {
        self.batch
    }

    /// Counts `n` more filled slots (after decode steps run outside [`DecoderLm::decode_step`],
    /// such as CUDA-graph replays).
    pub(crate) fn advance(&mut self, n: i64) {
        self.len += n;
    }

    /// Keeps the rows `keep` (indices, Int64, on the cache's device) in that order: drops
    /// the others (rows that finished generating) or repeats some (rows whose prompt one
    /// forward computed).
    pub(crate) fn keep_rows(&mut self, keep: &Tensor) {
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            *t = t.index_select(0, keep);
        }
        self.key_mask = self.key_mask.index_select(0, keep);
        self.next_pos = self.next_pos.index_select(0, keep);
        self.bias = self.bias.index_select(0, keep);
        self.batch = keep.size()[0];
    }

    /// Empties the cache for reuse with a new batch of the same size.
    pub fn reset(&mut self) {
        self.len = 0;
        let _ = self.key_mask.zero_();
        let _ = self.next_pos.zero_();
        let _ = self.slot.zero_();
        let _ = self.bias.fill_(f64::NEG_INFINITY);
        self.bias_fresh = true;
    }
}
