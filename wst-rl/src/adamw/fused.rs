//! The CPU kernel of [`super::AdamW`]: one pass over each f32 weight, its gradient and its two
//! moments (4 streams read, 3 written) instead of one pass per tensor operation (about 22
//! streams: what the per-tensor update and `torch.optim.AdamW`'s foreach path both cost). The
//! gradient is read, never written. SSE2 on x86_64 (every x86_64 CPU has it; intrinsics, so the
//! loop is vectorised at any optimisation level), scalar elsewhere and for the tail; both do
//! the same IEEE operations in the same order, so a result does not depend on where a block
//! boundary falls or how many threads ran.
//!
//! Unsafe code (the workspace denies it elsewhere): the kernel writes the tensors' memory
//! through their data pointers, from several threads, one disjoint block each.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use tch::{Device, Kind, Tensor};

/// Elements per unit of work (four 256 KiB streams).
const BLOCK: usize = 1 << 16;

/// The constants of one step, in f32 as the kernel computes with them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Consts {
    /// `1 - lr * weight_decay`.
    pub decay: f32,
    /// `1 - beta1`: `m += (1 - beta1) * (g - m)`.
    pub one_minus_b1: f32,
    /// `1 - beta2`: `v += (1 - beta2) * (g^2 - v)`.
    pub one_minus_b2: f32,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f32,
    /// Added to `sqrt(v_hat)`.
    pub eps: f32,
    /// What the gradient is multiplied by first (the clipping coefficient; 1: none).
    pub grad_scale: f32,
}

/// Whether the kernel can take `t`: f32, contiguous, on the CPU.
pub(super) fn usable(t: &Tensor) -> bool {
    t.defined() && t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous()
}

/// One block of one variable.
#[derive(Clone, Copy)]
struct Block {
    w: *mut f32,
    g: *const f32,
    m: *mut f32,
    v: *mut f32,
    len: usize,
}

/// The blocks, shared by the threads: each block is taken by exactly one thread (an atomic
/// counter hands them out) and no two blocks overlap.
struct Blocks(Vec<Block>);
// SAFETY: the pointers are into tensors that outlive the scope the threads run in, and the
// blocks are disjoint, each written by the one thread that takes it.
unsafe impl Sync for Blocks {}

impl Blocks {
    /// Block `i` (a method, so the threads' closure borrows the whole `Blocks`, which is
    /// `Sync`, not its vector of raw pointers).
    fn get(&self, i: usize) -> Option<&Block> {
        self.0.get(i)
    }
}

/// One AdamW step for every `[w, g, m, v]` of `sets`: `w`, `m` and `v` are updated in place,
/// `g` only read. Every tensor must pass [`usable`] and the four of a set have one length (the
/// caller checks both; this panics otherwise). Runs on `threads` threads (this one included).
pub(super) fn step(sets: &[[&Tensor; 4]], c: &Consts, threads: usize) {
    let mut blocks = Vec::new();
    for set in sets {
        let n = set[0].numel();
        assert!(
            set.iter().all(|t| usable(t) && t.numel() == n),
            "fused AdamW needs four contiguous f32 CPU tensors of one length"
        );
        let [w, g, m, v] = set.map(|t| t.data_ptr() as *mut f32);
        let mut at = 0;
        while at < n {
            let len = BLOCK.min(n - at);
            // SAFETY: `at + len <= n`, the length of all four buffers.
            blocks.push(unsafe {
                Block {
                    w: w.add(at),
                    g: g.add(at) as *const f32,
                    m: m.add(at),
                    v: v.add(at),
                    len,
                }
            });
            at += len;
        }
    }
    let blocks = Blocks(blocks);
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(b) = blocks.get(i) else { break };
        // SAFETY: see `Blocks`; the tensors are alive for the whole call.
        unsafe { update_block(b, c) };
    };
    let threads = threads.clamp(1, blocks.0.len().max(1));
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
}

