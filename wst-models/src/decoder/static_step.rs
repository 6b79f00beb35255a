//! The static-shape decode step: one token per row, written into the cache at the slot held by
//! a device tensor, attending over the whole capacity under an additive mask. Nothing in it
//! depends on host values that change between steps, so the same kernels with the same shapes
//! run every step and the step can be captured as a CUDA graph (see `generate.rs`). On the CPU,
//! where nothing is captured, the step attends over the filled slots only (`filled`).

use tch::{Kind, Tensor};

use super::{linear, rotate_half, DecoderLm, KvCache};
use crate::{Error, Result};

impl DecoderLm {
    /// Decodes one token per row after what `cache` holds: `ids` `[B]` or `[B, 1]` (Int64),
    /// returns the logits `[B, V]` (model kind) and extends the cache by one slot. Equal to
    /// [`DecoderLm::last_logits_cached`] on the same token, but with the same shapes at every
    /// step (the whole cache is attended, unfilled and padded slots masked out).
    pub fn decode_step(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let b = cache.batch;
        let size = ids.size();
        if ids.kind() != Kind::Int64 || !(size == [b] || size == [b, 1]) {
            return Err(Error::Invalid(format!(
                "decode_step needs Int64 ids of shape [{b}] or [{b}, 1], got {:?} {size:?}",
                ids.kind()
            )));
        }
        if cache.len < 1 {
            return Err(Error::Invalid(
                "decode_step needs a prompt in the KV cache first (forward_cached)".into(),
            ));
        }
        if cache.len + 1 > cache.capacity {
            return Err(Error::Invalid(format!(
                "KV cache full: {} + 1 tokens exceed its capacity {}",
                cache.len, cache.capacity
            )));
        }
        self.check_inference()?;
        let ids = ids.to_device(self.device());
        self.prepare_static(cache);
        let filled = (!self.device().is_cuda()).then_some(cache.len + 1);
        let logits = self.decode_logits_static(&ids, cache, filled);
        cache.len += 1;
        Ok(logits)
    }

    /// Brings the cache's additive mask up to date with its key mask (after a multi-token
    /// forward). Call before capturing [`DecoderLm::decode_logits_static`].
    pub(crate) fn prepare_static(&self, cache: &mut KvCache) {
        if cache.bias_fresh {
            return;
        }
        let (b, cap) = (cache.batch, cache.capacity);
        let _ = cache.bias.fill_(f64::NEG_INFINITY);
        let _ = cache
            .bias
            .masked_fill_(&cache.key_mask.view([b, 1, 1, cap]), 0.0);
        cache.bias_fresh = true;
    }

    /// The device work of one decode step (no checks, no host state): `ids` `[B]` on the
    /// model's device. Writes keys and values at `cache.slot`, marks the slot in both masks,
    /// advances `slot` and `next_pos`, and returns the logits `[B, V]`. The caller keeps
    /// `cache.len` in step. The mask must be fresh ([`DecoderLm::prepare_static`]).
    /// `filled`: `None` attends over the whole capacity (static shapes, for CUDA graphs);
    /// `Some(n)` over the first `n` slots only, which must cover `cache.slot` (`cache.len + 1`:
    /// the same result with less work, where shapes may change every step).
    // `x = x + y` on purpose, as in `hidden`: the step may run with gradients enabled.
    #[allow(clippy::assign_op_pattern)]
    pub(crate) fn decode_logits_static(
        &self,
        ids: &Tensor,
        cache: &mut KvCache,
        filled: Option<i64>,
    ) -> Tensor {
        let c = &self.config;
        let b = cache.batch;
        let (nh, nkv, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let group = nh / nkv;
        let scale = 1.0 / (d as f64).sqrt();
        let mut x = self.embed_ids(&ids.view([b, 1]));
        let (cos, sin) = self.rope(&cache.next_pos.view([b, 1]));
        let _ = cache.key_mask.index_fill_(1, &cache.slot, 1i64);
        let _ = cache.bias.index_fill_(3, &cache.slot, 0.0);
        let n = filled.unwrap_or(cache.capacity).min(cache.capacity);
        let bias = cache.bias.narrow(3, 0, n);
        for (l, layer) in self.layers.iter().enumerate() {
            let h = self.rms_norm(&x, &layer.input_norm);
            let (q, k, v) = layer.qkv(&h);
            let q = q.view([b, 1, nh, d]).transpose(1, 2);
            let k = k.view([b, 1, nkv, d]).transpose(1, 2);
            let v = v.view([b, 1, nkv, d]).transpose(1, 2);
            let q = &q * &cos + rotate_half(&q) * &sin;
            let k = &k * &cos + rotate_half(&k) * &sin;
            let _ = cache.keys[l].index_copy_(2, &cache.slot, &k);
            let _ = cache.values[l].index_copy_(2, &cache.slot, &v);
            // With one query position, the query heads sharing a key/value head become that
            // head's query rows: no repeated keys (GQA) and one plain attention call.
            let q = q.reshape([b, nkv, group, d]);
            let attn = Tensor::scaled_dot_product_attention(
                &q,
                &cache.keys[l].narrow(2, 0, n),
                &cache.values[l].narrow(2, 0, n),
                Some(&bias),
                0.0,
                false,
                scale,
                false,
            );
            let attn = attn.reshape([b, 1, nh * d]);
            x = x + layer.o_proj(&attn);
            let mlp = self.mlp(&x, layer, None);
            x = x + mlp;
        }
        let _ = cache.next_pos.g_add_scalar_(1);
        let _ = cache.slot.g_add_scalar_(1);
        linear(
            &self.rms_norm(&x, &self.norm).select(1, 0),
            &self.lm_head,
            None,
        )
    }
}
