//! ggml tensor types and their dequantisation to `f32`, following ggml's reference
//! `dequantize_row_*` functions value for value.

use half::{bf16, f16};

use super::error::{GgufError, Result};

/// Elements per super-block of the k-quants.
const QK_K: usize = 256;

/// The ggml types with their block sizes: `Variant = id, "name", elements, bytes;`.
macro_rules! ggml_types {
    ($($variant:ident = $id:literal, $name:literal, $block:literal, $bytes:literal;)*) => {
        id_enum! {
            /// A ggml tensor type (the `type` field of a GGUF tensor info).
            ///
            /// All types of current ggml are known, so that a file's layout can be checked; only
            /// some can be dequantised (see [`dequantize`]).
            #[allow(non_camel_case_types)]
            pub enum GgmlType, "ggml type id" {
                $($variant = $id, $name;)*
            }
        }

        impl GgmlType {
            /// Elements per block.
            pub fn block_size(self) -> u64 {
                match self { $(Self::$variant => $block,)* }
            }

            /// Bytes per block.
            pub fn type_size(self) -> u64 {
                match self { $(Self::$variant => $bytes,)* }
            }
        }
    };
}

ggml_types! {
    F32 = 0, "F32", 1, 4;
    F16 = 1, "F16", 1, 2;
    Q4_0 = 2, "Q4_0", 32, 18;
    Q4_1 = 3, "Q4_1", 32, 20;
    Q5_0 = 6, "Q5_0", 32, 22;
    Q5_1 = 7, "Q5_1", 32, 24;
    Q8_0 = 8, "Q8_0", 32, 34;
    Q8_1 = 9, "Q8_1", 32, 36;
    Q2_K = 10, "Q2_K", 256, 84;
    Q3_K = 11, "Q3_K", 256, 110;
    Q4_K = 12, "Q4_K", 256, 144;
    Q5_K = 13, "Q5_K", 256, 176;
    Q6_K = 14, "Q6_K", 256, 210;
    Q8_K = 15, "Q8_K", 256, 292;
    IQ2_XXS = 16, "IQ2_XXS", 256, 66;
    IQ2_XS = 17, "IQ2_XS", 256, 74;
    IQ3_XXS = 18, "IQ3_XXS", 256, 98;
    IQ1_S = 19, "IQ1_S", 256, 50;
    IQ4_NL = 20, "IQ4_NL", 32, 18;
    IQ3_S = 21, "IQ3_S", 256, 110;
    IQ2_S = 22, "IQ2_S", 256, 82;
    IQ4_XS = 23, "IQ4_XS", 256, 136;
    I8 = 24, "I8", 1, 1;
    I16 = 25, "I16", 1, 2;
    I32 = 26, "I32", 1, 4;
    I64 = 27, "I64", 1, 8;
    F64 = 28, "F64", 1, 8;
    IQ1_M = 29, "IQ1_M", 256, 56;
    BF16 = 30, "BF16", 1, 2;
    TQ1_0 = 34, "TQ1_0", 256, 54;
    TQ2_0 = 35, "TQ2_0", 256, 66;
    MXFP4 = 39, "MXFP4", 32, 17;
}

impl GgmlType {
    /// Bytes that `n_elements` of this type occupy, or an error if `n_elements` is not a whole
    /// number of blocks.
    pub fn bytes_for(self, n_elements: u64) -> Result<u64> {
        let block = self.block_size();
        if n_elements % block != 0 {
            return Err(GgufError::PartialBlock {
                ggml_type: self.name(),
                n_elements,
                block,
            });
        }
        Ok(n_elements / block * self.type_size())
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Dequantises `n_elements` values of type `ggml_type` stored in `bytes` (which must hold
/// exactly that many) to `f32`, as ggml's reference `dequantize_row_*` does.
///
/// Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K.
pub fn dequantize(ggml_type: GgmlType, bytes: &[u8], n_elements: usize) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n_elements];
    dequantize_into(ggml_type, bytes, &mut out)?;
    Ok(out)
}

/// [`dequantize`] into a caller's buffer (reused across tensors to spare allocations): fills
/// all of `out`, whose length is the element count.
pub fn dequantize_into(ggml_type: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let n_elements = out.len() as u64;
    let expected = ggml_type.bytes_for(n_elements)?;
    if expected != bytes.len() as u64 {
        return Err(GgufError::ByteCount {
            ggml_type: ggml_type.name(),
            n_elements,
            expected,
            actual: bytes.len() as u64,
        });
    }
    let bs = ggml_type.type_size() as usize;
    let qk = ggml_type.block_size() as usize;
    let blocks = bytes.chunks_exact(bs).zip(out.chunks_exact_mut(qk));
    match ggml_type {
        GgmlType::F32 => {
            blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = half_at(b, 0)),
        GgmlType::BF16 => blocks
            .for_each(|(b, y)| y[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| block_q8_0(b, y)),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| block_q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| block_q4_1(b, y)),
        GgmlType::Q4_K => blocks.for_each(|(b, y)| block_q4_k(b, y)),
        GgmlType::Q6_K => blocks.for_each(|(b, y)| block_q6_k(b, y)),
        other => {
            return Err(GgufError::UnsupportedGgmlType {
                ggml_type: other.name(),
            })
        }
    }
    Ok(())
}

/// The little-endian IEEE half at byte `at` of `b`, as `f32`.
fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// `block_q8_0`: `d: f16, qs: [i8; 32]`; `y = qs * d`.
fn block_q8_0(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = f32::from(q as i8) * d;
    }
}

