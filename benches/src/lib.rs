//! Criterion benchmarks of wst live in `benches/`; this library holds shared fixtures.

use wst_core::Query;

/// `n` arithmetic queries with references, for benchmarks that need realistic inputs.
pub fn sample_queries(n: usize) -> Vec<Query> {
    (0..n)
        .map(|i| {
            let (a, b) = (i % 10, (i * 7) % 10);
            Query::new(format!("q{i}"), format!("What is {a} + {b}?"))
                .with_reference((a + b).to_string())
        })
        .collect()
}
