//! Int8 inference (`DecoderLm::quantize_int8`, `student.dtype = "int8"`): agreement with f32
//! on the real SmolLM2, the consistency of cached decoding, and the refusals.

use super::*;
use wst_core::{DType, LoraConfig, SamplingParams};
use wst_models::{ChatMessage, DecoderConfig, DecoderLm, Generator, KvCache, LoadedModel};

const PROMPTS: [&str; 8] = [
    "What is 3 + 4?",
    "Explain photosynthesis briefly.",
    "Write a haiku about the sea.",
    "What is the capital of France?",
    "Solve 12 * 7 and show your work.",
    "List three prime numbers.",
    "Who wrote Hamlet?",
    "Give me a recipe for pancakes.",
];

/// Teacher-forced comparison of int8 against f32 on SmolLM2: f32 greedy continuations of 8
/// chat prompts (32 tokens each), then both models score those sequences and their next-token
/// argmax and logits are compared at the 8 x 32 generated positions. Also free-running greedy
/// decoding of the int8 model: the share of tokens before the first divergence.
#[test]
fn int8_smollm2_agrees_with_f32() -> TestResult {
    let path = smollm2_path();
    let spec = path.to_str().unwrap();
    let f = LoadedModel::load_dtype(spec, Device::Cpu, DType::F32)?;
    let q = LoadedModel::load_dtype(spec, Device::Cpu, DType::Int8)?;
    assert!(q.model.is_int8() && !f.model.is_int8());
    let n_new = 32;
    let prompts: Vec<Vec<u32>> = PROMPTS
        .iter()
        .map(|p| f.encode_chat(&[ChatMessage::user(*p)]))
        .collect::<Result<_, _>>()?;
    // No end tokens: every row runs to 32 tokens.
    let greedy = SamplingParams::greedy(n_new);
    let f_gen = Generator::new(&f.model, &f.tokenizer, &[], f.pad_token_id);
    let q_gen = Generator::new(&q.model, &q.tokenizer, &[], q.pad_token_id);
    let f_out = f_gen.generate(&prompts, &greedy)?;
    let q_out = q_gen.generate(&prompts, &greedy)?;

    // Right-padded batch of prompt + continuation; position p - 1 + j predicts token j.
    let len = prompts.iter().map(Vec::len).max().unwrap() + n_new;
    let b = prompts.len();
    let mut ids = vec![0i64; b * len];
    let mut mask = vec![0i64; b * len];
    for (r, (p, g)) in prompts.iter().zip(&f_out).enumerate() {
        for (j, &t) in p.iter().chain(&g.token_ids).enumerate() {
            ids[r * len + j] = i64::from(t);
            mask[r * len + j] = 1;
        }
    }
    let shape = [b as i64, len as i64];
    let ids = Tensor::from_slice(&ids).view(shape);
    let mask = Tensor::from_slice(&mask).view(shape);
    let (fl, ql) = tch::no_grad(|| -> wst_models::Result<_> {
        Ok((
            f.model.forward(&ids, Some(&mask))?,
            q.model.forward(&ids, Some(&mask))?,
        ))
    })?;
    let (mut agree, mut total) = (0usize, 0usize);
    let (mut max_err, mut sum_err, mut n_err) = (0f64, 0f64, 0f64);
    let (mut diff2, mut ref2) = (0f64, 0f64);
    for (r, p) in prompts.iter().enumerate() {
        let a = fl.get(r as i64).narrow(0, p.len() as i64 - 1, n_new as i64);
        let c = ql.get(r as i64).narrow(0, p.len() as i64 - 1, n_new as i64);
        let same = a.argmax(-1, false).eq_tensor(&c.argmax(-1, false));
        agree += same.sum(Kind::Int64).int64_value(&[]) as usize;
        total += n_new;
        let d = (&a - &c).abs();
        max_err = max_err.max(d.max().double_value(&[]));
        sum_err += d.sum(Kind::Double).double_value(&[]);
        n_err += d.numel() as f64;
        diff2 += d.square().sum(Kind::Double).double_value(&[]);
        ref2 += a.square().sum(Kind::Double).double_value(&[]);
    }
    let agreement = agree as f64 / total as f64;
    let rel = (diff2 / ref2).sqrt();
    // Free running: tokens equal to f32's before the rows' first divergence.
    let prefix: usize = f_out
        .iter()
        .zip(&q_out)
        .map(|(a, c)| {
            a.token_ids
                .iter()
                .zip(&c.token_ids)
                .take_while(|(x, y)| x == y)
                .count()
        })
        .sum();
    let prefix = prefix as f64 / total as f64;
    eprintln!(
        "int8 vs f32 on SmolLM2, {b} prompts x {n_new} tokens: teacher-forced top-1 agreement \
         {agreement:.4}, logit error max {max_err:.3} mean {:.4}, relative L2 {rel:.4}; \
         free-running greedy tokens before the first divergence {prefix:.4}",
        sum_err / n_err
    );
    // Measured here with the fbgemm kernel: agreement 0.9375, relative L2 0.0945, logit error
    // mean 0.52 (max 5.2), free running 0.44 of the tokens before the first divergence (with
    // `_int_mm`: 0.914, 0.089, 0.49, 0.43; per-tensor activation scales, for comparison:
    // agreement 0.60, relative L2 0.68). The thresholds leave room for other CPUs' kernels.
    assert!(
        agreement >= 0.85,
        "int8 top-1 agreement with f32 {agreement:.4} < 0.85"
    );
    assert!(rel < 0.2, "int8 logits' relative L2 error {rel:.4} >= 0.2");
    Ok(())
}

