//! `wst serve`: an OpenAI-compatible chat-completions server (axum on tokio), in two modes.
//!
//! - `--model M`: serves a local model; concurrent requests share forward passes of the
//!   batched generator ([`backend::ModelBackend`]).
//! - `--config CFG --teacher T`: the WST proxy; the teacher writes an instruction for each
//!   query with the config's teacher template, the config's student (local or HTTP) answers
//!   with it ([`backend::ProxyBackend`]), exactly as in training and evaluation.
//!
//! The router ([`router`]), the request and answer types ([`types`], [`answer`]) and the
//! batching queue ([`queue`]) are apart, so they could move to a crate of their own.

pub mod answer;
pub mod backend;
pub mod queue;
pub mod router;
pub mod types;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use wst_models::select_device;
use wst_rl::eval::PolicyTeacher;

use crate::args::DeviceArgs;
use crate::wiring;
use backend::{ModelBackend, ProxyBackend};
use queue::{Queue, QueueOptions};
use types::Limits;

/// Arguments of `wst serve`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["model", "config"])))]
pub struct ServeArgs {
    /// Serve this model: a folder, a .gguf file, a hub id in the local cache, `smollm2`, a run
    /// folder (its newest checkpoint) or a checkpoint.
    #[arg(long)]
    model: Option<String>,
    /// The WST proxy: this config's student, instructed by `--teacher`.
    #[arg(long, requires = "teacher")]
    config: Option<PathBuf>,
    /// The proxy's teacher: a run folder, a checkpoint or a model.
    #[arg(long, requires = "config")]
    teacher: Option<String>,
    /// Override a key of `--config` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    set: Vec<String>,
    /// Address to bind (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Environment variable holding the key clients must send as `Authorization: Bearer`.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// The model name clients use (default: `--model` as given, or the config's
    /// `student.model`); the default stays accepted too.
    #[arg(long)]
    served_model_name: Option<String>,
    /// Device and weight type of `--model` (the proxy uses `run.device`).
    #[command(flatten)]
    on: DeviceArgs,
    /// Completion length when a request gives no `max_tokens` (default: 256, or the
    /// config's `student.sampling.max_new_tokens`).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Largest `n` of a request.
    #[arg(long, default_value_t = 16)]
    max_n: usize,
    /// Sequences generated together at most (the sum of `n` over a batch).
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Milliseconds the worker waits after a request for others to join its batch.
    #[arg(long, default_value_t = 10)]
    batch_window_ms: u64,
    /// Requests waiting at most; more are answered 429.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 4 << 20)]
    max_body_bytes: usize,
    /// Seed of the sampling of requests that give none.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `wst serve` until SIGTERM or Ctrl-C, then finishes the requests in flight.
pub fn run(args: ServeArgs) -> Result<()> {
    let api_key = match &args.api_key_env {
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("--api-key-env {var}: the variable is not set (or not UTF-8)")
        })?),
        None => None,
    };
    let options = QueueOptions {
        capacity: args.queue,
        window: Duration::from_millis(args.batch_window_ms),
        max_rows: args.max_batch.max(1),
    };
    let (queue, worker, mut names) = if let Some(spec) = args.model.clone() {
        let device = select_device(args.on.device)?;
        let dt = args.on.dtype;
        let (max_tokens, max_rows, seed) =
            (args.max_tokens.unwrap_or(256), args.max_batch, args.seed);
        let s = spec.clone();
        let (queue, worker) = Queue::start(
            move || {
                let model = wiring::load_model(&s, device, dt)?;
                Ok(ModelBackend::new(model, max_tokens, max_rows, seed))
            },
            options,
        )?;
        (queue, worker, vec![spec])
    } else {
        let path = args.config.clone().context("--config")?;
        let teacher = args.teacher.clone().context("--teacher")?;
        let cfg = wiring::load_config(&path, &args.set)?;
        let name = cfg.student.model.clone();
        let max_tokens = args
            .max_tokens
            .unwrap_or(cfg.student.sampling.max_new_tokens);
        let (queue, worker) = Queue::start(
            move || {
                let device = wiring::device(&cfg)?;
                let policy = wiring::teacher_from(&cfg, Some(teacher.as_str()), device)?;
                let writer = PolicyTeacher::new(
                    teacher.clone(),
                    policy,
                    wiring::templates(&cfg)?,
                    cfg.teacher.sampling.clone(),
                    cfg.run.seed,
                );
                let student = wiring::student(&cfg, device)?;
                Ok(ProxyBackend::new(
                    Box::new(writer),
                    teacher,
                    student,
                    max_tokens,
                ))
            },
            options,
        )?;
        (queue, worker, vec![name])
    };
    if let Some(n) = &args.served_model_name {
        names.insert(0, n.clone());
    }
    let limits = Limits {
        max_n: args.max_n.max(1),
    };
    let state = Arc::new(router::AppState::new(queue, names, api_key, limits));
    let app = router::app(state, args.max_body_bytes);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot bind {}:{}", args.host, args.port))?;
        let addr = listener.local_addr()?;
        println!("wst serve: listening on http://{addr}/v1");
        use std::io::Write;
        std::io::stdout().flush()?;
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("server")
    })?;
    // The router (and its queue) is gone: the worker finishes what it holds and exits.
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the model worker panicked"))?;
    eprintln!("wst serve: stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("wst serve: shutting down after the requests in flight");
}
