//! Sampling on a random model with the tiny Qwen2 tokenizer.

use super::*;
use wst_core::{FinishReason, SamplingParams};
use wst_models::{Arch, DecoderConfig, DecoderLm, Generator, Tokenizer};

fn setup() -> (DecoderLm, Tokenizer) {
    let mut config = DecoderConfig::tiny(Arch::Qwen2);
    config.vocab_size = 512;
    let model = DecoderLm::random(config, Device::Cpu, 11).unwrap();
    let tok = Tokenizer::from_file(&vectors("tiny-qwen2").join("tokenizer.json")).unwrap();
    (model, tok)
}

fn prompts(tok: &Tokenizer) -> Vec<Vec<u32>> {
    [
        "Natalia sold clips",
        "A robe takes 2 bolts of blue fiber and half",
        "Hi",
    ]
    .iter()
    .map(|t| tok.encode(t, false).unwrap())
    .collect()
}

#[test]
fn logprobs_match_a_full_forward_and_seeds_reproduce() -> TestResult {
    let (m, tok) = setup();
    // No end token, so every row runs to the limit.
    let g = Generator::new(&m, &tok, &[], 0);
    let params = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 10,
        seed: Some(3),
        ..SamplingParams::default()
    };
    let ps = prompts(&tok);
    let out = g.generate(&ps, &params)?;
    assert_eq!(out, g.generate(&ps, &params)?);
    assert_eq!(out, g.clone().read_every(4).generate(&ps, &params)?);
    for (p, o) in ps.iter().zip(&out) {
        assert_eq!(o.token_ids.len(), 10);
        assert_eq!(o.finish_reason, FinishReason::Length);
        let all: Vec<u32> = p.iter().chain(&o.token_ids).copied().collect();
        let lp = m.token_logprobs(&batch1(&all), None, 4)?;
        let want = lp.get(0).narrow(0, p.len() as i64 - 1, 10);
        let got = Tensor::from_slice(&o.logprobs);
        assert!(
            max_abs_diff(&got, &want) < 1e-4,
            "sampled logprobs vs forward"
        );
    }
    // top-k 1 is greedy.
    let top1 = SamplingParams {
        top_k: 1,
        ..params.clone()
    };
    let greedy = SamplingParams::greedy(10);
    let a: Vec<_> = g
        .generate(&ps, &top1)?
        .into_iter()
        .map(|o| o.token_ids)
        .collect();
    let b: Vec<_> = g
        .generate(&ps, &greedy)?
        .into_iter()
        .map(|o| o.token_ids)
        .collect();
    assert_eq!(a, b);
    // Tiny top-p also keeps only the most likely token.
    let top_p = SamplingParams {
        top_p: 1e-6,
        seed: Some(9),
        ..params.clone()
    };
    let c: Vec<_> = g
        .generate(&ps, &top_p)?
        .into_iter()
        .map(|o| o.token_ids)
        .collect();
    assert_eq!(c, b);
    Ok(())
}

