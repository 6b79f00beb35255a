//! Math verifier throughput: MATH-500 golds against model-style replies.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use wst_reward::{equivalent, verify_reply, ExtractOptions};

/// MATH-500 gold answers from the shared assets.
fn golds() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/math500/test.jsonl"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("MATH-500 is missing at {path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("MATH-500 row is JSON");
            v["answer"].as_str().expect("answer field").to_string()
        })
        .collect()
}

/// The answer as a model might write it: `\dfrac`, `\left( \right)`, spaces; every third one
/// changed so that it is wrong.
fn restyle(gold: &str, i: usize) -> String {
    if i % 3 == 2 {
        if let Some(k) = gold.find(|c: char| c.is_ascii_digit()) {
            let d = gold.as_bytes()[k] - b'0';
            return format!("{}{}{}", &gold[..k], (d + 1) % 10, &gold[k + 1..]);
        }
        return format!("{gold}+1");
    }
    gold.replace("\\frac", "\\dfrac")
        .replace(',', ", ")
        .replace('(', "\\left(")
        .replace(')', "\\right)")
}

/// A reply of a few hundred characters of reasoning ending in a boxed answer.
fn reply(gold: &str, i: usize) -> String {
    format!(
        "Let's think step by step. We first rewrite the condition as $x^2 - 5x + 6 = 0$, so \
         $(x-2)(x-3) = 0$ and the candidates are $x = 2$ and $x = 3$. Checking each against the \
         constraint $\\frac{{x}}{{2}} > 1$ leaves only one admissible value, and substituting it \
         back gives the quantity we were asked for.\n\nTherefore, the final answer is \
         $\\boxed{{{}}}$.",
        restyle(gold, i)
    )
}

/// Checks per second (criterion's elements/s): full replies (extract + compare) and answers.
pub fn verify(c: &mut Criterion) {
    let golds = golds();
    let replies: Vec<String> = golds.iter().enumerate().map(|(i, g)| reply(g, i)).collect();
    let answers: Vec<String> = golds
        .iter()
        .enumerate()
        .map(|(i, g)| restyle(g, i))
        .collect();
    let opts = ExtractOptions::default();
    let correct = golds
        .iter()
        .zip(&replies)
        .filter(|(g, r)| verify_reply(g, r, &opts).verdict)
        .count();
    eprintln!(
        "verify bench: {correct}/{} replies verify as correct",
        golds.len()
    );

    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(golds.len() as u64));
    g.bench_function("math500 replies (extract + compare)", |b| {
        b.iter(|| {
            for (gold, r) in golds.iter().zip(&replies) {
                black_box(verify_reply(gold, r, &opts));
            }
        })
    });
    g.bench_function("math500 answers (compare)", |b| {
        b.iter(|| {
            for (gold, a) in golds.iter().zip(&answers) {
                black_box(equivalent(gold, a));
            }
        })
    });
    g.finish();
}
