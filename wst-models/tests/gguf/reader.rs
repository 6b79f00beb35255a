//! The reader on files built in memory: every value type, and each kind of broken file.

use super::*;

fn small_file() -> GgufBuilder {
    GgufBuilder::new()
        .metadata("general.architecture", GgufValue::String("llama".into()))
        .metadata("test.count", GgufValue::U32(7))
        .tensor_f32(
            "a.weight",
            &[4, 2],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        )
        .tensor("b.weight", &[32], GgmlType::Q8_0, {
            let mut b = h(1.0).to_vec();
            b.extend(0..32u8);
            b
        })
}

#[test]
fn reader_round_trips_every_value_type() -> TestResult {
    let values = [
        ("u8", GgufValue::U8(200)),
        ("i8", GgufValue::I8(-100)),
        ("u16", GgufValue::U16(60000)),
        ("i16", GgufValue::I16(-30000)),
        ("u32", GgufValue::U32(4_000_000_000)),
        ("i32", GgufValue::I32(-2_000_000_000)),
        ("f32", GgufValue::F32(-1.25)),
        ("bool", GgufValue::Bool(true)),
        ("string", GgufValue::String("héllo".into())),
        ("u64", GgufValue::U64(u64::MAX)),
        ("i64", GgufValue::I64(i64::MIN)),
        ("f64", GgufValue::F64(1e300)),
        (
            "array",
            GgufValue::Array(
                GgufValueType::Array,
                vec![GgufValue::Array(
                    GgufValueType::I16,
                    vec![GgufValue::I16(-1)],
                )],
            ),
        ),
        ("general.alignment", GgufValue::U32(64)),
    ];
    for version in [2, 3] {
        let mut b = small_file().version(version);
        for (k, v) in &values {
            b = b.metadata(k, v.clone());
        }
        let f = GgufFile::from_bytes(b.build(), origin())?;
        assert_eq!(f.version, version);
        assert_eq!(f.alignment, 64);
        assert_eq!(f.data_offset % 64, 0);
        for (k, v) in &values {
            assert_eq!(f.get(k), Some(v), "{k}");
        }
        assert_eq!(f.tensors.len(), 2);
        let a = &f.tensors[0];
        assert_eq!(
            (a.dims.clone(), a.shape(), a.ggml_type),
            (vec![4, 2], vec![2, 4], GgmlType::F32)
        );
        assert_eq!(f.tensor_f32(a)?, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let b = f.tensor_info("b.weight").ok_or("b.weight")?;
        assert_eq!((b.offset, b.n_bytes), (64, 34));
        assert_eq!(
            f.tensor_f32(b)?,
            (0..32).map(|i| i as f32).collect::<Vec<_>>()
        );
        assert_eq!(f.require_u64("test.count")?, 7);
        assert!(
            matches!(f.require_u64("nope"), Err(GgufError::MissingKey { key }) if key == "nope")
        );
        let err = f.require_str("test.count").unwrap_err();
        assert!(err.to_string().contains("test.count"), "{err}");
    }
    Ok(())
}

#[test]
fn reader_rejects_bad_magic_and_versions() {
    let mut bytes = small_file().build();
    bytes[..4].copy_from_slice(b"GGML");
    let err = GgufFile::from_bytes(bytes, origin()).unwrap_err();
    assert!(
        matches!(err, GgufError::BadMagic { found, .. } if &found == b"GGML"),
        "{err}"
    );
    for version in [1, 4] {
        let err =
            GgufFile::from_bytes(small_file().version(version).build(), origin()).unwrap_err();
        assert!(matches!(err, GgufError::UnsupportedVersion { version: v, .. } if v == version));
    }
    let err = GgufFile::from_bytes(b"GG".to_vec(), origin()).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
}

/// Where `needle` first stands in `bytes`.
fn offset_of(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn reader_names_what_a_truncation_cut() {
    let bytes = small_file().build();
    let find = |needle: &[u8]| offset_of(&bytes, needle);
    // Cut inside the value of `test.count`.
    let at = find(b"test.count") + "test.count".len() + 4 + 2;
    let err = GgufFile::from_bytes(bytes[..at].to_vec(), origin()).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("`test.count`"), "{err}");
    // Cut inside the dims of tensor `b.weight`.
    let at = find(b"b.weight") + "b.weight".len() + 6;
    let err = GgufFile::from_bytes(bytes[..at].to_vec(), origin()).unwrap_err();
    assert!(err.to_string().contains("`b.weight`"), "{err}");
    // Cut inside the data of `b.weight`: its data is out of bounds.
    let err = GgufFile::from_bytes(bytes[..bytes.len() - 1].to_vec(), origin()).unwrap_err();
    match err {
        GgufError::TensorOutOfBounds {
            tensor, end, len, ..
        } => {
            assert_eq!(tensor, "b.weight");
            assert_eq!(end, len + 1);
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn reader_rejects_unknown_types() {
    let bytes = small_file().build();
    let find = |needle: &[u8]| offset_of(&bytes, needle);
    // The ggml type of `b.weight` follows its name, rank and one dim.
    let at = find(b"b.weight") + "b.weight".len() + 4 + 8;
    assert_eq!(bytes[at..at + 4], 8u32.to_le_bytes());
    let mut bad = bytes.clone();
    bad[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let err = GgufFile::from_bytes(bad, origin()).unwrap_err();
    assert!(
        matches!(&err, GgufError::UnknownGgmlType { tensor, type_id: 99 } if tensor == "b.weight"),
        "{err}"
    );
    // The value type of `test.count` follows its key.
    let at = find(b"test.count") + "test.count".len();
    let mut bad = bytes.clone();
    bad[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
    let err = GgufFile::from_bytes(bad, origin()).unwrap_err();
    assert!(
        matches!(&err, GgufError::UnknownValueType { key, type_id: 13, .. } if key == "test.count")
    );
    // A tensor whose element count is not a whole number of blocks.
    let partial = GgufBuilder::new()
        .tensor("c", &[31], GgmlType::Q4_0, vec![0; 18])
        .build();
    let err = GgufFile::from_bytes(partial, origin()).unwrap_err();
    assert!(err.to_string().contains("`c`"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some_and(|s| s.to_string().contains("block size 32"))
    );
    // A known type that does not dequantise names the type.
    let q5 = GgufBuilder::new()
        .tensor("d", &[32], GgmlType::Q5_0, vec![0; 22])
        .build();
    let f = GgufFile::from_bytes(q5, origin()).unwrap();
    let err = f.tensor_f32(&f.tensors[0]).unwrap_err();
    assert!(err.to_string().contains("`d`"));
    assert!(std::error::Error::source(&err).is_some_and(|s| s.to_string().contains("Q5_0")));
    // Bad alignment.
    let bad = small_file()
        .metadata("general.alignment", GgufValue::U32(24))
        .build();
    let err = GgufFile::from_bytes(bad, origin()).unwrap_err();
    assert!(matches!(err, GgufError::BadAlignment { alignment: 24, .. }));
}

#[test]
fn open_names_a_missing_file() {
    let err = GgufFile::open(Path::new("/nonexistent/x.gguf")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.gguf"), "{err}");
}
