//! `wst export` checked with transformers (installed into the project venv by
//! `scripts/ensure-pyarrow.sh transformers==5.17.0`), and hub downloads of `wst generate` / `wst data`
//! against the stand-in hub.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wst_core::hub::standin::StandInHub;
use wst_core::hub::RepoKind;

use crate::train::{repo, shared, text, tiny_config, train_quiet};
use crate::wst;

/// A Python with transformers (the project venv).
fn python() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("scripts/ensure-pyarrow.sh"))
        // The version that made ../shared/testvectors: later ones (5.24) rebuild a Qwen2
        // tokenizer's pre-tokenizer instead of reading tokenizer.json's, and their ids differ.
        .args(["transformers==5.17.0", "safetensors", "peft==0.21.2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    PathBuf::from(text(&out).0.trim())
}

/// Runs a Python script with arguments; its stdout parsed as JSON.
fn run_python(script: &str, args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .env("TRANSFORMERS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// Greedy ids of `wst generate --model M --prompt P`: (prompt ids, output ids).
fn wst_greedy(model: &Path, prompt: &str, n: usize) -> (Value, Value) {
    let out = wst()
        .args(["generate", "--model"])
        .arg(model)
        .args([
            "--prompt",
            prompt,
            "--greedy",
            "--json",
            "--device",
            "cpu",
            "--max-tokens",
        ])
        .arg(n.to_string())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    (v["prompt_ids"].clone(), v["output_ids"].clone())
}

const GREEDY: &str = r#"
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
d, ids, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(d)
model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)
print(json.dumps({"prompt_ids": ids, "output_ids": out[0, len(ids):].tolist(),
                  "arch": model.config.architectures[0],
                  "template": tok.chat_template is not None}))
"#;

#[test]
fn export_of_a_tiny_trained_run_loads_in_transformers_with_the_same_greedy_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    let run = dir.path().join("runs/tiny");
    let out = train_quiet(&cfg);
    assert!(out.status.success(), "{}", text(&out).1);

    // Two steps of a random tiny model rarely move it (its replies all score 0, so every
    // advantage is 0): the checkpoint's weights are changed by hand, so that an export of the
    // base model's weights instead of the checkpoint's cannot pass.
    let ckpt = run.join("checkpoints/step-00000002/model.safetensors");
    let edited = run_python(
        r#"
import json, sys
from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1])
t = {k: (v * 1.5).contiguous() for k, v in t.items()}
save_file(t, sys.argv[1], metadata={"format": "pt"})
print(json.dumps({"tensors": len(t)}))
"#,
        &[ckpt.to_str().unwrap()],
    );
    assert!(edited["tensors"].as_u64().unwrap() > 10, "{edited}");

    let exported = dir.path().join("export-f32");
    let out = wst()
        .arg("export")
        .arg(&run)
        .arg("--out")
        .arg(&exported)
        .args(["--dtype", "f32"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "README.md",
    ] {
        assert!(exported.join(f).is_file(), "{f}");
    }
    let readme = std::fs::read_to_string(exported.join("README.md")).unwrap();
    assert!(
        readme.contains("tiny-qwen2") && readme.contains("step-00000002"),
        "{readme}"
    );
    // An existing folder is never overwritten.
    let out = wst()
        .arg("export")
        .arg(&run)
        .arg("--out")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).1.contains("exists"));

    let prompt = "What is 3 + 4?";
    let n = 10;
    let from_export = wst_greedy(&exported, prompt, n);
    let from_run = wst_greedy(&run, prompt, n);
    assert_eq!(from_export, from_run);
    let same = run_python(
        r#"
import json, sys
from safetensors.torch import load_file
a = load_file(sys.argv[1] + "/model.safetensors")
b = load_file(sys.argv[2])
print(json.dumps({"checkpoint": sum(int(a[k].equal(b[k])) for k in b if k in a),
                  "tensors": len(b)}))
"#,
        &[exported.to_str().unwrap(), ckpt.to_str().unwrap()],
    );
    assert_eq!(
        same["checkpoint"], same["tensors"],
        "export != checkpoint: {same}"
    );
    // transformers is given wst's prompt ids: for `model_type = qwen2` its AutoTokenizer builds
    // Qwen2's own pre-tokenizer instead of the tiny test tokenizer's plain byte-level one, so the
    // ids of "3 + 4" differ (real Qwen2 tokenizers carry that pre-tokenizer in tokenizer.json;
    // the SmolLM2 test below compares tokenizers on the real one).
    let hf = run_python(
        GREEDY,
        &[
            exported.to_str().unwrap(),
            &from_export.0.to_string(),
            &n.to_string(),
        ],
    );
    assert_eq!(hf["arch"], "Qwen2ForCausalLM");
    assert_eq!(hf["template"], true);
    assert_eq!(
        (hf["prompt_ids"].clone(), hf["output_ids"].clone()),
        from_export
    );

    // bf16 and sharded: the dtype is the one asked for, and every shard is indexed.
    let sharded = dir.path().join("export-bf16");
    let out = wst()
        .arg("export")
        .arg(run.join("checkpoints/step-00000002"))
        .arg("--out")
        .arg(&sharded)
        .args(["--dtype", "bf16", "--max-shard-bytes", "60000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(sharded.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let mut files: Vec<&str> = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    files.sort();
    files.dedup();
    assert!(files.len() > 1, "{files:?}");
    let v = run_python(
        r#"
import json, sys, torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype="auto")
print(json.dumps({"dtype": str(m.dtype)}))
"#,
        &[sharded.to_str().unwrap()],
    );
    assert_eq!(v["dtype"], "torch.bfloat16");
}