/// The update of one element (also the reference the SIMD lanes follow operation for
/// operation).
#[inline(always)]
fn update_one(w: &mut f32, g: f32, m: &mut f32, v: &mut f32, c: &Consts) {
    let g = g * c.grad_scale;
    let mi = *m + c.one_minus_b1 * (g - *m);
    let vi = *v + c.one_minus_b2 * (g * g - *v);
    *m = mi;
    *v = vi;
    let denom = vi.sqrt() / c.bc2_sqrt + c.eps;
    *w = *w * c.decay - c.step_size * (mi / denom);
}

/// # Safety
/// The block's four pointers are valid for `len` elements and not accessed elsewhere meanwhile.
unsafe fn update_block(b: &Block, c: &Consts) {
    let done = simd(b, c);
    for i in done..b.len {
        update_one(
            &mut *b.w.add(i),
            *b.g.add(i),
            &mut *b.m.add(i),
            &mut *b.v.add(i),
            c,
        );
    }
}

/// The lanes of 4 elements of the block; returns how many elements it did.
#[cfg(target_arch = "x86_64")]
unsafe fn simd(b: &Block, c: &Consts) -> usize {
    use std::arch::x86_64::*;
    let decay = _mm_set1_ps(c.decay);
    let a1 = _mm_set1_ps(c.one_minus_b1);
    let a2 = _mm_set1_ps(c.one_minus_b2);
    let step = _mm_set1_ps(c.step_size);
    let bc2 = _mm_set1_ps(c.bc2_sqrt);
    let eps = _mm_set1_ps(c.eps);
    let scale = _mm_set1_ps(c.grad_scale);
    let lanes = b.len / 4 * 4;
    let mut i = 0;
    while i < lanes {
        let g = _mm_mul_ps(_mm_loadu_ps(b.g.add(i)), scale);
        let m0 = _mm_loadu_ps(b.m.add(i));
        let m = _mm_add_ps(m0, _mm_mul_ps(a1, _mm_sub_ps(g, m0)));
        let v0 = _mm_loadu_ps(b.v.add(i));
        let v = _mm_add_ps(v0, _mm_mul_ps(a2, _mm_sub_ps(_mm_mul_ps(g, g), v0)));
        _mm_storeu_ps(b.m.add(i), m);
        _mm_storeu_ps(b.v.add(i), v);
        let denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(v), bc2), eps);
        let w0 = _mm_loadu_ps(b.w.add(i));
        let w = _mm_sub_ps(
            _mm_mul_ps(w0, decay),
            _mm_mul_ps(step, _mm_div_ps(m, denom)),
        );
        _mm_storeu_ps(b.w.add(i), w);
        i += 4;
    }
    lanes
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn simd(_: &Block, _: &Consts) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_tail_and_threads_give_the_scalar_result() {
        // 3 blocks and a tail of 3 (not a multiple of the 4 lanes).
        let n = 2 * BLOCK as i64 + 1003;
        let (w, g, m, v) = crate::seeded(7, || {
            (
                Tensor::randn([n], (Kind::Float, Device::Cpu)),
                Tensor::randn([n], (Kind::Float, Device::Cpu)),
                Tensor::randn([n], (Kind::Float, Device::Cpu)) * 0.1,
                Tensor::rand([n], (Kind::Float, Device::Cpu)) * 0.01,
            )
        });
        let c = Consts {
            decay: 0.999,
            one_minus_b1: 0.1,
            one_minus_b2: 0.001,
            step_size: 1e-3,
            bc2_sqrt: 0.05,
            eps: 1e-8,
            grad_scale: 0.5,
        };
        let [mut we, ge, mut me, mut ve] =
            [&w, &g, &m, &v].map(|t| Vec::<f32>::try_from(t).unwrap());
        for i in 0..n as usize {
            update_one(&mut we[i], ge[i], &mut me[i], &mut ve[i], &c);
        }
        for threads in [1, 3] {
            let (w2, m2, v2) = (w.copy(), m.copy(), v.copy());
            step(&[[&w2, &g, &m2, &v2]], &c, threads);
            assert_eq!(Vec::<f32>::try_from(&w2).unwrap(), we);
            assert_eq!(Vec::<f32>::try_from(&m2).unwrap(), me);
            assert_eq!(Vec::<f32>::try_from(&v2).unwrap(), ve);
        }
    }
}
