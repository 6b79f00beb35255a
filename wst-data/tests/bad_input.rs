//! Bad input gives errors that name the file, the line or row, and the field; `skip_bad_rows`
//! counts what it skipped.

use std::io::Write;

use wst_core::DatasetKind;
use wst_data::{load_dataset, DataError};

use crate::common::{cfg, s, shared};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    s(&p)
}

/// The error of loading `path` as `kind`, as text.
fn load_error(kind: DatasetKind, path: impl Into<String>) -> String {
    load_dataset(&cfg(kind, path), 0).unwrap_err().to_string()
}

const GOOD: &str = r#"{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}"#;

#[test]
fn malformed_json_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{GOOD}\n\n{GOOD}\n{{\"question\": \"oops\n{GOOD}\n");
    let path = write(&dir, "bad.jsonl", &text);
    let e = load_dataset(&cfg(DatasetKind::Gsm8k, &path), 0).unwrap_err();
    assert!(matches!(e, DataError::Json { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("bad.jsonl") && msg.contains("line 4"), "{msg}");

    let mut c = cfg(DatasetKind::Gsm8k, &path);
    c.skip_bad_rows = true;
    let ds = load_dataset(&c, 0).unwrap();
    assert_eq!(ds.queries.len(), 3);
    assert_eq!(ds.skipped.len(), 1);
    assert_eq!(ds.rows, 4);
    assert!(ds.skipped[0].to_string().contains("line 4"));
    // Ids stay the row positions, whether or not rows were skipped.
    let ids: Vec<&str> = ds.queries.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["gsm8k/bad/0", "gsm8k/bad/1", "gsm8k/bad/3"]);
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "m.jsonl",
        &format!("{GOOD}\n{{\"question\": \"q\"}}\n"),
    );
    let msg = load_error(DatasetKind::Gsm8k, &path);
    assert!(
        msg.contains("m.jsonl") && msg.contains("line 2") && msg.contains("missing field `answer`"),
        "{msg}"
    );

    let path = write(
        &dir,
        "t.jsonl",
        "{\"question\": 3, \"answer\": \"#### 1\"}\n",
    );
    let msg = load_error(DatasetKind::Gsm8k, &path);
    assert!(
        msg.contains("line 1")
            && msg.contains("`question`")
            && msg.contains("a string")
            && msg.contains("a number"),
        "{msg}"
    );

    let path = write(
        &dir,
        "v.jsonl",
        &format!("{{\"question\": \"q\", \"answer\": \"four\"}}\n{GOOD}\n"),
    );
    let msg = load_error(DatasetKind::Gsm8k, &path);
    assert!(msg.contains("`answer`") && msg.contains("####"), "{msg}");

    let path = write(&dir, "a.jsonl", "[1, 2]\n");
    let msg = load_error(DatasetKind::Gsm8k, &path);
    assert!(
        msg.contains("expected a JSON object") && msg.contains("line 1"),
        "{msg}"
    );

    let path = write(
        &dir,
        "h.jsonl",
        "{\"chosen\": \"\\n\\nHuman: hi\", \"rejected\": \"x\"}\n",
    );
    let mut c = cfg(DatasetKind::HhRlhf, &path);
    let msg = load_dataset(&c, 0).unwrap_err().to_string();
    assert!(
        msg.contains("`chosen`") && msg.contains("Assistant"),
        "{msg}"
    );
    c.skip_bad_rows = true;
    let msg = load_dataset(&c, 0).unwrap_err().to_string();
    assert!(
        msg.contains("no rows left after skipping 1 bad rows"),
        "{msg}"
    );
}

#[test]
fn empty_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("e.jsonl", ""), ("blank.jsonl", "\n\n  \n")] {
        let path = write(&dir, name, text);
        let msg = load_error(DatasetKind::Gsm8k, &path);
        assert!(msg.contains(name) && msg.contains("no rows"), "{msg}");
    }
    let gz = dir.path().join("e.jsonl.gz");
    flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default())
        .finish()
        .unwrap();
    let msg = load_error(DatasetKind::HhRlhf, s(&gz));
    assert!(msg.contains("no rows"), "{msg}");
}

#[test]
fn truncated_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(shared("gsm8k/test.parquet")).unwrap();
    for (name, cut) in [
        ("half.parquet", bytes.len() / 2),
        ("footer.parquet", bytes.len() - 3),
        ("tiny.parquet", 5),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = load_dataset(&cfg(DatasetKind::Gsm8k, s(&p)), 0).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains("Parquet"), "{msg}");
        // Not a row error: skipping bad rows does not hide a broken file.
        let mut c = cfg(DatasetKind::Gsm8k, s(&p));
        c.skip_bad_rows = true;
        assert!(load_dataset(&c, 0).is_err());
    }
    let gz = std::fs::read(shared("hh-rlhf/harmless-base/test.jsonl.gz")).unwrap();
    let p = dir.path().join("cut.jsonl.gz");
    std::fs::File::create(&p)
        .unwrap()
        .write_all(&gz[..gz.len() / 2])
        .unwrap();
    let msg = load_error(DatasetKind::HhRlhf, s(&p));
    assert!(
        msg.contains("cut.jsonl.gz") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn unknown_paths_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "x.csv", "a,b\n");
    let msg = load_error(DatasetKind::Gsm8k, &p);
    assert!(
        msg.contains("x.csv") && msg.contains("unknown data format"),
        "{msg}"
    );
    let msg = load_error(DatasetKind::Gsm8k, "/no/such/file.jsonl");
    assert!(msg.contains("/no/such/file.jsonl"), "{msg}");
}
