//! Builds the concrete components a config names (models, student, reward, data, stores) and
//! checks them without training (`--dry-run`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tch::Device;
use wst_core::{Config, DType, PromptTemplates, Reward, RewardKind, Student, StudentBackend};
use wst_models::{dtype_kind, resolve_spec, select_device, HttpStudent, LoadedModel, LocalStudent};
use wst_reward::{MathReward, RewardModelReward};
use wst_rl::LmPolicy;

/// Where a config's run lives: `run.output_dir/run.name`.
pub fn run_dir(cfg: &Config) -> PathBuf {
    cfg.run.output_dir.join(&cfg.run.name)
}

/// Loads a config with `--set` overrides and validates it (every problem reported at once).
pub fn load_config(path: &Path, set: &[String]) -> Result<Config> {
    let cfg = Config::load(path, set)?;
    cfg.validate()
        .with_context(|| format!("config {}", path.display()))?;
    Ok(cfg)
}

/// The device of `run.device`.
pub fn device(cfg: &Config) -> Result<Device> {
    Ok(select_device(cfg.run.device)?)
}

/// The prompt templates of `[templates]`.
pub fn templates(cfg: &Config) -> Result<PromptTemplates> {
    PromptTemplates::new(cfg.templates.resolve()).context("[templates]")
}

/// Loads the teacher model of `[teacher]`.
pub fn teacher_model(cfg: &Config, device: Device) -> Result<LoadedModel> {
    let kind = dtype_kind(cfg.teacher.dtype, device);
    let spec = cfg.teacher.model_spec();
    LoadedModel::load(&spec, device, kind).with_context(|| format!("teacher model `{spec}`"))
}

/// The trainable teacher of `[teacher]`.
pub fn teacher_policy(cfg: &Config, device: Device) -> Result<LmPolicy> {
    Ok(LmPolicy::new(teacher_model(cfg, device)?))
}

/// The teacher `wst train` trains: that of `[teacher]`, with fresh LoRA adapters (drawn from
/// `run.seed`, every base weight frozen) when `[teacher.lora]` is set.
pub fn trainable_teacher(cfg: &Config, device: Device) -> Result<LmPolicy> {
    let mut model = teacher_model(cfg, device)?;
    if let Some(lora) = &cfg.teacher.lora {
        model
            .model
            .add_lora(lora, cfg.run.seed as i64)
            .context("[teacher.lora]")?;
    }
    Ok(LmPolicy::new(model))
}

/// The config a checkpoint (or a run folder's newest checkpoint) was trained with, when `spec`
/// names one: it holds the teacher settings (dtype, base model) the weights belong to.
fn checkpoint_config(spec: &str) -> Result<Option<Config>> {
    let Some(dir) = wst_models::checkpoint_dir(Path::new(spec))? else {
        return Ok(None);
    };
    let saved = dir.join(wst_rl::CONFIG_FILE);
    let cfg = Config::load(&saved, &[])
        .with_context(|| format!("checkpoint {}: its config", dir.display()))?;
    Ok(Some(cfg))
}

/// A local teacher: the config's (`spec` = `None`), another model, or trained weights from a
/// checkpoint or run folder (loaded by [`LoadedModel::load`] on the base model its own config
/// names, in its own `teacher.dtype`).
pub fn teacher_from(cfg: &Config, spec: Option<&str>, device: Device) -> Result<LmPolicy> {
    let Some(spec) = spec else {
        return teacher_policy(cfg, device);
    };
    let mut c = checkpoint_config(spec)?.unwrap_or_else(|| cfg.clone());
    c.teacher.model = spec.to_string();
    teacher_policy(&c, device)
}

