//! Dequantisation of blocks built by hand, compared with values worked out by hand.

use super::*;

#[test]
fn q8_0_block() -> TestResult {
    let mut block = h(0.5).to_vec();
    let qs: Vec<i8> = (0..32)
        .map(|i| match i {
            0 => -128,
            1 => 127,
            2 => -1,
            _ => i as i8 - 16,
        })
        .collect();
    block.extend(qs.iter().map(|&q| q as u8));
    let y = dequantize(GgmlType::Q8_0, &block, 32)?;
    assert_eq!(&y[..4], &[-64.0, 63.5, -0.5, -6.5]);
    for (i, &q) in qs.iter().enumerate() {
        assert_eq!(y[i], f32::from(q) * 0.5, "element {i}");
    }
    // Two blocks, the second with a negative extreme scale.
    let mut two = block.clone();
    two.extend(h(-65504.0));
    two.extend([0x80u8; 32]); // -128
    let y = dequantize(GgmlType::Q8_0, &two, 64)?;
    assert_eq!(y[32..], [8_384_512.0; 32]);
    Ok(())
}

#[test]
fn q4_0_block() -> TestResult {
    // d = -2; byte j holds element j in its low nibble and element j + 16 in its high nibble.
    let mut block = h(-2.0).to_vec();
    let bytes: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
    block.extend(&bytes);
    let y = dequantize(GgmlType::Q4_0, &block, 32)?;
    // Element 0: nibble 0 -> (0 - 8) * -2 = 16; element 16: nibble 15 -> 7 * -2 = -14.
    assert_eq!((y[0], y[15], y[16], y[31]), (16.0, -14.0, -14.0, 16.0));
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * -2.0);
        assert_eq!(y[j + 16], ((15 - j) as f32 - 8.0) * -2.0);
    }
    Ok(())
}

#[test]
fn q4_1_block() -> TestResult {
    // d = 0.25, m = -1.5: y = nibble * 0.25 - 1.5.
    let mut block = h(0.25).to_vec();
    block.extend(h(-1.5));
    let bytes: Vec<u8> = (0..16u8)
        .map(|j| (j % 16) | (((j * 7) % 16) << 4))
        .collect();
    block.extend(&bytes);
    let y = dequantize(GgmlType::Q4_1, &block, 32)?;
    assert_eq!((y[0], y[15], y[16], y[17]), (-1.5, 2.25, -1.5, 0.25));
    for j in 0..16 {
        assert_eq!(y[j], j as f32 * 0.25 - 1.5);
        assert_eq!(y[j + 16], ((j * 7) % 16) as f32 * 0.25 - 1.5);
    }
    Ok(())
}

