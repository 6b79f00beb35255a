//! `wst verify`.

use crate::{write_file, wst};

fn verify(args: &[&str]) -> (bool, String, String) {
    let out = wst().arg("verify").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// What `wst verify ARGS...` prints (`true` or `false`), trimmed; it must succeed.
fn verdict(args: &[&str]) -> String {
    let (ok, out, err) = verify(args);
    assert!(ok, "{err}");
    out.trim().to_string()
}

#[test]
fn gold_and_pred_print_true_or_false() {
    assert_eq!(
        verdict(&["--gold", "\\frac{1}{2}", "--pred", "0.5"]),
        "true"
    );
    assert_eq!(
        verdict(&["--gold", "-12", "--pred", "-\\frac{24}{2}"]),
        "true"
    );
    assert_eq!(
        verdict(&["--gold", "\\frac{2}{3}", "--pred", "0.67"]),
        "false"
    );
    let extracted = verdict(&[
        "--gold",
        "42",
        "--pred",
        "so it is $\\boxed{42}$.",
        "--extract",
    ]);
    assert_eq!(extracted, "true");
    let pred = "15 * 3 = 45";
    let no_last_number = verdict(&[
        "--gold",
        "45",
        "--pred",
        pred,
        "--extract",
        "--no-last-number",
    ]);
    assert_eq!(no_last_number, "false");
}

#[test]
fn jsonl_writes_verdicts_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(
        dir.path(),
        "in.jsonl",
        concat!(
            r#"{"id": "a", "gold": "12", "pred": "The answer is $\\boxed{12}$.", "kind": "extract", "equivalent": true}"#,
            "\n",
            r#"{"id": "b", "gold": "[2,5)", "pred": "(2,5)", "kind": "compare", "equivalent": false}"#,
            "\n",
            r#"{"gold": "7", "pred": "I don't know.", "kind": "extract", "equivalent": true}"#,
            "\n",
        ),
    );
    let out_path = dir.path().join("out.jsonl");
    let (ok, out, err) = verify(&[
        "--jsonl",
        input.to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("3 rows, 1 equivalent"), "{out}");
    assert!(out.contains("2/3"), "{out}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["id"], "a");
    assert_eq!(rows[0]["verdict"], true);
    assert_eq!(rows[0]["extracted"], "12");
    assert_eq!(rows[1]["verdict"], false);
    assert_eq!(rows[2]["id"], 3);
    assert!(rows[2]["extracted"].is_null());

    // Without --output the rows go to stdout and the summary to stderr.
    let (ok, out, err) = verify(&["--jsonl", input.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3);
    assert!(err.contains("3 rows"), "{err}");
}

#[test]
fn jsonl_errors_name_the_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(
        dir.path(),
        "bad.jsonl",
        "{\"gold\": \"1\", \"pred\": \"1\"}\n{\"gold\": \"1\"}\n",
    );
    let (ok, _, err) = verify(&["--jsonl", input.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("line 2") && err.contains("`pred`"), "{err}");
    let (ok, _, err) = verify(&["--gold", "1"]);
    assert!(!ok, "{err}");
}

#[test]
fn public_set_through_the_cli() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/math_verify_public.jsonl"
    );
    assert!(
        std::path::Path::new(path).exists(),
        "test asset {path} is missing"
    );
    let (ok, out, err) = verify(&["--jsonl", path]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 272);
    assert!(
        err.contains("accuracy against `equivalent`: 272/272"),
        "{err}"
    );
}