/// Any model a command may name: a folder, a `.gguf` file, a hub id, `smollm2`, a run folder
/// (its newest checkpoint) or a checkpoint. `dtype` `Auto` keeps a checkpoint's own
/// `teacher.dtype`.
pub fn load_model(spec: &str, device: Device, dtype: DType) -> Result<LoadedModel> {
    let dtype = match (dtype, checkpoint_config(spec)?) {
        (DType::Auto, Some(c)) => c.teacher.dtype,
        (d, _) => d,
    };
    LoadedModel::load_dtype(spec, device, dtype).with_context(|| format!("loading model {spec}"))
}

/// The student of `[student]`: a local model or an OpenAI-compatible endpoint.
pub fn student(cfg: &Config, device: Device) -> Result<Box<dyn Student + Send>> {
    let templates = templates(cfg)?;
    let s = &cfg.student;
    Ok(match s.backend() {
        StudentBackend::Local { dtype, batch_size } => {
            let model = LoadedModel::load_dtype(&s.model, device, dtype)
                .with_context(|| format!("student model `{}`", s.model))?;
            Box::new(
                LocalStudent::new(model, templates)
                    .with_batch_size(batch_size)
                    .with_seed(cfg.run.seed)
                    .with_instruction_role(s.instruction_role),
            )
        }
        StudentBackend::Openai { .. } => Box::new(
            HttpStudent::from_config(s, templates)
                .with_context(|| format!("student endpoint for `{}`", s.model))?,
        ),
    })
}

/// The reward of `[reward]`: the shorthand `reward.kind`, or the `[reward.components]` mixed by
/// weight.
pub fn reward(cfg: &Config, device: Device) -> Result<Box<dyn Reward + Send>> {
    if !cfg.reward.components.is_empty() {
        let composite = wst_reward::build_components(&cfg.reward, |rms| {
            let one = wst_core::RewardConfig {
                kind: RewardKind::RewardModel,
                models: rms
                    .iter()
                    .map(|(n, c)| (n.clone(), c.model.clone().unwrap_or_default()))
                    .collect(),
                batch_size: rms.values().map(|c| c.batch_size).max().unwrap_or(16),
                components: Default::default(),
                ..cfg.reward.clone()
            };
            Ok(Box::new(
                RewardModelReward::from_config(&one, device)
                    .map_err(|e| wst_core::Error::other("[reward.components] reward models", e))?,
            ))
        })
        .context("[reward.components]")?;
        return Ok(Box::new(composite));
    }
    Ok(match cfg.reward.kind {
        RewardKind::Math => Box::new(MathReward::from_config(&cfg.reward)),
        RewardKind::RewardModel => Box::new(
            RewardModelReward::from_config(&cfg.reward, device).context("[reward.models]")?,
        ),
    })
}

/// Progress bars only when a person watches.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// One line of a dry run.
struct Check {
    what: String,
    outcome: Result<String>,
}

fn model_check(what: &str, spec: &str) -> Check {
    Check {
        what: format!("{what} `{spec}`"),
        // A hub id is checked without downloading (`check_model` lists the repository).
        outcome: if wst_models::hub::is_hub_id(spec) {
            wst_models::hub::check_model(spec).map_err(anyhow::Error::from)
        } else {
            resolve_spec(spec)
                .map(|p| format!("found at {} (not loaded)", p.display()))
                .map_err(anyhow::Error::from)
        },
    }
}

