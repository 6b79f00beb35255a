//! Int8 inference for a frozen decoder on the CPU ([`DecoderLm::quantize_int8`]).
//!
//! Every layer's projections run as int8 matrix products: weights quantised once, symmetric
//! per output channel; activations quantised as they come, per token. The kernel is ATen's
//! fbgemm int8 linear (the weight packed once; through the C shim `csrc/fbgemm_linear.cpp`,
//! cfg `wst_fbgemm`), or `_int_mm` where the shim is not built (oneDNN; fast only with VNNI).
//! fbgemm takes one scale per tensor, so each weight row is normalised to an absolute maximum
//! of 1 before quantising and each token's row likewise, both maxima multiplied back into the
//! output: per channel and per token in effect. The query, key and value projections share one
//! fused weight (one quantised input), and so do the gate and up projections. Before
//! quantising, each input channel is divided by a SmoothQuant factor `s_j = sqrt(max|x_j| /
//! max|W_:j|)` and the weight's column multiplied by it (the product is unchanged): `max|x_j|`
//! comes from one f32 forward pass over a calibration text, and evens out the few channels
//! whose activations are far larger than the rest, which per-token quantisation would
//! otherwise crush. The embeddings, norms, attention and output head stay f32, as do the
//! variables of the store (unchanged, so a quantised model still exports f32 weights); no
//! gradient flows through the int8 products, so the model refuses to compute with gradients
//! recorded.

use tch::{Kind, Tensor};

use super::{DecoderLm, Layer};
use crate::{Error, Result};

#[cfg(wst_fbgemm)]
mod fbgemm;

/// How the int8 product runs.
enum Kernel {
    /// fbgemm's int8 linear (the shim; activations quantised per call): the weight's rows
    /// normalised to an absolute maximum of 1 first, so its one scale is per channel in effect.
    /// `range` `[1, in]`: one row holding 1 and -1, appended to the normalised activations so
    /// that their range is always [-1, 1]: fbgemm's scale and zero point then do not depend on
    /// the other rows of the batch (a row's result is the same alone, batched or cached).
    #[cfg(wst_fbgemm)]
    Fbgemm {
        packed: fbgemm::Packed,
        range: Tensor,
    },
    /// `_int_mm` (int8 x int8 -> int32): `[in, out]` int8, contiguous, the right operand. Used
    /// when the shim is not built (slow on CPUs without VNNI).
    #[cfg_attr(wst_fbgemm, allow(dead_code))]
    IntMm(Tensor),
}

/// One int8 projection `x W^T + b`.
pub(super) struct QLinear {
    kernel: Kernel,
    /// `[out]` f32: the weight's scale per output channel (with fbgemm: the rows' maxima).
    scale: Tensor,
    /// `[in]` f32: `1 / s` of SmoothQuant, multiplied into the input (None: no smoothing).
    inv_smooth: Option<Tensor>,
    bias: Option<Tensor>,
}

impl QLinear {
    /// Quantises `w` `[out, in]` (f32) after scaling its columns by `smooth` `[in]`.
    fn new(w: &Tensor, bias: Option<Tensor>, smooth: Option<&Tensor>) -> Result<Self> {
        let w = match smooth {
            Some(s) => w * s.unsqueeze(0),
            None => w.shallow_clone(),
        };
        let row_max = w.abs().amax([1], false).clamp_min(1e-12);
        #[cfg(wst_fbgemm)]
        let (kernel, scale) = {
            let packed = fbgemm::Packed::new(&(&w / row_max.unsqueeze(1)))?;
            let k = w.size()[1];
            let range = Tensor::zeros([1, k], (Kind::Float, w.device()));
            let _ = range.narrow(1, 0, 1.min(k)).fill_(1.0);
            let _ = range.narrow(1, 1.min(k), (k - 1).clamp(0, 1)).fill_(-1.0);
            (Kernel::Fbgemm { packed, range }, row_max)
        };
        #[cfg(not(wst_fbgemm))]
        let (kernel, scale) = {
            let scale = row_max / 127.0;
            let q = (&w / scale.unsqueeze(1))
                .round()
                .clamp(-127.0, 127.0)
                .to_kind(Kind::Int8);
            (Kernel::IntMm(q.tr().contiguous()), scale)
        };
        Ok(QLinear {
            kernel,
            scale,
            inv_smooth: smooth.map(|s| s.reciprocal()),
            bias,
        })
    }

