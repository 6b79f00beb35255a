//! Properties of the decoder on small random models of each family.

use super::*;
use wst_models::{Arch, DecoderConfig, DecoderLm, KvCache, WeightStore};

const ARCHS: [Arch; 3] = [Arch::Llama, Arch::Qwen2, Arch::Gemma];

fn random_ids(b: i64, t: i64, vocab: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint_low(3, vocab, [b, t], (Kind::Int64, Device::Cpu))
}

#[test]
fn cached_decoding_equals_full_forward() -> TestResult {
    for arch in ARCHS {
        let m = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 1)?;
        let ids = random_ids(2, 11, 128, 2);
        // Row 1 is left-padded by three.
        let mask = Tensor::ones([2, 11], (Kind::Int64, Device::Cpu));
        let _ = mask.get(1).narrow(0, 0, 3).fill_(0);
        let full = m.forward(&ids, Some(&mask))?;

        let mut cache = KvCache::new(&m, 2, 16)?;
        let mut parts = vec![m.forward_cached(
            &ids.narrow(1, 0, 6),
            Some(&mask.narrow(1, 0, 6)),
            &mut cache,
        )?];
        parts.push(m.forward_cached(&ids.narrow(1, 6, 2), None, &mut cache)?);
        for t in 8..11 {
            parts.push(m.forward_cached(&ids.narrow(1, t, 1), None, &mut cache)?);
        }
        assert_eq!(cache.len(), 11);
        let cached = Tensor::cat(&parts, 1);
        let d0 = max_abs_diff(&full.get(0), &cached.get(0));
        let d1 = max_abs_diff(&full.get(1).narrow(0, 3, 8), &cached.get(1).narrow(0, 3, 8));
        assert!(d0 < 1e-5 && d1 < 1e-5, "{arch:?}: cache vs full {d0} {d1}");

        // The last-logits paths agree with the full forward.
        let mut cache = KvCache::new(&m, 2, 11)?;
        let last = m.last_logits_cached(&ids, Some(&mask), &mut cache)?;
        assert!(max_abs_diff(&last, &full.select(1, 10)) < 1e-5);
        assert!(max_abs_diff(&m.last_logits(&ids, Some(&mask))?, &full.select(1, 10)) < 1e-5);
        // Out-of-vocabulary ids and a full cache are errors, not panics.
        assert!(m.forward(&(&ids + 1000), None).is_err());
        assert!(m.forward(&ids.to_kind(Kind::Float), None).is_err());
        assert!(m
            .forward_cached(&ids.narrow(1, 0, 1), None, &mut cache)
            .is_err());
    }
    Ok(())
}

#[test]
fn padded_rows_equal_rows_alone() -> TestResult {
    for arch in ARCHS {
        let m = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 3)?;
        let short = random_ids(1, 5, 128, 4);
        let alone = m.forward(&short, None)?.get(0);
        let pad = Tensor::zeros([1, 3], (Kind::Int64, Device::Cpu));
        let ones = Tensor::ones([1, 5], (Kind::Int64, Device::Cpu));
        // Left padding.
        let left = m.forward(
            &Tensor::cat(&[&pad, &short], 1),
            Some(&Tensor::cat(&[&pad, &ones], 1)),
        )?;
        assert!(
            max_abs_diff(&left.get(0).narrow(0, 3, 5), &alone) < 1e-5,
            "{arch:?} left"
        );
        // Right padding.
        let right = m.forward(
            &Tensor::cat(&[&short, &pad], 1),
            Some(&Tensor::cat(&[&ones, &pad], 1)),
        )?;
        assert!(
            max_abs_diff(&right.get(0).narrow(0, 0, 5), &alone) < 1e-5,
            "{arch:?} right"
        );
        assert!(
            max_abs_diff(
                &m.last_logits(
                    &Tensor::cat(&[&short, &pad], 1),
                    Some(&Tensor::cat(&[&ones, &pad], 1))
                )?,
                &alone.get(4).unsqueeze(0)
            ) < 1e-5
        );
    }
    Ok(())
}

