//! The trainer's overhead: a GRPO step with a zero-latency mock student, and the share of the
//! step spent outside the teacher's generation and update (orchestration, reward, rollouts,
//! metrics). Goal: < 5 %.

use criterion::Criterion;
use wst_core::testing::{tiny_config, ExactReward, MockStudent};
use wst_core::{Config, MemoryBaselines, MemorySink, Query, VecSource};
use wst_rl::{Parts, StepMetrics, TinyConfig, TinyPolicy, Trainer};

fn words() -> Vec<String> {
    let mut w: Vec<String> = ["check", "carefully", "add", "the", "numbers"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    w.extend((0..1995).map(|i| format!("w{i}")));
    w
}

fn config() -> Config {
    let mut c = tiny_config("bench", "instant", 1_000_000);
    c.teacher.sampling.max_new_tokens = 32;
    (c.student.samples, c.student.baseline_samples) = (10, 10);
    (c.grpo.batch_size, c.grpo.micro_batch_size, c.grpo.lr) = (8, 16, 1e-3);
    c
}

/// Runs warm steps and prints the mean time split; then measures one step with criterion.
pub fn train_step(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("wst-bench-rl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let words = words();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut tiny = TinyConfig::new(&refs, 1);
    tiny.dim = 64;
    tiny.hidden = 256;
    let mut sink = MemorySink::default();
    let mut baselines = MemoryBaselines::default();
    let queries: Vec<Query> = wst_benches::sample_queries(512);
    let parts = Parts {
        policy: Box::new(TinyPolicy::new(&tiny)),
        reference: None,
        // Answers instantly: the reference when the instruction says "check", else nonsense.
        student: Box::new(MockStudent::keyed("instant", &["check"])),
        reward: Box::new(ExactReward),
        prompts: Box::new(VecSource::new("bench", queries, 1, true)),
        sink: Box::new(&mut sink),
        baselines: Box::new(&mut baselines),
    };
    let mut trainer = Trainer::new(config(), parts, &dir)
        .expect("trainer")
        .with_progress(false);
    let ms: Vec<StepMetrics> = (0..12)
        .map(|_| trainer.train_step().expect("step"))
        .skip(2)
        .collect();
    let mean = |f: fn(&StepMetrics) -> f64| ms.iter().map(f).sum::<f64>() / ms.len() as f64;
    let step = mean(|m| m.t_step);
    let outside = mean(|m| m.t_student + m.t_reward + m.t_other);
    eprintln!(
        "rl time split per step (B=8, G=8, K=10, 32 tokens, mean of 10): step {:.1} ms; teacher \
         generation {:.1} ms ({:.1}%), update {:.1} ms ({:.1}%), student {:.2} ms, reward {:.2} \
         ms, other {:.2} ms; outside generation and update {:.2}%",
        1e3 * step,
        1e3 * mean(|m| m.t_teacher_gen),
        100.0 * mean(|m| m.t_teacher_gen) / step,
        1e3 * mean(|m| m.t_update),
        100.0 * mean(|m| m.t_update) / step,
        1e3 * mean(|m| m.t_student),
        1e3 * mean(|m| m.t_reward),
        1e3 * mean(|m| m.t_other),
        100.0 * outside / step,
    );
    let mut g = c.benchmark_group("rl");
    g.sample_size(10);
    g.bench_function("grpo step, tiny teacher, instant student", |b| {
        b.iter(|| trainer.train_step().expect("step"))
    });
    g.finish();
    drop(trainer);
    let _ = std::fs::remove_dir_all(&dir);
}
