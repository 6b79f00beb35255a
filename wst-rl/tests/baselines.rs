//! The baseline cache key: a cached `s_i` is reused only for the same question (text and
//! reference, not only the id) under the same reward definition.

use wst_core::{MemoryBaselines, Query, VecSource};
use wst_rl::collect::compute_baselines;

use crate::support::*;

/// Always answers `2`.
fn two() -> MockStudent {
    MockStudent::constant("two", "2")
}

fn one(id: &str, text: &str, reference: &str) -> VecSource {
    VecSource::new(
        "file",
        vec![Query::new(id, text).with_reference(reference)],
        0,
        false,
    )
}

#[test]
fn a_cached_baseline_never_answers_for_another_question_or_reward() {
    let mut cfg = config(1, 0);
    let mut store = MemoryBaselines::default();
    // The baseline of row `row/0` with `text` and `reference`: (computed, value).
    let mut run = |cfg: &wst_core::Config, text: &str, reference: &str| {
        let src = &mut one("row/0", text, reference);
        let r =
            compute_baselines(cfg, &mut two(), &mut ExactReward, src, &mut store, None, 4).unwrap();
        (r.computed, r.values[0].1)
    };
    assert_eq!(run(&cfg, "What is 1 + 1?", "2"), (1, 1.0));
    assert_eq!(run(&cfg, "What is 1 + 1?", "2"), (0, 1.0));
    // The file changed under the same row id: another question, computed again.
    assert_eq!(run(&cfg, "What is 2 + 2?", "4"), (1, 0.0));
    // Same text, another reference.
    assert_eq!(run(&cfg, "What is 1 + 1?", "3"), (1, 0.0));
    // Same question, another reward definition (not only the weights).
    cfg.reward.last_number_fallback = !cfg.reward.last_number_fallback;
    assert_eq!(run(&cfg, "What is 1 + 1?", "2"), (1, 1.0));
    // The batch size of the reward is not part of the definition.
    cfg.reward.batch_size += 1;
    assert_eq!(run(&cfg, "What is 1 + 1?", "2"), (0, 1.0));
}