fn tiny() -> DecoderLm {
    DecoderLm::random(DecoderConfig::tiny(wst_models::Arch::Llama), Device::Cpu, 5).unwrap()
}

/// Activations are quantised per token, so a row's int8 result does not depend on the rows
/// batched with it or on whether its tokens were fed at once or one by one through the cache.
#[test]
fn int8_cached_decoding_equals_forward_and_rows_are_independent() -> TestResult {
    let mut m = tiny();
    tch::manual_seed(6);
    let calib = Tensor::randint_low(3, 128, [2, 24], (Kind::Int64, Device::Cpu));
    m.quantize_int8(Some(&calib))?;
    tch::manual_seed(7);
    let ids = Tensor::randint_low(3, 128, [3, 9], (Kind::Int64, Device::Cpu));
    tch::no_grad(|| -> TestResult {
        let full = m.forward(&ids, None)?;
        let mut cache = KvCache::new(&m, 3, 16)?;
        let mut parts = vec![m.forward_cached(&ids.narrow(1, 0, 5), None, &mut cache)?];
        for t in 5..9 {
            parts.push(
                m.decode_step(&ids.narrow(1, t, 1), &mut cache)?
                    .unsqueeze(1),
            );
        }
        let cached = Tensor::cat(&parts, 1);
        let d = max_abs_diff(&full, &cached);
        assert!(d < 1e-4, "int8 cached vs full forward: {d}");
        let alone = m.forward(&ids.narrow(0, 1, 1), None)?;
        let d = max_abs_diff(&alone, &full.narrow(0, 1, 1));
        assert!(d < 1e-4, "int8 row alone vs batched: {d}");
        Ok(())
    })?;
    // Generation runs (under no_grad inside) and is deterministic.
    let prompts = vec![vec![5u32, 6, 7], vec![9, 10]];
    let g = Generator::without_tokenizer(&m, &[], 0);
    let a = g.generate(&prompts, &SamplingParams::greedy(6))?;
    assert_eq!(a, g.generate(&prompts, &SamplingParams::greedy(6))?);
    assert_eq!(a[0].token_ids.len(), 6);
    Ok(())
}

#[test]
fn int8_refuses_training_paths() -> TestResult {
    let mut m = tiny();
    m.quantize_int8(None)?;
    let ids = Tensor::from_slice(&[5i64, 6, 7]).view([1, 3]);
    // With gradients recorded (the update's forward) the int8 model refuses.
    let err = m.token_logprobs(&ids, None, 64).unwrap_err().to_string();
    assert!(err.contains("int8") && err.contains("inference"), "{err}");
    assert!(m.forward(&ids, None).is_err());
    assert!(m
        .var_store()
        .trainable_variables()
        .iter()
        .all(|v| !v.requires_grad()));
    let lora = LoraConfig::default();
    let err = m.add_lora(&lora, 0).unwrap_err().to_string();
    assert!(err.contains("int8"), "{err}");
    // Scoring without gradients works.
    let lp = tch::no_grad(|| m.token_logprobs(&ids, None, 64))?;
    assert_eq!(lp.size(), [1, 2]);
    // Only f32 models on the CPU quantise.
    let mut half = tiny();
    half.var_store_mut().set_kind(Kind::BFloat16);
    assert!(half.quantize_int8(None).is_err());
    Ok(())
}