/// PEFT's view of a LoRA checkpoint: logits of `ids` from the base model with the
/// checkpoint's adapters (`PeftModel.from_pretrained`), from the exported merged folder, and
/// from the base alone; greedy ids of the PEFT model.
const PEFT_CHECK: &str = r#"
import json, sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
base_dir, ckpt, merged_dir, ids, n = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])
x = torch.tensor([ids])
base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
with torch.no_grad():
    plain = base(x).logits
peft = PeftModel.from_pretrained(base, ckpt).eval()
merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
with torch.no_grad():
    a = peft(x).logits
    b = merged(x).logits
    greedy = peft.generate(input_ids=x, max_new_tokens=n, do_sample=False)
print(json.dumps({"peft_vs_merged": (a - b).abs().max().item(),
                  "adapters_move": (a - plain).abs().max().item(),
                  "scale": (a.abs().max()).item(),
                  "output_ids": greedy[0, len(ids):].tolist()}))
"#;

#[test]
fn a_lora_run_checkpoints_peft_adapters_and_exports_them_merged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    let run = dir.path().join("runs/tiny");
    // `--set` creates the [teacher.lora] table; the other keys keep their defaults.
    let out = wst()
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .args([
            "--set",
            "teacher.lora.rank=4",
            "--set",
            "teacher.lora.alpha=8",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let ckpt = run.join("checkpoints/step-00000002");
    assert!(!ckpt.join("model.safetensors").exists());
    let saved = std::fs::read_to_string(ckpt.join("config.toml")).unwrap();
    assert!(
        saved.contains("[teacher.lora]") && saved.contains("rank = 4"),
        "{saved}"
    );

    // The tiny run's advantages are all 0, so B is still 0: set it by hand (seeded), so that
    // an export or a load that drops the adapters cannot pass.
    let edited = run_python(
        r#"
import json, sys, torch
from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1])
g = torch.Generator().manual_seed(0)
t = {k: (torch.randn(v.shape, generator=g) * 0.2 if "lora_B" in k else v).contiguous()
     for k, v in t.items()}
save_file(t, sys.argv[1], metadata={"format": "pt"})
print(json.dumps({"tensors": len(t)}))
"#,
        &[ckpt.join("adapter_model.safetensors").to_str().unwrap()],
    );
    assert_eq!(edited["tensors"], 2 * 2 * 7, "{edited}");

    let exported = dir.path().join("export-lora");
    let out = wst()
        .arg("export")
        .arg(&run)
        .arg("--out")
        .arg(&exported)
        .args(["--dtype", "f32"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let names = run_python(
        r#"
import json, sys
from safetensors.torch import load_file
print(json.dumps(sorted(load_file(sys.argv[1] + "/model.safetensors"))))
"#,
        &[exported.to_str().unwrap()],
    );
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !n.as_str().unwrap().contains("lora")),
        "{names}"
    );

    // wst with the adapters unmerged (the run) and merged (the export) agree token for token,
    // and so does PEFT with the checkpoint's adapter files on the base model.
    let prompt = "What is 3 + 4?";
    let n = 10;
    let from_export = wst_greedy(&exported, prompt, n);
    let from_run = wst_greedy(&run, prompt, n);
    assert_eq!(from_export, from_run);
    let peft = run_python(
        PEFT_CHECK,
        &[
            shared().join("testvectors/tiny-qwen2").to_str().unwrap(),
            ckpt.to_str().unwrap(),
            exported.to_str().unwrap(),
            &from_run.0.to_string(),
            &n.to_string(),
        ],
    );
    let scale = peft["scale"].as_f64().unwrap();
    assert!(
        peft["peft_vs_merged"].as_f64().unwrap() < 1e-5 * scale.max(1.0),
        "{peft}"
    );
    assert!(peft["adapters_move"].as_f64().unwrap() > 1e-3, "{peft}");
    assert_eq!(peft["output_ids"], from_run.1, "{peft}");
}