#[test]
fn token_logprobs_are_chunked_log_softmax_and_differentiable() -> TestResult {
    let m = DecoderLm::random(DecoderConfig::tiny(Arch::Qwen2), Device::Cpu, 5)?;
    let ids = random_ids(2, 9, 128, 6);
    let mask = Tensor::ones([2, 9], (Kind::Int64, Device::Cpu));
    let _ = mask.get(0).narrow(0, 7, 2).fill_(0);
    let logits = m.forward(&ids, Some(&mask))?;
    let want = logits
        .narrow(1, 0, 8)
        .log_softmax(-1, Kind::Float)
        .gather(2, &ids.narrow(1, 1, 8).unsqueeze(-1), false)
        .squeeze_dim(-1)
        * mask.narrow(1, 1, 8).to_kind(Kind::Float);
    for chunk in [1, 3, 8, 100] {
        let lp = m.token_logprobs(&ids, Some(&mask), chunk)?;
        assert_eq!(lp.size(), vec![2, 8]);
        assert!(max_abs_diff(&lp, &want) < 1e-5, "chunk {chunk}");
    }
    let lp = m.token_logprobs(&ids, Some(&mask), 3)?;
    lp.sum(Kind::Float).backward();
    let vars = m.var_store().trainable_variables();
    assert!(!vars.is_empty());
    let with_grad = vars
        .iter()
        .filter(|v| v.grad().defined() && v.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0)
        .count();
    assert!(
        with_grad * 10 >= vars.len() * 9,
        "{with_grad} of {} variables got gradients",
        vars.len()
    );
    Ok(())
}

#[test]
fn bf16_runs_close_to_f32_and_weights_round_trip_through_safetensors() -> TestResult {
    for arch in ARCHS {
        let config = DecoderConfig::tiny(arch);
        let m = DecoderLm::random(config.clone(), Device::Cpu, 7)?;
        let ids = random_ids(2, 6, 128, 8);
        let f32_logits = m.forward(&ids, None)?;

        let dir = tempfile::tempdir()?;
        let path = dir.path().join("model.safetensors");
        m.var_store().save(&path)?;
        let mut store = WeightStore::open(dir.path())?;
        let loaded = DecoderLm::load(config.clone(), &mut store, Device::Cpu, Kind::Float)?;
        assert!(store.unused().is_empty(), "{:?}", store.unused());
        assert!(max_abs_diff(&loaded.forward(&ids, None)?, &f32_logits) < 1e-6);

        let mut store = WeightStore::open(&path)?;
        let bf = DecoderLm::load(config, &mut store, Device::Cpu, Kind::BFloat16)?;
        assert_eq!(bf.kind(), Kind::BFloat16);
        let out = bf.forward(&ids, None)?;
        assert_eq!(out.kind(), Kind::BFloat16);
        let d = max_abs_diff(&out, &f32_logits);
        assert!(d < 0.05, "{arch:?}: bf16 vs f32 {d}");
        let lp = bf.token_logprobs(&ids, None, 2)?;
        assert_eq!(lp.kind(), Kind::Float);
    }
    Ok(())
}

#[test]
fn static_decode_step_equals_the_growing_cache_and_checks_its_input() -> TestResult {
    for arch in ARCHS {
        let m = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 9)?;
        let ids = random_ids(2, 9, 128, 10);
        // Row 0 is left-padded by two.
        let mask = Tensor::ones([2, 5], (Kind::Int64, Device::Cpu));
        let _ = mask.get(0).narrow(0, 0, 2).fill_(0);
        let prompt = ids.narrow(1, 0, 5);
        let mut growing = KvCache::new(&m, 2, 9)?;
        let mut fixed = KvCache::new(&m, 2, 16)?;
        let _ = m.forward_cached(&prompt, Some(&mask), &mut growing)?;
        let _ = m.forward_cached(&prompt, Some(&mask), &mut fixed)?;
        for t in 5..9 {
            let next = ids.narrow(1, t, 1);
            let want = m.last_logits_cached(&next, None, &mut growing)?;
            // [B] and [B, 1] ids are both accepted.
            let step_ids = if t % 2 == 0 {
                next.squeeze_dim(1)
            } else {
                next
            };
            let got = m.decode_step(&step_ids, &mut fixed)?;
            let d = max_abs_diff(&got, &want);
            assert!(d < 1e-5, "{arch:?} step {t}: static vs growing {d}");
        }
        assert_eq!(fixed.len(), 9);
        // A multi-token forward after static steps equals a full forward over everything.
        let more = random_ids(2, 2, 128, 11);
        let got = m.forward_cached(&more, None, &mut fixed)?;
        let all = Tensor::cat(&[&ids, &more], 1);
        let all_mask = Tensor::cat(
            &[&mask, &Tensor::ones([2, 6], (Kind::Int64, Device::Cpu))],
            1,
        );
        let full = m.forward(&all, Some(&all_mask))?.narrow(1, 9, 2);
        let d = max_abs_diff(&got, &full);
        assert!(d < 1e-5, "{arch:?}: forward after static steps {d}");
        // Bad input is an error, not a panic.
        assert!(m.decode_step(&ids.narrow(1, 0, 2), &mut fixed).is_err());
        assert!(m
            .decode_step(&ids.narrow(1, 0, 1).to_kind(Kind::Float), &mut fixed)
            .is_err());
        let mut empty = KvCache::new(&m, 2, 4)?;
        assert!(m.decode_step(&ids.narrow(1, 0, 1), &mut empty).is_err());
        let mut full = KvCache::new(&m, 2, 5)?;
        let _ = m.forward_cached(&prompt, Some(&mask), &mut full)?;
        assert!(m.decode_step(&ids.narrow(1, 5, 1), &mut full).is_err());
    }
    Ok(())
}