    /// `x` `[..., in]` f32 -> `[..., out]` f32.
    pub(super) fn apply(&self, x: &Tensor) -> Tensor {
        let mut shape = x.size();
        let k = shape[shape.len() - 1];
        let x2 = x.reshape([-1, k]);
        let xs = match &self.inv_smooth {
            Some(inv) => x2 * inv,
            None => x2,
        };
        // Per token: each row scaled by its absolute maximum.
        let row_max = xs.abs().amax([1], true).clamp_min(1e-12);
        let mut y = match &self.kernel {
            #[cfg(wst_fbgemm)]
            Kernel::Fbgemm { packed, range } => {
                // The rows normalised to [-1, 1] and the range row appended: fbgemm's one
                // activation scale then fits every token alike.
                let rows = row_max.size()[0];
                let xn = Tensor::cat(&[&xs / &row_max, range.shallow_clone()], 0);
                let y = packed
                    .linear(&xn)
                    .expect("fbgemm int8 linear on shapes the model checked");
                y.narrow(0, 0, rows) * row_max * &self.scale
            }
            Kernel::IntMm(wt) => {
                let sx = row_max / 127.0;
                let q = (&xs / &sx).round().to_kind(Kind::Int8);
                q.internal_int_mm(wt).to_kind(Kind::Float) * sx * &self.scale
            }
        };
        if let Some(b) = &self.bias {
            y += b;
        }
        let n = self.scale.size()[0];
        *shape.last_mut().expect("non-empty shape") = n;
        y.view(shape.as_slice())
    }
}

/// The int8 projections of one layer.
pub(super) struct QLayer {
    /// q, k and v stacked (rows: queries, keys, values).
    pub(super) qkv: QLinear,
    pub(super) o: QLinear,
    /// gate and up stacked.
    pub(super) gate_up: QLinear,
    pub(super) down: QLinear,
}

/// Per-input-channel absolute maxima of one layer's four projection inputs, from calibration:
/// the attention input (q, k, v), the attention output (o), the MLP input (gate, up) and the
/// down projection's input.
pub(super) type LayerStats = [Tensor; 4];

/// Folds one more batch's activations into running per-channel maxima.
pub(super) fn observe(stats: &mut Vec<LayerStats>, layer: usize, site: usize, x: &Tensor) {
    let k = x.size()[x.dim() - 1];
    let m = x.reshape([-1, k]).abs().amax([0], false);
    if stats.len() <= layer {
        let zeros = || Tensor::zeros([0], (Kind::Float, x.device()));
        stats.push([zeros(), zeros(), zeros(), zeros()]);
    }
    let slot = &mut stats[layer][site];
    *slot = if slot.numel() == 0 {
        m
    } else {
        slot.maximum(&m)
    };
}

/// SmoothQuant's `s_j = sqrt(max|x_j| / max|W_:j|)` (migration strength 0.5) for the weight
/// `w` `[out, in]` whose input has the per-channel maxima `x_absmax` `[in]`.
fn smoothing(x_absmax: &Tensor, w: &Tensor) -> Tensor {
    let w_absmax = w.abs().amax([0], false);
    (x_absmax.clamp_min(1e-5) / w_absmax.clamp_min(1e-5))
        .sqrt()
        .clamp(1e-2, 1e2)
}