#[test]
fn smollm2_export_tokenizer_and_chat_template_match_wst() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(shared().join("testvectors/smollm2-135m-instruct-q4_1.json"))
            .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("smollm2");
    let out = wst()
        .args(["export", "smollm2", "--dtype", "f32", "--out"])
        .arg(&exported)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let refs = dir.path().join("reference.json");
    std::fs::write(&refs, reference.to_string()).unwrap();
    let v = run_python(
        r#"
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
d, r = sys.argv[1], json.load(open(sys.argv[2]))
tok = AutoTokenizer.from_pretrained(d)
ids = [tok(t["text"], add_special_tokens=False)["input_ids"] for t in r["tokenizer"]]
chat = [tok.apply_chat_template(r[k]["messages"], add_generation_prompt=r[k]["add_generation_prompt"], tokenize=False)
        for k in ["chat_template_render", "chat_template_render_nosys"]]
m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
g = r["greedy_20"]
out = m.generate(torch.tensor([g["input_ids"]]), max_new_tokens=len(g["output_ids"]), do_sample=False)
print(json.dumps({"ids": ids, "chat": chat, "greedy": out[0, len(g["input_ids"]):].tolist(),
                  "arch": m.config.architectures[0]}))
"#,
        &[exported.to_str().unwrap(), refs.to_str().unwrap()],
    );
    assert_eq!(v["arch"], "LlamaForCausalLM");
    let want_ids: Vec<Value> = reference["tokenizer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ids"].clone())
        .collect();
    assert_eq!(v["ids"].as_array().unwrap(), &want_ids);
    assert_eq!(v["chat"][0], reference["chat_template_render"]["text"]);
    assert_eq!(
        v["chat"][1],
        reference["chat_template_render_nosys"]["text"]
    );
    assert_eq!(v["greedy"], reference["greedy_20"]["output_ids"]);
}

#[test]
fn hub_ids_download_into_an_empty_hf_home_then_work_offline() {
    let server = hub_with_tiny_qwen2();
    let gsm = std::fs::read(shared().join("data/gsm8k/test.parquet")).unwrap();
    server.add_file(
        RepoKind::Dataset,
        "openai/gsm8k",
        "main/test-00000-of-00001.parquet",
        gsm,
    );
    let home = tempfile::tempdir().unwrap();
    let cmd = |offline: bool| hub_wst(home.path(), server.endpoint(), offline);
    let generate = |offline: bool| {
        let out = cmd(offline)
            .args([
                "generate",
                "--model",
                "org/tiny-qwen2",
                "--prompt",
                "Hi",
                "--greedy",
                "--json",
                "--device",
                "cpu",
                "--max-tokens",
                "4",
            ])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()["output_ids"].clone()
    };
    let first = generate(false);
    assert!(home
        .path()
        .join("hub/models--org--tiny-qwen2/refs/main")
        .is_file());
    let n = server.requests().len();
    assert_eq!(generate(true), first);
    assert_eq!(server.requests().len(), n, "offline: no request");

    let stats = |offline: bool| {
        cmd(offline)
            .args([
                "data",
                "stats",
                "--dataset",
                "gsm8k",
                "--path",
                "openai/gsm8k",
                "--split",
                "test",
            ])
            .output()
            .unwrap()
    };
    let out = stats(false);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(text(&out).0.contains("1319"), "{}", text(&out).0);
    assert!(stats(true).status.success());

    // Offline on an empty cache: at once, and saying so.
    let empty = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let out = wst()
        .env("HF_HOME", empty.path())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .args([
            "generate",
            "--model",
            "org/tiny-qwen2",
            "--prompt",
            "Hi",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    let err = text(&out).1;
    assert!(
        err.contains("offline") && err.contains("org/tiny-qwen2"),
        "{err}"
    );
}

#[test]
fn a_hub_teacher_is_pinned_to_its_commit_in_the_run_config_and_resumes_offline() {
    let server = hub_with_tiny_qwen2();
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    let home = tempfile::tempdir().unwrap();
    let cmd = |offline: bool| hub_wst(home.path(), server.endpoint(), offline);
    let out = cmd(false)
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .args(["--set", "teacher.model=org/tiny-qwen2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let commit =
        std::fs::read_to_string(home.path().join("hub/models--org--tiny-qwen2/refs/main")).unwrap();
    let run = dir.path().join("runs/tiny");
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        saved.contains(&format!("revision = \"{}\"", commit.trim())),
        "{saved}"
    );
    // The pinned commit resolves from the cache alone.
    let out = cmd(true)
        .args(["train", "--quiet", "--resume"])
        .arg(&run)
        .args(["--set", "run.steps=3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
}

/// `wst` with an empty-or-given `HF_HOME` and the stand-in hub as `HF_ENDPOINT` (no token, no
/// other cache variable), offline or not.
fn hub_wst(home: &Path, endpoint: &str, offline: bool) -> Command {
    let mut c = wst();
    c.env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HUGGINGFACE_HUB_CACHE");
    if offline {
        c.env("HF_HUB_OFFLINE", "1");
    } else {
        c.env_remove("HF_HUB_OFFLINE");
    }
    c
}

/// A stand-in hub serving the tiny Qwen2 test model as `org/tiny-qwen2`.
fn hub_with_tiny_qwen2() -> StandInHub {
    let server = StandInHub::start().unwrap();
    server
        .add_dir(
            RepoKind::Model,
            "org/tiny-qwen2",
            &shared().join("testvectors/tiny-qwen2"),
        )
        .unwrap();
    server
}