/// Packs eight 6-bit scales and mins the way `block_q4_K.scales` holds them.
fn pack_q4k_scales(sc: [u8; 8], m: [u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..4 {
        q[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        q[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        q[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
    }
    q
}

#[test]
fn q4_k_block() -> TestResult {
    let sc = [1u8, 63, 17, 0, 32, 63, 5, 48];
    let m = [0u8, 63, 2, 40, 63, 1, 16, 33];
    let (d, dmin) = (0.5f32, -0.25f32);
    let mut block = h(d).to_vec();
    block.extend(h(dmin));
    block.extend(pack_q4k_scales(sc, m));
    // qs[32 c + l]: low nibble is element 64 c + l, high nibble is element 64 c + 32 + l.
    let nib = |i: usize| ((i * 5 + i / 64) % 16) as u8;
    let qs: Vec<u8> = (0..128)
        .map(|k| {
            let (c, l) = (k / 32, k % 32);
            nib(64 * c + l) | (nib(64 * c + 32 + l) << 4)
        })
        .collect();
    block.extend(&qs);
    assert_eq!(block.len(), 144);
    let y = dequantize(GgmlType::Q4_K, &block, 256)?;
    for (i, &v) in y.iter().enumerate() {
        let sub = i / 32;
        let want = d * f32::from(sc[sub]) * f32::from(nib(i)) - dmin * f32::from(m[sub]);
        assert_eq!(v, want, "element {i}");
    }
    // By hand: element 32 is in sub-block 1 (scale 63, min 63), nibble 160 % 16 = 0:
    // 0.5 * 63 * 0 + 0.25 * 63 = 15.75. Element 255 in sub-block 7 (scale 48, min 33), nibble
    // (1275 + 3) % 16 = 14: 0.5 * 48 * 14 + 0.25 * 33 = 344.25.
    assert_eq!((y[32], y[255]), (15.75, 344.25));
    // Sub-block 3 has scale 0: only the min remains, 0.25 * 40 = 10.
    assert!(y[96..128].iter().all(|&v| v == 10.0));
    Ok(())
}

#[test]
fn q6_k_block() -> TestResult {
    // 256 6-bit quants, scales per 16 elements, d = 0.5.
    let q: Vec<u8> = (0..256).map(|i| ((i * 11 + 3) % 64) as u8).collect();
    let sc: [i8; 16] = [-128, 127, -1, 0, 1, 2, -3, 64, -64, 5, 6, 7, 8, 9, 10, 11];
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for half in 0..2 {
        for l in 0..32 {
            let e = |k: usize| q[128 * half + 32 * k + l];
            ql[64 * half + l] = (e(0) & 0x0F) | ((e(2) & 0x0F) << 4);
            ql[64 * half + l + 32] = (e(1) & 0x0F) | ((e(3) & 0x0F) << 4);
            qh[32 * half + l] =
                (e(0) >> 4) | ((e(1) >> 4) << 2) | ((e(2) >> 4) << 4) | ((e(3) >> 4) << 6);
        }
    }
    let mut block = ql.to_vec();
    block.extend(qh);
    block.extend(sc.iter().map(|&s| s as u8));
    block.extend(h(0.5));
    assert_eq!(block.len(), 210);
    let y = dequantize(GgmlType::Q6_K, &block, 256)?;
    for i in 0..256 {
        let want = 0.5 * f32::from(sc[i / 16]) * (f32::from(q[i]) - 32.0);
        assert_eq!(y[i], want, "element {i}");
    }
    // By hand: element 0 has q = 3, scale -128: 0.5 * -128 * (3 - 32) = 1856.
    // Element 16 has q = 179 % 64 = 51, scale 127: 0.5 * 127 * 19 = 1206.5.
    assert_eq!((y[0], y[16]), (1856.0, 1206.5));
    // All-zero quants with d = -1 and scale 127 give -1 * 127 * -32 = 4064.
    let mut zero = vec![0u8; 192];
    zero.extend([127u8; 16]);
    zero.extend(h(-1.0));
    assert_eq!(dequantize(GgmlType::Q6_K, &zero, 256)?, vec![4064.0; 256]);
    Ok(())
}

#[test]
fn float_blocks() -> TestResult {
    let f32s = [1.0f32, -0.0, f32::MIN, 3.5e-42];
    let bytes: Vec<u8> = f32s.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::F32, &bytes, 4)?, f32s);
    let bytes: Vec<u8> = [-65504.0f32, 6.1035156e-5, 0.333_251_95]
        .iter()
        .flat_map(|&v| h(v))
        .collect();
    assert_eq!(
        dequantize(GgmlType::F16, &bytes, 3)?,
        [-65504.0, 6.1035156e-5, 0.333_251_95]
    );
    // bf16 0xBF80 = -1.0, 0xFF80 = -inf, 0x0001 = the smallest subnormal 9.18e-41.
    let y = dequantize(GgmlType::BF16, &[0x80, 0xBF, 0x80, 0xFF, 0x01, 0x00], 3)?;
    assert_eq!(y, [-1.0, f32::NEG_INFINITY, f32::from_bits(0x0001_0000)]);
    Ok(())
}
