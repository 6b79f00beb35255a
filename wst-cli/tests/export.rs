//! `wst export` checked with transformers (installed into the project venv by
//! `scripts/ensure-pyarrow.sh transformers==5.17.0`), and hub downloads of `wst generate` / `wst data`
//! against the stand-in hub.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wst_core::hub::standin::StandInHub;
use wst_core::hub::RepoKind;

use crate::train::{tiny_setup, train_quiet};
use crate::{
    failed, ok, python_with, read_json, run_ok, shared, text, tiny_model, with_config, wst,
};

/// A Python with transformers (the project venv).
fn python() -> PathBuf {
    // The version that made ../shared/testvectors: later ones (5.24) rebuild a Qwen2
    // tokenizer's pre-tokenizer instead of reading tokenizer.json's, and their ids differ.
    python_with(&["transformers==5.17.0", "safetensors", "peft==0.21.2"])
}

/// Runs a Python script with arguments; its stdout parsed as JSON.
fn run_python(script: &str, args: &[&str]) -> Value {
    let out = run_ok(
        Command::new(python())
            .arg("-c")
            .arg(script)
            .args(args)
            .env("TRANSFORMERS_OFFLINE", "1")
            .env("HF_HUB_OFFLINE", "1"),
    );
    let (stdout, stderr) = text(&out);
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// `wst generate --model M --prompt P --greedy --json --device cpu --max-tokens N` (`cmd` the
/// `wst` to run): its JSON.
fn greedy_json(mut cmd: Command, model: &str, prompt: &str, n: usize) -> Value {
    let out = run_ok(
        cmd.args(["generate", "--model", model, "--prompt", prompt])
            .args(["--greedy", "--json", "--device", "cpu", "--max-tokens"])
            .arg(n.to_string()),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// How many tokens [`greedy_alike`] generates.
const GREEDY_N: usize = 10;

/// Greedy ids of `wst generate --prompt "What is 3 + 4?"`, which the export and the run it came
/// from give alike: (prompt ids, output ids).
fn greedy_alike(exported: &Path, run: &Path) -> (Value, Value) {
    let greedy = |model: &Path| {
        let v = greedy_json(wst(), model.to_str().unwrap(), "What is 3 + 4?", GREEDY_N);
        (v["prompt_ids"].clone(), v["output_ids"].clone())
    };
    let from_export = greedy(exported);
    assert_eq!(from_export, greedy(run));
    from_export
}

/// `wst export FROM --out TO ARGS...`, run to its end.
fn export(from: &Path, to: &Path, args: &[&str]) -> std::process::Output {
    wst()
        .arg("export")
        .arg(from)
        .arg("--out")
        .arg(to)
        .args(args)
        .output()
        .unwrap()
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
    let (dir, cfg, run) = tiny_setup();
    ok(train_quiet(&cfg));

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
    ok(export(&run, &exported, &["--dtype", "f32"]));
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
    assert!(failed(&export(&run, &exported, &[])).contains("exists"));

    let from_export = greedy_alike(&exported, &run);
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
            &GREEDY_N.to_string(),
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
    ok(export(
        &run.join("checkpoints/step-00000002"),
        &sharded,
        &["--dtype", "bf16", "--max-shard-bytes", "60000"],
    ));
    let index = read_json(&sharded.join("model.safetensors.index.json"));
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
    let (dir, cfg, run) = tiny_setup();
    // `--set` creates the [teacher.lora] table; the other keys keep their defaults.
    ok(with_config(
        &["train", "--quiet"],
        &cfg,
        &[
            "--set",
            "teacher.lora.rank=4",
            "--set",
            "teacher.lora.alpha=8",
        ],
    ));
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
    ok(export(&run, &exported, &["--dtype", "f32"]));
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
    let from_run = greedy_alike(&exported, &run);
    let peft = run_python(
        PEFT_CHECK,
        &[
            tiny_model().to_str().unwrap(),
            ckpt.to_str().unwrap(),
            exported.to_str().unwrap(),
            &from_run.0.to_string(),
            &GREEDY_N.to_string(),
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
    let reference = read_json(&shared().join("testvectors/smollm2-135m-instruct-q4_1.json"));
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("smollm2");
    run_ok(
        wst()
            .args(["export", "smollm2", "--dtype", "f32", "--out"])
            .arg(&exported),
    );
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
    let generate =
        |offline: bool| greedy_json(cmd(offline), "org/tiny-qwen2", "Hi", 4)["output_ids"].clone();
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
    let out = ok(stats(false));
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
    let err = failed(&out);
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert!(
        err.contains("offline") && err.contains("org/tiny-qwen2"),
        "{err}"
    );
}

#[test]
fn a_hub_teacher_is_pinned_to_its_commit_in_the_run_config_and_resumes_offline() {
    let server = hub_with_tiny_qwen2();
    let (_dir, cfg, run) = tiny_setup();
    let home = tempfile::tempdir().unwrap();
    let cmd = |offline: bool| hub_wst(home.path(), server.endpoint(), offline);
    run_ok(
        cmd(false)
            .args(["train", "--quiet", "--config"])
            .arg(&cfg)
            .args(["--set", "teacher.model=org/tiny-qwen2"]),
    );
    let commit =
        std::fs::read_to_string(home.path().join("hub/models--org--tiny-qwen2/refs/main")).unwrap();
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        saved.contains(&format!("revision = \"{}\"", commit.trim())),
        "{saved}"
    );
    // The pinned commit resolves from the cache alone.
    run_ok(
        cmd(true)
            .args(["train", "--quiet", "--resume"])
            .arg(&run)
            .args(["--set", "run.steps=3"]),
    );
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
        .add_dir(RepoKind::Model, "org/tiny-qwen2", &tiny_model())
        .unwrap();
    server
}
