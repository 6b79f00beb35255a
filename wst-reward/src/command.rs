//! [`CommandReward`]: a user's reward program, started once and kept running, speaking JSON
//! lines.
//!
//! For each reply one line goes to the program's stdin:
//!
//! ```json
//! {"query": "What is 2 + 4?", "reference": "6", "reply": "6", "instruction": "Add.", "metadata": {}, "query_id": "arith/3"}
//! ```
//!
//! (`reference` and `instruction` may be `null`) and one line comes back on its stdout:
//! `{"score": 0.5}`, or `{"components": {"brevity": 1, "politeness": 0.2}}` when the table lists
//! `outputs`. Anything else — a line that is not such an object, a missing or non-numeric score,
//! the program exiting, or no line within `timeout_s` — stops the run with an error that quotes
//! the line and the end of the program's stderr. Logs belong on stderr.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wst_core::{Result, Reward, RewardComponentConfig, RewardComponents, RewardInput};

use crate::ComponentError;

/// Lines of stderr kept for error messages.
const STDERR_LINES: usize = 20;

#[derive(Debug, Default)]
struct StderrTail {
    lines: VecDeque<String>,
    done: bool,
}

/// A reward program speaking one JSON line per reply (see the module docs).
pub struct CommandReward {
    name: String,
    outputs: Vec<String>,
    command: Vec<String>,
    timeout: Duration,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    stderr: Arc<Mutex<StderrTail>>,
    broken: Option<String>,
}