#[test]
fn end_tokens_and_stop_strings_finish_rows() -> TestResult {
    let (m, tok) = setup();
    let ps = prompts(&tok);
    let free = Generator::new(&m, &tok, &[], 0).generate(&ps, &SamplingParams::greedy(8))?;
    // Make the third greedy token of row 0 an end token: row 0 stops there, the others go on.
    let eos = free[0].token_ids[2];
    let out = Generator::new(&m, &tok, &[eos], 0).generate(&ps, &SamplingParams::greedy(8))?;
    let first = free[0].token_ids.iter().position(|&t| t == eos).unwrap();
    assert_eq!(out[0].token_ids, free[0].token_ids[..=first].to_vec());
    assert_eq!(out[0].finish_reason, FinishReason::Stop);
    for (o, f) in out.iter().zip(&free).skip(1) {
        let n = f
            .token_ids
            .iter()
            .position(|&t| t == eos)
            .map_or(8, |i| i + 1);
        assert_eq!(o.token_ids, f.token_ids[..n].to_vec());
    }
    // Reading the ids back every few steps changes nothing.
    for every in [3, 5, 100] {
        let lazy = Generator::new(&m, &tok, &[eos], 0)
            .read_every(every)
            .generate(&ps, &SamplingParams::greedy(8))?;
        assert_eq!(lazy, out, "read_every({every})");
    }
    // A stop string taken from the middle of row 1's text cuts it there.
    let text = &free[1].text;
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 6, "{text:?}");
    let stop: String = chars[3..5].iter().collect();
    let params = SamplingParams {
        stop: vec![stop.clone()],
        ..SamplingParams::greedy(8)
    };
    let out = Generator::new(&m, &tok, &[], 0).generate(&ps, &params)?;
    let cut = text.find(&stop).unwrap();
    assert_eq!(out[1].text, text[..cut]);
    assert_eq!(out[1].finish_reason, FinishReason::Stop);
    assert!(out[1].token_ids.len() < 8 || text.len() == cut + stop.len());
    // Bad input is an error.
    let g = Generator::new(&m, &tok, &[], 0);
    assert!(g.generate(&[vec![]], &SamplingParams::greedy(2)).is_err());
    assert!(g
        .generate(&[vec![9999]], &SamplingParams::greedy(2))
        .is_err());
    assert!(g.generate(&ps, &SamplingParams::greedy(0)).is_err());
    Ok(())
}

#[test]
fn generator_without_tokenizer_gives_the_same_ids_and_no_text() -> TestResult {
    let (m, tok) = setup();
    let ps = prompts(&tok);
    let params = SamplingParams {
        temperature: 0.8,
        top_k: 20,
        max_new_tokens: 7,
        seed: Some(4),
        ..SamplingParams::default()
    };
    let with = Generator::new(&m, &tok, &[], 0).generate(&ps, &params)?;
    let without = Generator::without_tokenizer(&m, &[], 0)
        .cuda_graph(false)
        .generate(&ps, &params)?;
    for (a, b) in with.iter().zip(&without) {
        assert_eq!(a.token_ids, b.token_ids);
        assert_eq!(a.logprobs, b.logprobs);
        assert!(b.text.is_empty());
    }
    // The CPU never uses a CUDA graph.
    assert!(!Generator::without_tokenizer(&m, &[], 0).uses_cuda_graph(100));
    // Stop strings need a tokenizer.
    let stop = SamplingParams {
        stop: vec!["x".into()],
        ..params
    };
    assert!(Generator::without_tokenizer(&m, &[], 0)
        .generate(&ps, &stop)
        .is_err());
    Ok(())
}

#[test]
fn row_rngs_make_each_row_independent_of_its_batch() -> TestResult {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    let (m, tok) = setup();
    let g = Generator::new(&m, &tok, &[], 0);
    let params = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 8,
        ..SamplingParams::default()
    };
    let p = prompts(&tok)[0].clone();
    let rng = |s: u64| ChaCha8Rng::seed_from_u64(s);
    let alone = g.generate_with_row_rngs(std::slice::from_ref(&p), &params, &mut [rng(5)])?;
    // The same prompt and stream in a batch of three, at another row, other streams beside it.
    let rows = vec![p.clone(), p.clone(), p.clone()];
    let batch = g.generate_with_row_rngs(&rows, &params, &mut [rng(1), rng(5), rng(2)])?;
    assert_eq!(batch[1].token_ids, alone[0].token_ids);
    assert_ne!(batch[0].token_ids, batch[2].token_ids, "streams differ");
    // A stream fixes the output: one generator per row gives the same as itself.
    assert_eq!(
        batch,
        g.generate_with_row_rngs(&rows, &params, &mut [rng(1), rng(5), rng(2)])?
    );
    let e = g
        .generate_with_row_rngs(&rows, &params, &mut [rng(1)])
        .unwrap_err();
    assert!(
        e.to_string().contains("1 random generators for 3 prompts"),
        "{e}"
    );
    Ok(())
}