/// Gradients of every trainable variable, flattened into one f64 vector.
fn grads(m: &DecoderLm) -> Tensor {
    let parts: Vec<Tensor> = m
        .var_store()
        .trainable_variables()
        .iter()
        .map(|v| {
            // The output head gets none from hidden states.
            let g = v.grad();
            let g = if g.defined() { g } else { v.zeros_like() };
            g.to_kind(Kind::Double).flatten(0, -1)
        })
        .collect();
    Tensor::cat(&parts, 0)
}

#[test]
fn a_shared_prefix_run_once_equals_each_row_whole_with_gradients() -> TestResult {
    for (arch, kind) in [
        (Arch::Llama, Kind::Float),
        (Arch::Qwen2, Kind::Float),
        (Arch::Gemma, Kind::Float),
        (Arch::Qwen2, Kind::BFloat16),
    ] {
        let mut m = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 11)?;
        if kind != Kind::Float {
            m.var_store_mut().set_kind(kind);
        }
        let prefix = random_ids(1, 6, 128, 12);
        // Row 0 is 5 tokens, row 1 is 3 tokens left-padded by 1 and 1 right pad.
        let rest = random_ids(3, 5, 128, 13);
        let mask = Tensor::ones([3, 5], (Kind::Int64, Device::Cpu));
        let _ = mask.get(1).narrow(0, 0, 1).fill_(0);
        let _ = mask.get(1).narrow(0, 4, 1).fill_(0);
        let _ = mask.get(2).narrow(0, 0, 2).fill_(0);
        let weights = Tensor::randn([3, 5, 1], (Kind::Float, Device::Cpu)) * &mask.unsqueeze(-1);
        let run = |shared: bool| -> Result<(Tensor, Tensor), wst_models::Error> {
            m.var_store().trainable_variables().iter().for_each(|v| {
                let mut g = v.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            });
            let h = if shared {
                m.hidden_states_after(&prefix, None, None, &rest, Some(&mask))?
            } else {
                let ids = Tensor::cat(&[prefix.expand([3, 6], false), rest.shallow_clone()], 1);
                let full_mask = Tensor::cat(
                    &[
                        Tensor::ones([3, 6], (Kind::Int64, Device::Cpu)),
                        mask.shallow_clone(),
                    ],
                    1,
                );
                m.hidden_states(&ids, Some(&full_mask))?.narrow(1, 6, 5)
            };
            (h.to_kind(Kind::Float) * &weights)
                .sum(Kind::Float)
                .backward();
            Ok((
                h.detach().to_kind(Kind::Float) * &mask.unsqueeze(-1),
                grads(&m),
            ))
        };
        let (h1, g1) = run(false)?;
        let (h2, g2) = run(true)?;
        let tol = if kind == Kind::Float { 1e-5 } else { 0.05 };
        let scale = h1.abs().max().double_value(&[]);
        let d = max_abs_diff(&h1, &h2) / scale;
        assert!(d < tol, "{arch:?} {kind:?}: hidden states differ by {d}");
        let gd = (&g1 - &g2).norm().double_value(&[]) / g1.norm().double_value(&[]);
        assert!(
            gd < tol * 10.0 && g1.norm().double_value(&[]) > 0.0,
            "{arch:?} {kind:?}: gradients differ by {gd}"
        );
    }
    // Several prefixes, one of them left-padded, each continued by some rows.
    let m = DecoderLm::random(DecoderConfig::tiny(Arch::Llama), Device::Cpu, 1)?;
    let prefixes = random_ids(2, 5, 128, 4);
    let pmask = Tensor::ones([2, 5], (Kind::Int64, Device::Cpu));
    let _ = pmask.get(1).narrow(0, 0, 2).fill_(0);
    let source = Tensor::from_slice(&[1i64, 0, 1]);
    let rest = random_ids(3, 4, 128, 5);
    let got = m.hidden_states_after(&prefixes, Some(&pmask), Some(&source), &rest, None)?;
    for (row, p) in [(0i64, 1i64), (1, 0), (2, 1)] {
        let skip = if p == 1 { 2 } else { 0 };
        let own = prefixes.get(p).narrow(0, skip, 5 - skip);
        let ids = Tensor::cat(&[own, rest.get(row)], 0).unsqueeze(0);
        let want = m.hidden_states(&ids, None)?.get(0).narrow(0, 5 - skip, 4);
        let d = max_abs_diff(&want, &got.get(row));
        assert!(d < 1e-5, "row {row}: {d}");
    }
    // One left-padded prefix for every row: positions start after its real tokens.
    let one = prefixes.narrow(0, 1, 1);
    let got = m.hidden_states_after(&one, Some(&pmask.narrow(0, 1, 1)), None, &rest, None)?;
    for row in 0..3 {
        let ids = Tensor::cat(&[one.get(0).narrow(0, 2, 3), rest.get(row)], 0).unsqueeze(0);
        let want = m.hidden_states(&ids, None)?.get(0).narrow(0, 3, 4);
        let d = max_abs_diff(&want, &got.get(row));
        assert!(d < 1e-5, "one padded prefix, row {row}: {d}");
    }
    // Bad prefixes are errors.
    let rest = random_ids(2, 3, 128, 2);
    let two = random_ids(2, 4, 128, 3);
    assert!(m
        .hidden_states_after(&two, None, None, &rest, None)
        .is_err());
    let far = Tensor::from_slice(&[0i64, 2]);
    assert!(m
        .hidden_states_after(&two, None, Some(&far), &rest, None)
        .is_err());
    let bad = random_ids(1, 4, 128, 3) + 1000;
    assert!(m
        .hidden_states_after(&bad, None, None, &rest, None)
        .is_err());
    Ok(())
}

