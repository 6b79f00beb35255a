//! A training run whose student is the HTTP client talking to a flaky OpenAI-compatible mock
//! server: the run completes, failed replies are counted and excluded, never scored as zero.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wst_core::{MemorySink, StudentConfig, StudentKind};
use wst_models::{Backoff, HttpStudent};
use wst_rl::{Parts, Trainer};

use crate::support::*;

/// Serves chat completions; of every 4 requests one gets a 500 and one a dropped connection.
/// It answers `a + b` right when the system message says "carefully".
fn start_server(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let counter = Arc::new(AtomicUsize::new(0));
    rt.spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                let v: serde_json::Value = serde_json::from_slice(&buf[head_end..]).unwrap();
                let i = counter.fetch_add(1, Ordering::SeqCst);
                let (status, body) = match i % 4 {
                    0 => ("500 Internal Server Error", "oops".to_string()),
                    1 => return, // dropped connection
                    _ => {
                        let msgs = v["messages"].as_array().unwrap();
                        let all: String = msgs
                            .iter()
                            .map(|m| m["content"].as_str().unwrap_or(""))
                            .collect::<Vec<_>>()
                            .join(" ");
                        let nums: Vec<i64> = all
                            .split(|c: char| !c.is_ascii_digit())
                            .filter_map(|w| w.parse().ok())
                            .collect();
                        let good = all.contains("check") && all.contains("carefully");
                        let text = if good && nums.len() >= 2 {
                            (nums[nums.len() - 2] + nums[nums.len() - 1]).to_string()
                        } else {
                            "no idea".into()
                        };
                        let n = v["n"].as_u64().unwrap_or(1);
                        let choices: Vec<serde_json::Value> = (0..n)
                            .map(|j| serde_json::json!({"index": j, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}))
                            .collect();
                        ("200 OK", serde_json::json!({ "choices": choices }).to_string())
                    }
                };
                let msg = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(msg.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    url
}

#[test]
fn training_against_a_flaky_http_student_completes_and_counts_failures() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = start_server(&rt);
    let mut cfg = config(4, 5);
    cfg.student.kind = StudentKind::Openai;
    cfg.student.base_urls = vec![url];
    cfg.student.max_retries = 1;
    cfg.student.timeout_s = 5.0;
    // Half the attempts fail here: with one retry, a step may lose more than half its replies
    // and a baseline all of its own, which would stop the run (tested in `failures`); this test
    // is about counting the failures of a run that goes on.
    cfg.student.max_failure_rate = 1.0;
    cfg.student.baseline_samples = 0;
    cfg.grpo.batch_size = 2;
    cfg.grpo.group_size = 4;
    let scfg = StudentConfig {
        max_concurrency: 4,
        ..cfg.student.clone()
    };
    let templates = wst_core::PromptTemplates::new(cfg.templates.resolve()).unwrap();
    let mut student = HttpStudent::from_config(&scfg, templates)
        .unwrap()
        .with_backoff(Backoff {
            base: std::time::Duration::from_millis(2),
            max: std::time::Duration::from_millis(10),
            ..Backoff::default()
        });
    let mut sink = MemorySink::default();
    let dir = tempfile::tempdir().unwrap();
    let parts = Parts {
        sink: Box::new(&mut sink),
        ..parts_with(policy(5), &mut student, 5)
    };
    let mut t = Trainer::new(cfg, parts, dir.path())
        .unwrap()
        .with_progress(false);
    let summary = t.run().unwrap();
    drop(t);
    assert_eq!(summary.steps, 4);
    let failed_in_metrics: usize = summary.metrics.iter().map(|m| m.failed_replies).sum();
    let failed_in_records: usize = sink.records.iter().map(|r| r.failures()).sum();
    let st = student.stats();
    eprintln!("{st:?}, failed in records {failed_in_records}");
    assert_eq!(failed_in_metrics, failed_in_records);
    assert!(st.failed_replies as usize >= failed_in_records); // the rest are baseline replies
    assert!(st.server_errors > 0 && st.connection_errors > 0);
    assert_eq!(sink.records.len(), 4 * 2 * 4);
    for r in &sink.records {
        assert_eq!(r.replies.len(), 2);
        for (reply, reward) in r.replies.iter().zip(&r.rewards) {
            assert_eq!(reply.is_none(), reward.is_none());
        }
        let ok: Vec<f64> = r.rewards.iter().flatten().copied().collect();
        let expect = (!ok.is_empty()).then(|| ok.iter().sum::<f64>() / ok.len() as f64);
        assert_eq!(r.reward_mean, expect);
    }
}
