//! GSM8K test split: reference parsing and replies in the styles students write.

use wst_core::Query;
use wst_reward::{
    parse_gsm8k_reference, verify_reply, ExtractOptions, MathReward, Reward, RewardInput,
};

use super::read_jsonl;

#[test]
fn every_reference_parses_and_verifies_in_several_reply_styles() {
    let rows = read_jsonl("data/gsm8k/test.jsonl");
    assert_eq!(rows.len(), 1319);
    let opts = ExtractOptions::default();
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let solution = r["answer"].as_str().unwrap();
        let Some(gold) = parse_gsm8k_reference(solution) else {
            failures.push(format!("row {i}: no #### in {solution:?}"));
            continue;
        };
        let Ok(v) = gold.parse::<f64>() else {
            failures.push(format!("row {i}: reference {gold:?} is not a number"));
            continue;
        };
        // The reference solution itself (calculator annotations, `#### 1,234`).
        let with_commas = solution.to_string();
        let styles = [
            with_commas,
            format!("Adding it all up gives {gold}. The answer is {gold}."),
            format!("So she pays ${gold} in total.\n\nFinal Answer: ${gold}$"),
            format!("Step 1 ... step 2 ... so it is $\\boxed{{{gold}}}$."),
            format!("... which leaves {gold} dollars"),
        ];
        for s in &styles {
            if !verify_reply(&gold, s, &opts).verdict {
                failures.push(format!("row {i}: {gold} not found in {s:?}"));
            }
        }
        let wrong = format!("The answer is {}.", v + 1.0);
        if verify_reply(&gold, &wrong, &opts).verdict {
            failures.push(format!("row {i}: {gold} accepted {wrong:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}

#[test]
fn math_reward_takes_the_raw_gsm8k_solution_as_reference() {
    let rows = read_jsonl("data/gsm8k/test.jsonl");
    let queries: Vec<Query> = rows[..50]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Query::new(format!("gsm8k/test/{i}"), r["question"].as_str().unwrap())
                .with_reference(r["answer"].as_str().unwrap())
        })
        .collect();
    let replies: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let gold = parse_gsm8k_reference(q.reference.as_deref().unwrap()).unwrap();
            if i % 2 == 0 {
                format!("Let me compute.\n#### {gold}")
            } else {
                "I could not solve it.".to_string()
            }
        })
        .collect();
    let inputs: Vec<RewardInput> = queries
        .iter()
        .zip(&replies)
        .map(|(query, reply)| RewardInput::new(query, reply))
        .collect();
    let scores = MathReward::default().score(&inputs).unwrap();
    for (i, s) in scores.iter().enumerate() {
        let want = if i % 2 == 0 { 1.0 } else { 0.0 };
        assert_eq!(s.get("correct"), Some(want), "row {i}");
    }
}