/// `block_q4_0`: `d: f16, qs: [u8; 16]`; low nibbles are elements 0..16, high nibbles 16..32,
/// `y = (nibble - 8) * d`.
fn block_q4_0(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 0);
    let (lo, hi) = y.split_at_mut(16);
    for (j, &q) in b[2..18].iter().enumerate() {
        lo[j] = f32::from((q & 0x0F) as i8 - 8) * d;
        hi[j] = f32::from((q >> 4) as i8 - 8) * d;
    }
}

/// `block_q4_1`: `d: f16, m: f16, qs: [u8; 16]`; `y = nibble * d + m`.
fn block_q4_1(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 0);
    let m = half_at(b, 2);
    let (lo, hi) = y.split_at_mut(16);
    for (j, &q) in b[4..20].iter().enumerate() {
        lo[j] = f32::from(q & 0x0F) * d + m;
        hi[j] = f32::from(q >> 4) * d + m;
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` from the 12 packed bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `block_q4_K`: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`; eight sub-blocks of 32,
/// `y = d * sc * nibble - dmin * m`.
fn block_q4_k(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 0);
    let min = half_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..16 + QK_K / 2];
    for (chunk, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
        let (lo, hi) = y.split_at_mut(32);
        for l in 0..32 {
            lo[l] = d1 * f32::from(q[l] & 0x0F) - m1;
            hi[l] = d2 * f32::from(q[l] >> 4) - m2;
        }
    }
}

/// `block_q6_K`: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`; 6-bit quants
/// (4 low bits in `ql`, 2 high bits in `qh`) minus 32, times `d * scale` of their 16-element
/// group.
fn block_q6_k(b: &[u8], y: &mut [f32]) {
    let d = half_at(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            let s = |k: usize| d * f32::from(sc[is + k] as i8);
            y[l] = s(0) * f32::from(q1);
            y[l + 32] = s(2) * f32::from(q2);
            y[l + 64] = s(4) * f32::from(q3);
            y[l + 96] = s(6) * f32::from(q4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_bits().to_le_bytes()
    }

    #[test]
    fn type_table_round_trips_ids() {
        for id in 0..64 {
            if let Some(t) = GgmlType::from_id(id) {
                assert_eq!(t.id(), id);
            }
        }
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::from_id(12), Some(GgmlType::Q4_K));
        assert_eq!(GgmlType::Q6_K.type_size(), 210);
    }

    #[test]
    fn float_types() {
        let vals = [1.5f32, -2.25, 0.0, f32::MAX, -1e-30];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(dequantize(GgmlType::F32, &bytes, 5).unwrap(), vals);

        let bytes: Vec<u8> = [1.5f32, -2.25, 65504.0, -0.5]
            .iter()
            .flat_map(|&v| h(v))
            .collect();
        assert_eq!(
            dequantize(GgmlType::F16, &bytes, 4).unwrap(),
            [1.5, -2.25, 65504.0, -0.5]
        );

        // bf16 is the top half of an f32: 0x3FC0 = 1.5, 0xC010 = -2.25, 0x7F7F = 3.3895314e38.
        let bytes = [0xC0, 0x3F, 0x10, 0xC0, 0x7F, 0x7F];
        assert_eq!(
            dequantize(GgmlType::BF16, &bytes, 3).unwrap(),
            [1.5, -2.25, 3.389_531_4e38]
        );
    }

    #[test]
    fn errors_on_partial_blocks_and_wrong_lengths() {
        let err = dequantize(GgmlType::Q4_0, &[0; 18], 31).unwrap_err();
        assert!(
            matches!(err, GgufError::PartialBlock { block: 32, .. }),
            "{err}"
        );
        let err = dequantize(GgmlType::Q4_0, &[0; 17], 32).unwrap_err();
        assert!(
            matches!(
                err,
                GgufError::ByteCount {
                    expected: 18,
                    actual: 17,
                    ..
                }
            ),
            "{err}"
        );
        let err = dequantize(GgmlType::Q5_K, &[0; 176], 256).unwrap_err();
        assert!(err.to_string().contains("Q5_K"), "{err}");
    }
}