/// The weight `[out, in]` and bias of the projections `ps` stacked along the output (one
/// product for q, k and v, one for gate and up).
fn stacked(ps: &[&super::Proj]) -> (Tensor, Option<Tensor>) {
    let w = Tensor::cat(&ps.iter().map(|p| &p.w).collect::<Vec<_>>(), 0);
    let biases: Option<Vec<&Tensor>> = ps.iter().map(|p| p.b.as_ref()).collect();
    (w, biases.map(|b| Tensor::cat(&b, 0)))
}

impl Layer {
    /// The int8 projections of this layer; `stats`: its calibration maxima (None: no
    /// smoothing).
    fn quantized(&self, stats: Option<&LayerStats>) -> Result<QLayer> {
        let one = |site: usize, (w, b): (Tensor, Option<Tensor>)| {
            let smooth = stats.map(|s| smoothing(&s[site], &w));
            QLinear::new(&w, b, smooth.as_ref())
        };
        Ok(QLayer {
            qkv: one(0, stacked(&[&self.q, &self.k, &self.v]))?,
            o: one(1, stacked(&[&self.o]))?,
            gate_up: one(2, stacked(&[&self.gate, &self.up]))?,
            down: one(3, stacked(&[&self.down]))?,
        })
    }
}

/// True when autograd records operations now (outside `no_grad`).
fn grad_mode() -> bool {
    (Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true) * 1.0)
        .requires_grad()
}

impl DecoderLm {
    /// Quantises the projections of every layer to int8 for frozen inference on the CPU (see
    /// the module docs in `decoder/int8.rs`). `calibration`: token ids `[B, T]` (no padding) of
    /// a representative text whose f32 activations set the SmoothQuant factors; `None` skips
    /// smoothing. The variables are frozen and kept in f32. Needs an f32 model on the CPU
    /// without LoRA adapters.
    pub fn quantize_int8(&mut self, calibration: Option<&Tensor>) -> Result<()> {
        if self.is_int8() {
            return Ok(());
        }
        if self.device() != tch::Device::Cpu {
            return Err(Error::Invalid(format!(
                "int8 runs on the CPU only (fbgemm/oneDNN kernels), not {:?}; use bf16 on CUDA",
                self.device()
            )));
        }
        if self.kind() != Kind::Float {
            return Err(Error::Invalid(format!(
                "int8 quantisation starts from f32 weights, not {:?}",
                self.kind()
            )));
        }
        if self.lora.is_some() {
            return Err(Error::Invalid(
                "int8 quantisation of a model with LoRA adapters is not supported (merge them \
                 first: wst export)"
                    .into(),
            ));
        }
        self.vs.freeze();
        tch::no_grad(|| -> Result<()> {
            let stats = match calibration {
                Some(ids) => {
                    let (b, t) = self.check_ids(ids, None)?;
                    let ids = ids.to_device(self.device());
                    let pos = Tensor::arange(t, (Kind::Int64, self.device()))
                        .unsqueeze(0)
                        .expand([b, t], false);
                    let mut stats = Vec::new();
                    let _ = self.hidden(&ids, &pos, None, super::Past::None, Some(&mut stats));
                    Some(stats)
                }
                None => None,
            };
            let q: Vec<QLayer> = self
                .layers
                .iter()
                .enumerate()
                .map(|(l, layer)| layer.quantized(stats.as_ref().map(|s| &s[l])))
                .collect::<Result<_>>()?;
            for (layer, q) in self.layers.iter_mut().zip(q) {
                layer.int8 = Some(q);
            }
            Ok(())
        })
    }

    /// True after [`DecoderLm::quantize_int8`].
    pub fn is_int8(&self) -> bool {
        self.layers.first().is_some_and(|l| l.int8.is_some())
    }

    /// An error when this is an int8 model and gradients are being recorded (training paths:
    /// int8 projections have no gradients).
    pub(super) fn check_inference(&self) -> Result<()> {
        if self.is_int8() && grad_mode() {
            return Err(Error::Invalid(
                "this model is quantised to int8, for inference only: it has no gradients (run \
                 it under no_grad, or load it in f32, bf16 or f16 to train)"
                    .into(),
            ));
        }
        Ok(())
    }
}
