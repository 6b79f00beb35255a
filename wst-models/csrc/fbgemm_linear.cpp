// A small C ABI over ATen's fbgemm int8 linear (dynamic quantisation of the activations, int8
// weights packed once), for wst-models' int8 inference on the CPU: tch binds none of the fbgemm
// operators. Tensors cross as `at::Tensor*` (tch's C_tensor); results are heap-allocated
// tensors the caller owns (tch::Tensor::from_ptr). Every function catches C++ exceptions and
// returns them as a heap-allocated message (free it with wst_fbgemm_free_error); 0 is success.

#include <ATen/ATen.h>
#include <ATen/Functions.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <tuple>

#include "guarded.h"

using wst_shim::guarded;

extern "C" {

void wst_fbgemm_free_error(char* err) { std::free(err); }

// Quantises the f32 weight `w` [out, in] (one scale and zero point for the whole tensor) and
// packs it for fbgemm: the int8 weight, its packed form, the column offsets, scale and zero point.
int wst_fbgemm_prepare(const at::Tensor* w, at::Tensor** q, at::Tensor** packed,
                       at::Tensor** col_offsets, double* scale, int64_t* zero_point,
                       char** err) {
  return guarded(err, [&] {
    auto [qw, col, s, zp] = at::fbgemm_linear_quantize_weight(w->contiguous());
    at::Tensor p = at::fbgemm_pack_quantized_matrix(qw);
    *q = new at::Tensor(qw);
    *packed = new at::Tensor(p);
    *col_offsets = new at::Tensor(col);
    *scale = s;
    *zero_point = zp;
  });
}

// `x W^T + bias` for f32 `x` [rows, in], the activations quantised per call (one scale and zero
// point from their range); `bias` [out] f32.
int wst_fbgemm_linear(const at::Tensor* x, const at::Tensor* q, const at::Tensor* packed,
                      const at::Tensor* col_offsets, double scale, int64_t zero_point,
                      const at::Tensor* bias, at::Tensor** out, char** err) {
  return guarded(err, [&] {
    at::Tensor y = at::fbgemm_linear_int8_weight_fp32_activation(
        x->contiguous(), *q, *packed, *col_offsets, scale, zero_point, *bias);
    *out = new at::Tensor(y);
  });
}

}  // extern "C"
