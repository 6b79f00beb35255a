//! `shared/testdata/math_verify_public.jsonl`: agreement with the hand labels.

use wst_reward::{equivalent, verify_reply, ExtractOptions};

use super::read_jsonl;

/// Cases whose label this verifier knowingly does not reproduce (id, reason). Keep in sync with
/// the report.
const KNOWN: &[(&str, &str)] = &[];

#[test]
fn public_set_agreement() {
    let rows = read_jsonl("testdata/math_verify_public.jsonl");
    assert!(rows.len() >= 200, "only {} rows", rows.len());
    let opts = ExtractOptions::default();
    let mut wrong = Vec::new();
    for r in &rows {
        let id = r["id"].as_str().unwrap();
        let gold = r["gold"].as_str().unwrap();
        let pred = r["pred"].as_str().unwrap();
        let want = r["equivalent"].as_bool().unwrap();
        let got = match r["kind"].as_str().unwrap() {
            "extract" => verify_reply(gold, pred, &opts).verdict,
            _ => equivalent(gold, pred),
        };
        if got != want {
            wrong.push(format!("{id}: gold {gold:?} pred {pred:?} want {want}"));
        }
    }
    let unexpected: Vec<&String> = wrong
        .iter()
        .filter(|w| !KNOWN.iter().any(|(id, _)| w.starts_with(&format!("{id}:"))))
        .collect();
    let agree = rows.len() - wrong.len();
    let pct = 100.0 * agree as f64 / rows.len() as f64;
    eprintln!("agreement {agree}/{} = {pct:.1}%", rows.len());
    assert!(
        pct >= 98.0,
        "agreement {pct:.1}% < 98%:\n{}",
        wrong.join("\n")
    );
    assert!(
        unexpected.is_empty(),
        "unlisted disagreements:\n{unexpected:#?}"
    );
}
