//! The fbgemm int8 linear of ATen through the C shim `csrc/fbgemm_linear.cpp` (tch binds none
//! of the fbgemm operators): the weight quantised and packed once, the activations quantised
//! on each call (one scale and zero point from their range). Built with the cfg `wst_fbgemm`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr};

use tch::{Kind, Tensor};

use crate::{Error, Result};

extern "C" {
    fn wst_fbgemm_free_error(err: *mut c_char);
    fn wst_fbgemm_prepare(
        w: *const c_void,
        q: *mut *mut c_void,
        packed: *mut *mut c_void,
        col_offsets: *mut *mut c_void,
        scale: *mut f64,
        zero_point: *mut i64,
        err: *mut *mut c_char,
    ) -> i32;
    fn wst_fbgemm_linear(
        x: *const c_void,
        q: *const c_void,
        packed: *const c_void,
        col_offsets: *const c_void,
        scale: f64,
        zero_point: i64,
        bias: *const c_void,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> i32;
}

/// The shim's error message (freed here), or `Ok` for status 0.
fn check(status: i32, err: *mut c_char, what: &str) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    let msg = if err.is_null() {
        "no message".to_string()
    } else {
        // SAFETY: the shim returns a NUL-terminated message from malloc, freed right after.
        let m = unsafe { CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned();
        unsafe { wst_fbgemm_free_error(err) };
        m
    };
    Err(Error::Invalid(format!("fbgemm int8 {what}: {msg}")))
}

/// Takes ownership of a tensor the shim allocated.
///
/// # Safety
/// `p` is a non-null `at::Tensor*` from the shim, not owned elsewhere.
unsafe fn owned(p: *mut c_void) -> Tensor {
    Tensor::from_ptr(p.cast())
}

/// An int8 weight packed for fbgemm.
pub(super) struct Packed {
    q: Tensor,
    packed: Tensor,
    col_offsets: Tensor,
    scale: f64,
    zero_point: i64,
    /// fbgemm needs a bias: zeros `[out]` (the caller adds its own after rescaling).
    zero_bias: Tensor,
}

impl Packed {
    /// Quantises and packs `w` `[out, in]` f32 (one scale for the whole tensor: the caller
    /// normalises its rows first to get per-channel precision).
    pub(super) fn new(w: &Tensor) -> Result<Self> {
        let w = w.to_kind(Kind::Float).contiguous();
        let mut ptrs = [std::ptr::null_mut::<c_void>(); 3];
        let (mut scale, mut zero_point) = (0f64, 0i64);
        let mut err = std::ptr::null_mut();
        let [q, p, c] = &mut ptrs;
        // SAFETY: `w` is a live tensor; the out-pointers are written on success only.
        let status = unsafe {
            wst_fbgemm_prepare(
                w.as_ptr().cast(),
                q,
                p,
                c,
                &mut scale,
                &mut zero_point,
                &mut err,
            )
        };
        check(status, err, "weight packing")?;
        // SAFETY: on success the shim returned three new tensors.
        let [q, packed, col_offsets] = ptrs.map(|p| unsafe { owned(p) });
        Ok(Packed {
            zero_bias: Tensor::zeros([w.size()[0]], (Kind::Float, w.device())),
            q,
            packed,
            col_offsets,
            scale,
            zero_point,
        })
    }

    /// `x W^T` for `x` `[rows, in]` f32.
    pub(super) fn linear(&self, x: &Tensor) -> Result<Tensor> {
        let mut out = std::ptr::null_mut();
        let mut err = std::ptr::null_mut();
        // SAFETY: all tensors are alive for the call; `out` is written on success only.
        let status = unsafe {
            wst_fbgemm_linear(
                x.as_ptr().cast(),
                self.q.as_ptr().cast(),
                self.packed.as_ptr().cast(),
                self.col_offsets.as_ptr().cast(),
                self.scale,
                self.zero_point,
                self.zero_bias.as_ptr().cast(),
                &mut out,
                &mut err,
            )
        };
        check(status, err, "linear")?;
        // SAFETY: on success the shim returned a new tensor.
        Ok(unsafe { owned(out) })
    }
}
