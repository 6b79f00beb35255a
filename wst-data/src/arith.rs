//! The embedded arithmetic task: seeded problems at four levels, with a fixed split into training
//! and held-out problems that never overlap.
//!
//! Every level has a finite set of distinct problems (single-digit sums have only 100). Each
//! problem's id is its content (`arith/single-digit/3+4`), and the split is by problem: the
//! quarter of problems with the smallest [`stable_hash`] of their id is held out, the rest is for
//! training. The split does not depend on any seed, so no choice of training and evaluation seeds
//! can put a held-out problem into training. Seeds only choose which problems of a split (when
//! fewer than all are asked for) and their order.

use wst_core::{splitmix64, stable_hash, ArithLevel, Query};

use crate::error::{DataError, Result};

/// Which side of the fixed split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithSplit {
    /// Problems for training (three quarters).
    Train,
    /// Problems never used in training (one quarter), for evaluation.
    HeldOut,
}

impl ArithSplit {
    /// The split a `data.split` names: none or `train` -> training; `test`, `held-out`,
    /// `heldout`, `eval`, `validation` -> held out.
    pub fn parse(split: Option<&str>) -> Result<Self> {
        match split.map(str::to_ascii_lowercase).as_deref() {
            None | Some("train") => Ok(ArithSplit::Train),
            Some("test" | "held-out" | "heldout" | "held_out" | "eval" | "validation") => {
                Ok(ArithSplit::HeldOut)
            }
            Some(other) => Err(DataError::Options(format!(
                "arith split `{other}`: use `train` or `held-out` (also `test`, `eval`)"
            ))),
        }
    }

    /// `train` or `held-out`.
    pub fn name(self) -> &'static str {
        match self {
            ArithSplit::Train => "train",
            ArithSplit::HeldOut => "held-out",
        }
    }
}

/// The kebab-case name of a level, as in the config (`single-digit`, `two-digit`, `mixed`, `word`).
pub fn level_name(level: ArithLevel) -> &'static str {
    match level {
        ArithLevel::SingleDigit => "single-digit",
        ArithLevel::TwoDigit => "two-digit",
        ArithLevel::Mixed => "mixed",
        ArithLevel::Word => "word",
    }
}

fn problem(level: ArithLevel, key: &str, text: String, answer: i64) -> Query {
    Query::new(format!("arith/{}/{key}", level_name(level)), text)
        .with_reference(answer.to_string())
        .with_meta("level", level_name(level))
}

const NAMES: [&str; 8] = ["Tom", "Anna", "Ravi", "Mia", "Leo", "Sara", "Ken", "Lina"];
const ITEMS: [&str; 6] = [
    "apples", "marbles", "pencils", "stickers", "cookies", "books",
];

fn word_problem(t: usize, a: i64, b: i64) -> (String, i64) {
    let h = u64::from_str_radix(
        &stable_hash(&["word", &t.to_string(), &a.to_string(), &b.to_string()]),
        16,
    )
    .unwrap_or(0);
    let name = NAMES[(h % NAMES.len() as u64) as usize];
    let items = ITEMS[((h >> 8) % ITEMS.len() as u64) as usize];
    match t {
        0 => (
            format!("{name} has {a} {items} and buys {b} more. How many {items} does {name} have now?"),
            a + b,
        ),
        1 => (
            format!(
                "{name} has {} {items} and gives {b} away. How many {items} does {name} have left?",
                a + b
            ),
            a,
        ),
        2 => (
            format!("A box holds {a} {items}. How many {items} are in {b} boxes?"),
            a * b,
        ),
        3 => (
            format!("{name} reads {a} pages a day. How many pages does {name} read in {b} days?"),
            a * b,
        ),
        4 => (
            format!(
                "{name} picks {a} {items} in the morning and {b} in the afternoon. How many {items} \
                 did {name} pick in total?"
            ),
            a + b,
        ),
        _ => (
            format!(
                "There are {} {items} shared equally among {b} friends. How many {items} does each \
                 friend get?",
                a * b
            ),
            a,
        ),
    }
}

fn apply(x: i64, op: char, y: i64) -> i64 {
    match op {
        '+' => x + y,
        '-' => x - y,
        _ => x * y,
    }
}

/// Every distinct problem of a level, in a fixed canonical order.
pub fn arith_universe(level: ArithLevel) -> Vec<Query> {
    let mut out = Vec::new();
    match level {
        ArithLevel::SingleDigit | ArithLevel::TwoDigit => {
            let range = if level == ArithLevel::SingleDigit {
                0..=9
            } else {
                10..=99
            };
            for a in range.clone() {
                for b in range.clone() {
                    out.push(problem(
                        level,
                        &format!("{a}+{b}"),
                        format!("What is {a} + {b}?"),
                        a + b,
                    ));
                }
            }
        }
        ArithLevel::Mixed => {
            const OPS: [char; 3] = ['+', '-', '*'];
            for a in 1..=9i64 {
                for o1 in OPS {
                    for b in 1..=9i64 {
                        for o2 in OPS {
                            for c in 1..=9i64 {
                                // `*` binds tighter than `+` and `-`.
                                let v = if o2 == '*' && o1 != '*' {
                                    apply(a, o1, b * c)
                                } else {
                                    apply(apply(a, o1, b), o2, c)
                                };
                                out.push(problem(
                                    level,
                                    &format!("{a}{o1}{b}{o2}{c}"),
                                    format!("What is {a} {o1} {b} {o2} {c}?"),
                                    v,
                                ));
                            }
                        }
                    }
                }
            }
        }
        ArithLevel::Word => {
            for t in 0..6usize {
                for a in 2..=20i64 {
                    for b in 2..=12i64 {
                        let (text, v) = word_problem(t, a, b);
                        out.push(problem(level, &format!("t{t}/{a}/{b}"), text, v));
                    }
                }
            }
        }
    }
    out
}

