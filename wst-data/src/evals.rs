//! Per-sample evaluation results as Parquet (`wst eval`, `wst demo`): one row per scored student
//! reply, written atomically, with one nullable float column per reward component.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, UInt32Builder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use wst_core::EvalSample;

use crate::atomic::write_parquet_atomic;
use crate::error::{DataError, Result};

/// The fixed columns of an evaluation file, with their types and meaning (reward components
/// follow as `component_<name>` float64? columns).
pub const EVAL_SCHEMA_DOC: &[(&str, &str, &str)] = &[
    (
        "condition",
        "utf8",
        "the condition (student alone, a teacher, an API teacher)",
    ),
    (
        "weight",
        "float64?",
        "the helpfulness weight w of a weighted evaluation (null otherwise)",
    ),
    ("query_id", "utf8", "the held-out query"),
    ("sample", "uint32", "reply index within the query (0..K)"),
    (
        "instruction",
        "utf8?",
        "the instruction the student saw (null: none)",
    ),
    (
        "answer_in_instruction",
        "bool",
        "the instruction contains the reference answer",
    ),
    (
        "reply",
        "utf8?",
        "the student's reply (null: failed after retries)",
    ),
    (
        "reward",
        "float64?",
        "the weighted scalar reward (null for a failed reply)",
    ),
    (
        "error",
        "utf8?",
        "why the sample failed: the student's error, or the teacher's when it wrote no \
         instruction (null: scored)",
    ),
];

/// Writes `rows` to `path` (atomically).
pub fn write_eval_samples(path: &Path, rows: &[EvalSample]) -> Result<()> {
    let names: BTreeSet<&str> = rows.iter().flat_map(|r| r.components.names()).collect();
    let mut fields: Vec<Field> = vec![
        Field::new("condition", DataType::Utf8, false),
        Field::new("weight", DataType::Float64, true),
        Field::new("query_id", DataType::Utf8, false),
        Field::new("sample", DataType::UInt32, false),
        Field::new("instruction", DataType::Utf8, true),
        Field::new("answer_in_instruction", DataType::Boolean, false),
        Field::new("reply", DataType::Utf8, true),
        Field::new("reward", DataType::Float64, true),
        Field::new("error", DataType::Utf8, true),
    ];
    let mut condition = StringBuilder::new();
    let mut weight = Float64Builder::new();
    let mut query_id = StringBuilder::new();
    let mut sample = UInt32Builder::new();
    let mut instruction = StringBuilder::new();
    let mut leaked = BooleanBuilder::new();
    let mut reply = StringBuilder::new();
    let mut reward = Float64Builder::new();
    let mut error = StringBuilder::new();
    let mut comps: Vec<Float64Builder> = names.iter().map(|_| Float64Builder::new()).collect();
    for r in rows {
        condition.append_value(&r.condition);
        weight.append_option(r.weight);
        query_id.append_value(&r.query_id);
        sample.append_value(r.sample);
        instruction.append_option(r.instruction.as_deref());
        leaked.append_value(r.answer_in_instruction);
        reply.append_option(r.reply.as_deref());
        reward.append_option(r.reward);
        error.append_option(r.error.as_deref());
        for (b, name) in comps.iter_mut().zip(&names) {
            b.append_option(r.components.get(name));
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(condition.finish()),
        Arc::new(weight.finish()),
        Arc::new(query_id.finish()),
        Arc::new(sample.finish()),
        Arc::new(instruction.finish()),
        Arc::new(leaked.finish()),
        Arc::new(reply.finish()),
        Arc::new(reward.finish()),
        Arc::new(error.finish()),
    ];
    for (mut b, name) in comps.into_iter().zip(&names) {
        fields.push(Field::new(
            format!("component_{name}"),
            DataType::Float64,
            true,
        ));
        columns.push(Arc::new(b.finish()));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| {
        DataError::Arrow {
            path: path.to_path_buf(),
            what: "building the evaluation batch".into(),
            source: e,
        }
    })?;
    write_parquet_atomic(path, &batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_core::RewardComponents;

    #[test]
    fn eval_rows_round_trip_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.parquet");
        let rows = vec![
            EvalSample {
                condition: "student alone".into(),
                weight: None,
                query_id: "q1".into(),
                sample: 0,
                instruction: None,
                answer_in_instruction: false,
                reply: Some("4".into()),
                components: RewardComponents::from_pairs([("correct", 1.0)]),
                reward: Some(1.0),
                error: None,
            },
            EvalSample {
                condition: "teacher".into(),
                weight: Some(0.7),
                query_id: "q1".into(),
                sample: 1,
                instruction: Some("add".into()),
                answer_in_instruction: true,
                reply: None,
                components: RewardComponents::default(),
                reward: None,
                error: Some("HTTP 500".into()),
            },
        ];
        write_eval_samples(&path, &rows).unwrap();
        let df = crate::rollouts::scan_files(std::slice::from_ref(&path), "eval")
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(df.height(), 2);
        let reward = df.column("reward").unwrap().f64().unwrap();
        assert_eq!(reward.get(0), Some(1.0));
        assert_eq!(reward.get(1), None);
        let c = df.column("component_correct").unwrap().f64().unwrap();
        assert_eq!((c.get(0), c.get(1)), (Some(1.0), None));
        let w = df.column("weight").unwrap().f64().unwrap();
        assert_eq!((w.get(0), w.get(1)), (None, Some(0.7)));
        let e = df.column("error").unwrap().str().unwrap();
        assert_eq!((e.get(0), e.get(1)), (None, Some("HTTP 500")));
        assert_eq!(
            df.column("instruction").unwrap().str().unwrap().get(1),
            Some("add")
        );
    }
}