impl std::fmt::Debug for CommandReward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandReward")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("outputs", &self.outputs)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CommandReward {
    /// Starts `command` (program and arguments) in `workdir`, for the component `name` (or the
    /// components `outputs`), with `timeout` per reply.
    pub fn spawn(
        name: &str,
        command: &[String],
        workdir: Option<&str>,
        outputs: &[String],
        timeout: Duration,
    ) -> std::result::Result<Self, ComponentError> {
        let spawn_err = |source| ComponentError::Spawn {
            name: name.to_string(),
            command: command.to_vec(),
            source,
        };
        let (prog, args) = command.split_first().ok_or_else(|| {
            spawn_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the command is empty",
            ))
        })?;
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(d) = workdir {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr_pipe = child.stderr.take();
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(out) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(StderrTail::default()));
        if let Some(err) = stderr_pipe {
            let tail = stderr.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(err);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                            tracing::debug!(target: "wst_reward::command", "{line}");
                            if let Ok(mut t) = tail.lock() {
                                t.lines.push_back(line);
                                while t.lines.len() > STDERR_LINES {
                                    t.lines.pop_front();
                                }
                            }
                        }
                    }
                }
                if let Ok(mut t) = tail.lock() {
                    t.done = true;
                }
            });
        }
        Ok(CommandReward {
            name: name.to_string(),
            outputs: outputs.to_vec(),
            command: command.to_vec(),
            timeout,
            child,
            stdin,
            lines,
            stderr,
            broken: None,
        })
    }

    /// The program of a `kind = "command"` table.
    pub fn from_config(
        name: &str,
        cfg: &RewardComponentConfig,
    ) -> std::result::Result<Self, ComponentError> {
        Self::spawn(
            name,
            &cfg.command,
            cfg.workdir.as_deref(),
            &cfg.outputs,
            Duration::from_secs_f64(cfg.timeout_s.max(0.001)),
        )
    }

    /// The end of the program's stderr, waiting up to `wait` for it to close when it is exiting.
    fn stderr_tail(&self, wait: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let done = self.stderr.lock().map(|t| t.done).unwrap_or(true);
            if done || t0.elapsed() >= wait {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let lines: Vec<String> = self
            .stderr
            .lock()
            .map(|t| t.lines.iter().cloned().collect())
            .unwrap_or_default();
        if lines.is_empty() {
            "    (nothing)".into()
        } else {
            lines
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }

    fn fail(&mut self, what: String, line: String, exiting: bool) -> ComponentError {
        if !exiting {
            // A program that broke the protocol is not trusted with more input.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let stderr = self.stderr_tail(Duration::from_secs(2));
        self.broken = Some(what.clone());
        ComponentError::Protocol {
            name: self.name.clone(),
            command: self.command.clone(),
            what,
            line,
            stderr,
        }
    }

    fn exit_status(&mut self) -> String {
        // The output closed: give the program a moment to finish exiting.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return format!("exited ({st})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        "closed its stdout".into()
    }

    fn parse(&self, line: &str) -> std::result::Result<RewardComponents, String> {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("printed a line that is not JSON ({e})"))?;
        let obj = v.as_object().ok_or("printed JSON that is not an object")?;
        let num = |key: &str, x: &serde_json::Value| {
            x.as_f64()
                .filter(|f| f.is_finite())
                .ok_or(format!("gave `{key}` = {x}, not a finite number"))
        };
        if self.outputs.is_empty() {
            let s = obj
                .get("score")
                .ok_or("printed an object without `score` (expected {\"score\": x})")?;
            Ok(RewardComponents::from_pairs([(
                self.name.clone(),
                num("score", s)?,
            )]))
        } else {
            let comps = obj
                .get("components")
                .and_then(|c| c.as_object())
                .ok_or(format!(
                    "printed no `components` object (expected {{\"components\": {{{}}}}})",
                    self.outputs
                        .iter()
                        .map(|o| format!("\"{o}\": x"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?;
            if let Some(extra) = comps.keys().find(|k| !self.outputs.contains(k)) {
                return Err(format!(
                    "returned the component `{extra}`, which is not in outputs [{}]",
                    self.outputs.join(", ")
                ));
            }
            self.outputs
                .iter()
                .map(|o| {
                    let x = comps.get(o).ok_or(format!("returned no component `{o}`"))?;
                    Ok((o.clone(), num(o, x)?))
                })
                .collect::<std::result::Result<Vec<_>, String>>()
                .map(RewardComponents::from_pairs)
        }
    }

    fn score_one(
        &mut self,
        input: &RewardInput<'_>,
    ) -> std::result::Result<RewardComponents, ComponentError> {
        let q = input.query;
        let msg = serde_json::json!({
            "query": q.text,
            "reference": q.reference,
            "reply": input.reply,
            "instruction": input.instruction,
            "metadata": q.metadata,
            "query_id": q.id,
        })
        .to_string();
        let sent = || {
            let mut s: String = msg.chars().take(300).collect();
            if s.len() < msg.len() {
                s.push_str("...");
            }
            format!("(none; it was sent {s})")
        };
        let write = match self.stdin.as_mut() {
            Some(w) => writeln!(w, "{msg}").and_then(|_| w.flush()),
            None => Err(std::io::Error::other("stdin is closed")),
        };
        if let Err(e) = write {
            let st = self.exit_status();
            return Err(self.fail(format!("{st}: cannot write to it ({e})"), sent(), true));
        }
        match self.lines.recv_timeout(self.timeout) {
            Ok(Ok(line)) => self.parse(&line).map_err(|what| {
                let mut l: String = line.chars().take(500).collect();
                if l.len() < line.len() {
                    l.push_str("...");
                }
                self.fail(what, l, false)
            }),
            Ok(Err(e)) => Err(self.fail(format!("cannot be read ({e})"), sent(), false)),
            Err(RecvTimeoutError::Timeout) => Err(self.fail(
                format!(
                    "gave no answer within {:?} (reward.components.*.timeout_s)",
                    self.timeout
                ),
                sent(),
                false,
            )),
            Err(RecvTimeoutError::Disconnected) => {
                let st = self.exit_status();
                Err(self.fail(format!("{st} before answering"), sent(), true))
            }
        }
    }
}

impl Reward for CommandReward {
    fn component_names(&self) -> Vec<String> {
        if self.outputs.is_empty() {
            vec![self.name.clone()]
        } else {
            self.outputs.clone()
        }
    }

    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        if let Some(what) = &self.broken {
            return Err(ComponentError::Protocol {
                name: self.name.clone(),
                command: self.command.clone(),
                what: format!("failed earlier ({what})"),
                line: "(none)".into(),
                stderr: self.stderr_tail(Duration::ZERO),
            }
            .into());
        }
        inputs
            .iter()
            .map(|i| self.score_one(i).map_err(wst_core::Error::from))
            .collect()
    }
}

impl Drop for CommandReward {
    fn drop(&mut self) {
        // Closing stdin asks the program to finish; it gets a moment before it is killed.
        drop(self.stdin.take());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