/// Whether `program` exists (a path) or is on `PATH` (a bare name); the program is not started.
fn program_found(program: &str) -> Result<String> {
    let p = Path::new(program);
    if program.contains(std::path::MAIN_SEPARATOR) {
        return if p.is_file() {
            Ok(format!("{} exists (not started)", p.display()))
        } else {
            Err(anyhow::anyhow!("{} does not exist", p.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|c| c.is_file())
        .map(|c| format!("found at {} (not started)", c.display()))
        .ok_or_else(|| anyhow::anyhow!("`{program}` is not on PATH"))
}

/// `--dry-run`: validates everything a run needs without training: the data, the eval data, the
/// models (found, not loaded), the student endpoint (reached), the reward models, the output
/// folder. Prints one line per check; fails when any check fails.
pub fn dry_run(cfg: &Config) -> Result<()> {
    let mut checks = vec![Check {
        what: "config".into(),
        outcome: Ok(format!(
            "valid (run `{}`, {} steps, B = {}, G = {}, K = {})",
            cfg.run.name,
            cfg.run.steps,
            cfg.grpo.batch_size,
            cfg.grpo.group_size,
            cfg.student.samples
        )),
    }];
    checks.push(Check {
        what: "templates".into(),
        outcome: templates(cfg).map(|_| "render".into()),
    });
    let train = wst_data::load_dataset(&cfg.data, cfg.run.seed);
    checks.push(Check {
        what: format!("data ({})", wst_data::kind_name(cfg.data.dataset)),
        outcome: match &train {
            Ok(d) => Ok(format!("{} training queries", d.queries.len())),
            Err(e) => Err(anyhow::anyhow!("{}", wst_core::error_chain(e))),
        },
    });
    checks.push(Check {
        what: "eval data".into(),
        outcome: wst_data::eval_queries(&cfg.eval, &cfg.data, cfg.run.seed)
            .and_then(|q| {
                if let Ok(d) = &train {
                    wst_data::check_disjoint(&d.queries, &q)?;
                }
                Ok(format!(
                    "{} held-out queries, none a training query",
                    q.len()
                ))
            })
            .map_err(anyhow::Error::from),
    });
    checks.push(model_check("teacher", &cfg.teacher.model_spec()));
    match cfg.student.backend() {
        StudentBackend::Local { .. } => checks.push(model_check("student", &cfg.student.model)),
        StudentBackend::Openai {
            base_urls,
            api_key_env,
            ..
        } => {
            if let Some(var) = api_key_env {
                checks.push(Check {
                    what: format!("student API key ${var}"),
                    outcome: match std::env::var_os(var) {
                        Some(_) => Ok("set".into()),
                        None => Err(anyhow::anyhow!(
                            "not set: export {var}=... (any value for a server without keys)"
                        )),
                    },
                });
            }
            let outcome = templates(cfg).and_then(|t| {
                let http = HttpStudent::from_config(&cfg.student, t)?;
                http.probe()?;
                Ok(format!("reachable at {}", base_urls.join(", ")))
            });
            checks.push(Check {
                what: format!("student endpoint `{}`", cfg.student.model),
                outcome: outcome.map_err(|e| {
                    e.context(format!(
                        "start the server (e.g. `vllm serve {}`) or set student.base_urls",
                        cfg.student.model
                    ))
                }),
            });
        }
    }
    for (name, c) in cfg.reward.resolved_components() {
        match c.kind {
            Some(wst_core::ComponentKind::RewardModel) => {
                let spec = c.model.unwrap_or_default();
                checks.push(model_check(&format!("reward model {name}"), &spec));
            }
            Some(wst_core::ComponentKind::Command) => checks.push(Check {
                what: format!("reward program {name} {:?}", c.command),
                outcome: program_found(c.command.first().map_or("", String::as_str)),
            }),
            _ => {}
        }
    }
    checks.push(Check {
        what: "output folder".into(),
        outcome: std::fs::create_dir_all(&cfg.run.output_dir)
            .map(|_| {
                format!(
                    "{} (run folder {})",
                    cfg.run.output_dir.display(),
                    run_dir(cfg).display()
                )
            })
            .with_context(|| format!("cannot create {}", cfg.run.output_dir.display())),
    });
    let mut failed = Vec::new();
    for c in &checks {
        match &c.outcome {
            Ok(msg) => println!("ok    {}: {msg}", c.what),
            Err(e) => {
                failed.push(format!("{}: {e:#}", c.what));
                println!("FAIL  {}: {e:#}", c.what);
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "dry run: {} of {} checks failed:\n  {}",
            failed.len(),
            checks.len(),
            failed.join("\n  ")
        );
    }
    println!("dry run: all {} checks passed", checks.len());
    Ok(())
}
