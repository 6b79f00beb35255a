//! One decode step of a SmolLM2-135M-shaped model (random weights, f32, CPU): the static-shape
//! step (`DecoderLm::decode_step`: the whole cache attended under a mask, the shape a CUDA graph
//! needs) against the growing-cache step (`last_logits_cached`: attention over a slice that
//! grows by one slot per token, the engine before issue 8). Batch `WST_BENCH_DECODE_BATCH`
//! (default 16), a 64-token prompt and a cache of 128 slots; the cache is reset every 32 steps,
//! so both run over the same range of lengths.

use std::hint::black_box;

use criterion::Criterion;
use tch::{Device, Kind, Tensor};
use wst_models::{Arch, DecoderConfig, DecoderLm, KvCache};

fn smollm2_shape() -> DecoderConfig {
    let mut c = DecoderConfig::tiny(Arch::Llama);
    c.hidden_size = 576;
    c.num_hidden_layers = 30;
    c.num_attention_heads = 9;
    c.num_key_value_heads = 3;
    c.head_dim = 64;
    c.intermediate_size = 1536;
    c.vocab_size = 49_152;
    c.tie_word_embeddings = true;
    c.rope_theta = 100_000.0;
    c
}

/// Times both decode steps.
pub fn decode(c: &mut Criterion) {
    let batch: i64 = std::env::var("WST_BENCH_DECODE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let model = DecoderLm::random(smollm2_shape(), Device::Cpu, 0).expect("model");
    tch::manual_seed(1);
    let prompt = Tensor::randint_low(100, 30_000, [batch, 64], (Kind::Int64, Device::Cpu));
    let token = Tensor::randint_low(100, 30_000, [batch, 1], (Kind::Int64, Device::Cpu));
    let mut group = c.benchmark_group(format!("decode/smollm2-135m/b{batch}"));
    group.sample_size(10);
    for (name, fixed) in [("growing-cache", false), ("static", true)] {
        let mut cache = KvCache::new(&model, batch, 128).expect("cache");
        let mut steps = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                tch::no_grad(|| {
                    if steps % 32 == 0 {
                        cache.reset();
                        let _ = model
                            .last_logits_cached(&prompt, None, &mut cache)
                            .expect("prompt");
                    }
                    steps += 1;
                    let logits = if fixed {
                        model.decode_step(&token, &mut cache)
                    } else {
                        model.last_logits_cached(&token, None, &mut cache)
                    };
                    black_box(logits.expect("step"))
                })
            })
        });
    }
    group.finish();
}
