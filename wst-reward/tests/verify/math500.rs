//! Every MATH-500 gold answer against itself in a reply, a rewritten form and a perturbed one.

use wst_reward::{equivalent, verify_reply, ExtractOptions};

use super::read_jsonl;

/// A presentation-only rewrite of `gold`: `\dfrac`, `\left( \right)`, spaces after commas,
/// `.0` after a bare integer, or `$...$` around it when nothing else applies.
pub fn rewrite(gold: &str) -> String {
    let mut s = gold.replace("\\frac", "\\dfrac");
    if !s.contains("\\left") {
        s = s.replace('(', "\\left(").replace(')', "\\right)");
    }
    s = s.replace(", ", ",").replace(',', ", ");
    if s == gold && !gold.is_empty() && gold.bytes().all(|c| c.is_ascii_digit()) {
        s = format!("{gold}.0");
    }
    if s.replace(' ', "") == gold.replace(' ', "") {
        s = format!("{{ {gold} }}");
    }
    s
}

/// A change that alters the value: the first digit bumped, or `+1` appended, or a letter
/// appended to text.
pub fn perturb(gold: &str) -> String {
    if let Some(k) = gold.find(|c: char| c.is_ascii_digit()) {
        let d = gold.as_bytes()[k] - b'0';
        let nd = (d + 1) % 10;
        return format!("{}{}{}", &gold[..k], nd, &gold[k + 1..]);
    }
    if gold.contains("\\text") {
        return gold.replacen('}', "q}", 1);
    }
    format!("{gold}+1")
}

#[test]
fn every_gold_matches_itself_a_rewrite_and_not_a_perturbation() {
    let rows = read_jsonl("data/math500/test.jsonl");
    assert_eq!(rows.len(), 500);
    let opts = ExtractOptions::default();
    let mut failures = Vec::new();
    for r in &rows {
        let id = r["unique_id"].as_str().unwrap_or("?");
        let gold = r["answer"].as_str().unwrap();
        let reply =
            format!("Working through it step by step.\n\nSo the answer is $\\boxed{{{gold}}}$.");
        if !verify_reply(gold, &reply, &opts).verdict {
            failures.push(format!("{id}: self in a box: {gold:?}"));
        }
        let rw = rewrite(gold);
        assert_ne!(rw, gold);
        if !equivalent(gold, &rw) {
            failures.push(format!("{id}: rewrite {gold:?} -> {rw:?}"));
        }
        let pt = perturb(gold);
        if equivalent(gold, &pt) {
            failures.push(format!(
                "{id}: perturbed {gold:?} -> {pt:?} still equivalent"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_reference_solution_verifies_against_its_answer() {
    let rows = read_jsonl("data/math500/test.jsonl");
    let opts = ExtractOptions::default();
    let mut failures = Vec::new();
    for r in &rows {
        let id = r["unique_id"].as_str().unwrap_or("?");
        let gold = r["answer"].as_str().unwrap();
        let solution = r["solution"].as_str().unwrap();
        let v = verify_reply(gold, solution, &opts);
        if !v.verdict {
            failures.push(format!("{id}: {gold:?} vs extracted {:?}", v.extracted));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