/// Every problem of one side of the fixed split, in canonical order. A quarter of the universe
/// (rounded up) is held out.
pub fn arith_split(level: ArithLevel, split: ArithSplit) -> Vec<Query> {
    let all = arith_universe(level);
    let mut ranked: Vec<(String, usize)> = all
        .iter()
        .enumerate()
        .map(|(i, q)| (stable_hash(&["arith-split", &q.id]), i))
        .collect();
    ranked.sort();
    let n_held = all.len().div_ceil(4);
    let mut held = vec![false; all.len()];
    for (_, i) in &ranked[..n_held] {
        held[*i] = true;
    }
    all.into_iter()
        .zip(held)
        .filter(|(_, h)| *h == (split == ArithSplit::HeldOut))
        .map(|(q, _)| q.with_meta("split", split.name()))
        .collect()
}

/// `count` distinct problems of a split (all of them when `count` is larger), chosen and ordered
/// by `seed` (splitmix64 + Fisher-Yates, identical on every platform).
pub fn arith_queries(level: ArithLevel, split: ArithSplit, count: usize, seed: u64) -> Vec<Query> {
    let mut qs = arith_split(level, split);
    let mut state = seed ^ 0xA417_0000_0000_0001;
    for i in (1..qs.len()).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        qs.swap(i, j);
    }
    qs.truncate(count);
    qs
}

/// The held-out problems for evaluation: [`arith_queries`] with [`ArithSplit::HeldOut`].
pub fn arith_held_out(level: ArithLevel, count: usize, seed: u64) -> Vec<Query> {
    arith_queries(level, ArithSplit::HeldOut, count, seed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const LEVELS: [ArithLevel; 4] = [
        ArithLevel::SingleDigit,
        ArithLevel::TwoDigit,
        ArithLevel::Mixed,
        ArithLevel::Word,
    ];

    #[test]
    fn universes_are_distinct_and_answers_right() {
        for level in LEVELS {
            let u = arith_universe(level);
            let ids: BTreeSet<_> = u.iter().map(|q| &q.id).collect();
            let texts: BTreeSet<_> = u.iter().map(|q| &q.text).collect();
            assert_eq!(ids.len(), u.len(), "{level:?}");
            assert_eq!(texts.len(), u.len(), "{level:?}");
        }
        assert_eq!(arith_universe(ArithLevel::SingleDigit).len(), 100);
        let m = arith_universe(ArithLevel::Mixed);
        let find = |id: &str| {
            m.iter()
                .find(|q| q.id == id)
                .unwrap()
                .reference
                .clone()
                .unwrap()
        };
        assert_eq!(find("arith/mixed/3+4*2"), "11");
        assert_eq!(find("arith/mixed/3*4-9"), "3");
        assert_eq!(find("arith/mixed/1-9*9"), "-80");
        assert_eq!(find("arith/mixed/2*3*4"), "24");
        let w = arith_universe(ArithLevel::Word);
        let q = w.iter().find(|q| q.id == "arith/word/t5/7/3").unwrap();
        assert!(q.text.starts_with("There are 21 "), "{}", q.text);
        assert_eq!(q.reference.as_deref(), Some("7"));
    }

    #[test]
    fn train_and_held_out_never_overlap_for_any_seed() {
        for level in LEVELS {
            let train = arith_split(level, ArithSplit::Train);
            let held = arith_split(level, ArithSplit::HeldOut);
            assert_eq!(train.len() + held.len(), arith_universe(level).len());
            let held_ids: BTreeSet<_> = held.iter().map(|q| q.id.clone()).collect();
            for seed in [0, 1, 42] {
                for q in arith_queries(level, ArithSplit::Train, 10_000, seed) {
                    assert!(!held_ids.contains(&q.id), "{} leaked", q.id);
                }
            }
        }
        assert_eq!(
            arith_split(ArithLevel::SingleDigit, ArithSplit::HeldOut).len(),
            25
        );
    }

    #[test]
    fn seeds_choose_and_order_reproducibly() {
        let a = arith_queries(ArithLevel::TwoDigit, ArithSplit::Train, 50, 7);
        assert_eq!(
            a,
            arith_queries(ArithLevel::TwoDigit, ArithSplit::Train, 50, 7)
        );
        assert_ne!(
            a,
            arith_queries(ArithLevel::TwoDigit, ArithSplit::Train, 50, 8)
        );
        assert_eq!(a.len(), 50);
        let ids: BTreeSet<_> = a.iter().map(|q| &q.id).collect();
        assert_eq!(ids.len(), 50);
        assert_eq!(arith_held_out(ArithLevel::SingleDigit, 1000, 3).len(), 25);
    }

    #[test]
    fn splits_parse() {
        assert_eq!(ArithSplit::parse(None).unwrap(), ArithSplit::Train);
        assert_eq!(
            ArithSplit::parse(Some("held-out")).unwrap(),
            ArithSplit::HeldOut
        );
        assert_eq!(
            ArithSplit::parse(Some("test")).unwrap(),
            ArithSplit::HeldOut
        );
        assert!(ArithSplit::parse(Some("dev")).is_err());
    }
}