#[test]
fn prompts_with_a_common_start_sample_what_each_alone_would() -> TestResult {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    let (m, tok) = setup();
    let g = Generator::new(&m, &tok, &[], 0);
    // A system message every prompt opens with: prefilled once for the batch.
    let opening = tok.encode("You are a careful assistant. Answer briefly.", false)?;
    assert!(opening.len() >= 6);
    let ps: Vec<Vec<u32>> = prompts(&tok)
        .into_iter()
        .map(|p| opening.iter().chain(&p).copied().collect())
        .collect();
    assert!(wst_models::shared_prefix_len(&ps) >= opening.len());
    let params = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 6,
        ..SamplingParams::default()
    };
    let rng = |s: u64| ChaCha8Rng::seed_from_u64(s);
    let batch = g.generate_with_row_rngs(&ps, &params, &mut [rng(1), rng(2), rng(3)])?;
    for (i, (p, o)) in ps.iter().zip(&batch).enumerate() {
        let alone =
            g.generate_with_row_rngs(std::slice::from_ref(p), &params, &mut [rng(i as u64 + 1)])?;
        assert_eq!(o.token_ids, alone[0].token_ids, "row {i}");
        let all: Vec<u32> = p.iter().chain(&o.token_ids).copied().collect();
        let lp = m.token_logprobs(&batch1(&all), None, 4)?;
        let want = lp.get(0).narrow(0, p.len() as i64 - 1, 6);
        assert!(
            max_abs_diff(&Tensor::from_slice(&o.logprobs), &want) < 1e-4,
            "row {i}"
        );
    }
    // Each row keeps at least its last prompt token; identical prompts share all but it.
    assert_eq!(
        wst_models::shared_prefix_len(&[vec![1, 2, 3], vec![1, 2, 3]]),
        2
    );
    assert_eq!(
        wst_models::shared_prefix_len(&[vec![1, 2, 3], vec![1, 2]]),
        1
    );
    assert_eq!(wst_models::shared_prefix_len(&[vec![1, 2, 3], vec![4]]), 0);
    assert_eq!(wst_models::shared_prefix_len::<u32, Vec<u32>>(&[]), 0);
    Ok(())
}

#[test]
fn rows_that_finish_leave_the_batch_without_changing_the_others() -> TestResult {
    let (m, tok) = setup();
    let ps: Vec<Vec<u32>> = (0..12)
        .map(|i| {
            tok.encode(&format!("Question {i}: how many apples"), false)
                .unwrap()
        })
        .collect();
    let params = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 12,
        seed: Some(8),
        ..SamplingParams::default()
    };
    let free = Generator::new(&m, &tok, &[], 0).generate(&ps, &params)?;
    // End tokens: what rows 0-3 sampled second, so those rows (and any that sample one of them
    // early) stop within the first steps and the batch is compacted while others go on.
    let eos: Vec<u32> = free[..4].iter().map(|g| g.token_ids[1]).collect();
    let out = Generator::new(&m, &tok, &eos, 0).generate(&ps, &params)?;
    let mut stopped_early = 0;
    for (i, (f, o)) in free.iter().zip(&out).enumerate() {
        let end = f.token_ids.iter().position(|t| eos.contains(t));
        let want = match end {
            Some(e) => &f.token_ids[..=e],
            None => &f.token_ids[..],
        };
        assert_eq!(o.token_ids, want, "row {i}");
        let n = want.len();
        let d = max_abs_diff(
            &Tensor::from_slice(&o.logprobs),
            &Tensor::from_slice(&f.logprobs[..n]),
        );
        assert!(d < 1e-5, "row {i}: log-probs differ by {d}");
        if n <= 4 {
            stopped_early += 1;
        }
    }
    assert!(
        (4..12).contains(&stopped_early),
        "{stopped_early} rows stopped early"
    );
    Ok(())
}
