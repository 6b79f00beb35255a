//! Entry point of the criterion benchmarks: one module per topic.

use criterion::{criterion_group, criterion_main, Criterion};

mod data;
mod decode;
mod generate;
mod rl;
mod verify;

mod core_bench {
    use criterion::Criterion;
    use std::hint::black_box;
    use wst_core::{PromptTemplates, TemplatePreset};

    /// Prompt rendering is on the per-sample path of every step.
    pub fn templates(c: &mut Criterion) {
        let t = PromptTemplates::new(TemplatePreset::Math.texts()).unwrap();
        let qs = wst_benches::sample_queries(64);
        c.bench_function("render 64 student prompts", |b| {
            b.iter(|| {
                for q in &qs {
                    black_box(t.student(q, Some("Add the units first.")).unwrap());
                }
            })
        });
    }
}

fn benches(c: &mut Criterion) {
    core_bench::templates(c);
    verify::verify(c);
    data::data(c);
    decode::decode(c);
    generate::generate(c);
    rl::train_step(c);
}

criterion_group!(all, benches);
criterion_main!(all);