#[test]
fn a_prefilled_shared_prefix_gives_the_logits_of_whole_prompts() -> TestResult {
    for arch in ARCHS {
        let m = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 21)?;
        let prefix = random_ids(1, 7, 128, 22);
        let rest = random_ids(2, 4, 128, 23);
        let mask = Tensor::ones([2, 4], (Kind::Int64, Device::Cpu));
        let _ = mask.get(1).narrow(0, 0, 2).fill_(0);
        let whole = Tensor::cat(&[prefix.expand([2, 7], false), rest.shallow_clone()], 1);
        let whole_mask = Tensor::cat(
            &[
                Tensor::ones([2, 7], (Kind::Int64, Device::Cpu)),
                mask.shallow_clone(),
            ],
            1,
        );
        let mut c1 = KvCache::new(&m, 2, 16)?;
        let want = m.last_logits_cached(&whole, Some(&whole_mask), &mut c1)?;
        let mut c2 = KvCache::new(&m, 2, 16)?;
        m.prefill_shared(&prefix, &mut c2)?;
        assert_eq!(c2.len(), 7);
        let got = m.last_logits_cached(&rest, Some(&mask), &mut c2)?;
        assert!(max_abs_diff(&want, &got) < 1e-5, "{arch:?}");
        // And decoding continues alike.
        let next = got.argmax(-1, true);
        let a = m.forward_cached(&next, None, &mut c1)?;
        let b = m.forward_cached(&next, None, &mut c2)?;
        assert!(max_abs_diff(&a, &b) < 1e-5, "{arch:?} after a step");
        // A cache in use, or too small, is refused.
        assert!(m.prefill_shared(&prefix, &mut c2).is_err());
        assert!(m
            .prefill_shared(&prefix, &mut KvCache::new(&m, 2, 4)?)
            .is_err());
    }
    Ok(())
}
