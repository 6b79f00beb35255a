//! Errors name what is wrong: tensors, files, vocabularies, templates, model ids.

use super::*;
use wst_models::{
    Arch, ChatMessage, ChatTemplate, DecoderConfig, DecoderLm, Error, LoadedModel, WeightStore,
};

fn saved_tensors(arch: Arch) -> Vec<(String, Tensor)> {
    let m = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 1).unwrap();
    let mut v: Vec<(String, Tensor)> = m.var_store().variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn missing_and_misshapen_tensors_are_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    let mut tensors = saved_tensors(Arch::Llama);
    tensors.retain(|(n, _)| n != "model.layers.1.mlp.up_proj.weight");
    Tensor::write_safetensors(&tensors, &path)?;
    let mut store = WeightStore::open(&path)?;
    let e = DecoderLm::load(
        DecoderConfig::tiny(Arch::Llama),
        &mut store,
        Device::Cpu,
        Kind::Float,
    )
    .unwrap_err();
    assert!(matches!(e, Error::MissingTensor { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("model.layers.1.mlp.up_proj.weight") && msg.contains("model.safetensors"),
        "{msg}"
    );

    let mut tensors = saved_tensors(Arch::Llama);
    for (n, t) in &mut tensors {
        if n == "model.norm.weight" {
            *t = Tensor::ones([33], (Kind::Float, Device::Cpu));
        }
    }
    Tensor::write_safetensors(&tensors, &path)?;
    let mut store = WeightStore::open(&path)?;
    let msg = DecoderLm::load(
        DecoderConfig::tiny(Arch::Llama),
        &mut store,
        Device::Cpu,
        Kind::Float,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("model.norm.weight") && msg.contains("[33]") && msg.contains("[32]"),
        "{msg}"
    );

    // A sharded index that names a tensor no shard holds.
    let shard = dir.path().join("a.safetensors");
    Tensor::write_safetensors(&saved_tensors(Arch::Llama), &shard)?;
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"weight_map": {"ghost.weight": "a.safetensors"}}"#,
    )?;
    let msg = WeightStore::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("ghost.weight"), "{msg}");
    // Not a safetensors file at all.
    std::fs::write(&path, b"garbage")?;
    let msg = WeightStore::open(&path).unwrap_err().to_string();
    assert!(msg.contains("model.safetensors"), "{msg}");
    Ok(())
}

/// A copy of the tiny Qwen2 folder to modify.
fn tiny_copy() -> tempfile::TempDir {
    let src = vectors("tiny-qwen2");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

#[test]
fn vocab_mismatch_is_an_error() -> TestResult {
    let dir = tiny_copy();
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)?.replace("\"vocab_size\": 512", "\"vocab_size\": 256");
    std::fs::write(&cfg, text)?;
    let e = LoadedModel::load(dir.path().to_str().unwrap(), Device::Cpu, Kind::Float).unwrap_err();
    assert!(
        matches!(
            e,
            Error::VocabMismatch {
                tokenizer: 512,
                embedding: 256,
                ..
            }
        ),
        "{e:?}"
    );
    Ok(())
}

#[test]
fn template_errors_are_errors() -> TestResult {
    let dir = tiny_copy();
    let jinja = dir.path().join("chat_template.jinja");
    std::fs::write(
        &jinja,
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}x",
    )?;
    let m = LoadedModel::load(dir.path().to_str().unwrap(), Device::Cpu, Kind::Float)?;
    let e = m
        .render_chat(&[ChatMessage::system("s"), ChatMessage::user("u")])
        .unwrap_err();
    let chain = format!("{e} / {:?}", std::error::Error::source(&e));
    assert!(
        chain.contains("System role not supported") && chain.contains("chat_template.jinja"),
        "{chain}"
    );
    assert_eq!(m.render_chat(&[ChatMessage::user("u")])?, "x");

    std::fs::write(&jinja, "{% for m in messages %}")?;
    let e = LoadedModel::load(dir.path().to_str().unwrap(), Device::Cpu, Kind::Float).unwrap_err();
    assert!(e.to_string().contains("chat_template.jinja"), "{e}");
    assert!(ChatTemplate::new("{{ x", "inline", None, None).is_err());
    Ok(())
}

#[test]
fn unknown_models_say_how_to_pass_a_path() {
    let e = LoadedModel::load("/no/such/model", Device::Cpu, Kind::Float).unwrap_err();
    assert!(matches!(e, Error::ModelNotFound { .. }), "{e:?}");
    let e = LoadedModel::load("wst-test-org/not-cached-model", Device::Cpu, Kind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wst-test-org/not-cached-model")
            && e.contains("config.json")
            && e.contains("local"),
        "{e}"
    );
}
