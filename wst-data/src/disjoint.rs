//! Training and evaluation queries kept apart: the hash split of a single source
//! (`data.holdout`) and the overlap check every command runs before it trains or evaluates.

use std::collections::BTreeMap;

use wst_core::{normalize_query_text, stable_hash, Query};

use crate::error::{DataError, Result};

/// True when `query` falls in the held-out fraction `holdout` of the hash split. The split is by
/// the query's normalised text, so two rows asking the same question land on the same side, and
/// it does not depend on row order, seeds or limits.
pub fn is_held_out(query: &Query, holdout: f64) -> bool {
    let h = stable_hash(&["holdout", &normalize_query_text(&query.text)]);
    let x = u64::from_str_radix(&h, 16).unwrap_or(0);
    (x as f64) < holdout * (u64::MAX as f64)
}

/// Fails with [`DataError::Overlap`] when an eval query has the id or the normalised text of a
/// training query, saying how many do and showing the first.
pub fn check_disjoint(train: &[Query], eval: &[Query]) -> Result<()> {
    let ids: BTreeMap<&str, &str> = train
        .iter()
        .map(|q| (q.id.as_str(), q.id.as_str()))
        .collect();
    let texts: BTreeMap<String, &str> = train
        .iter()
        .map(|q| (normalize_query_text(&q.text), q.id.as_str()))
        .collect();
    let mut count = 0;
    let mut first = None;
    for q in eval {
        let hit = match ids.get(q.id.as_str()) {
            Some(t) => Some((*t, "same id")),
            None => texts
                .get(&normalize_query_text(&q.text))
                .map(|t| (*t, "same text")),
        };
        if let Some((train_id, why)) = hit {
            count += 1;
            first.get_or_insert((q, train_id.to_string(), why));
        }
    }
    match first {
        None => Ok(()),
        Some((q, train_id, why)) => Err(DataError::Overlap {
            count,
            eval_total: eval.len(),
            eval_id: q.id.clone(),
            train_id,
            why,
            text: q.text.chars().take(80).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: &str, text: &str) -> Query {
        Query::new(id, text)
    }

    #[test]
    fn overlap_by_id_or_normalised_text_is_counted_and_the_first_named() {
        let train = vec![q("t/0", "What is 2 + 2?"), q("t/1", "Name a colour.")];
        assert!(check_disjoint(&train, &[q("e/0", "What is 3 + 3?")]).is_ok());
        let eval = vec![
            q("e/0", "What is 3 + 3?"),
            q("e/1", "  what is 2 +  2?"),
            q("t/1", "something else"),
        ];
        let e = check_disjoint(&train, &eval).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("2 of 3 eval queries overlap"), "{msg}");
        assert!(
            msg.contains("eval `e/1` is training `t/0` (same text)"),
            "{msg}"
        );
        assert!(msg.contains("data.holdout"), "{msg}");
    }

    #[test]
    fn hash_split_holds_out_about_the_fraction_and_is_stable() {
        let qs: Vec<Query> = (0..2000)
            .map(|i| q(&format!("q{i}"), &format!("problem {i}")))
            .collect();
        let held = qs.iter().filter(|x| is_held_out(x, 0.2)).count();
        assert!(
            (340..=460).contains(&held),
            "{held} of 2000 held out at 0.2"
        );
        // Same text, other id and spacing: same side.
        for x in &qs[..50] {
            let twin = q("other", &format!("  {} ", x.text.to_uppercase()));
            assert_eq!(is_held_out(x, 0.2), is_held_out(&twin, 0.2));
        }
        // A larger holdout keeps every query a smaller one held out.
        assert!(qs
            .iter()
            .all(|x| !is_held_out(x, 0.1) || is_held_out(x, 0.3)));
    }
}
