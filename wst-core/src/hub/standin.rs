//! A stand-in for the hub's HTTP protocol on 127.0.0.1, for tests (feature `testing`).
//!
//! It answers the routes hf-hub and `huggingface_hub` use: `GET /api/{models|datasets}/REPO/
//! revision/REV` (JSON with `sha` and `siblings`), and `GET [/datasets]/REPO/resolve/REV/FILE`
//! with `Range` (206 and `Content-Range`), `ETag` (git-style for small files, `X-Linked-Etag`
//! with the sha256 for large ones, as the hub does for LFS files) and `X-Repo-Commit`. A gated
//! repository answers 401 without `Authorization: Bearer TOKEN` and 403 with a wrong token.
//! Faults for tests: a file can be cut off after some bytes (once), or the server can stall.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::RepoKind;

#[derive(Default)]
struct Repo {
    files: BTreeMap<String, Vec<u8>>,
    token: Option<String>,
}

#[derive(Default)]
struct State {
    repos: BTreeMap<(String, String), Repo>,
    cut: BTreeMap<String, usize>,
    log: Vec<String>,
}

/// A running stand-in hub; it stops when dropped.
pub struct StandInHub {
    addr: String,
    state: Arc<Mutex<State>>,
    stall: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// The commit every revision of a stand-in repository resolves to (40 hex digits).
pub fn commit_of(repo: &str) -> String {
    content_id(repo.as_bytes())[..40].to_string()
}

fn kind_key(kind: RepoKind) -> &'static str {
    match kind {
        RepoKind::Model => "models",
        RepoKind::Dataset => "datasets",
    }
}

impl StandInHub {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> std::io::Result<StandInHub> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = format!("http://{}", listener.local_addr()?);
        let hub = StandInHub {
            addr,
            state: Arc::default(),
            stall: Arc::default(),
            stop: Arc::default(),
        };
        let (state, stall, stop) = (hub.state.clone(), hub.stall.clone(), hub.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (state, stall) = (state.clone(), stall.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &state, &stall);
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Ok(hub)
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`), for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.addr
    }

    /// Adds a file to a repository (created on first use).
    pub fn add_file(&self, kind: RepoKind, repo: &str, path: &str, bytes: Vec<u8>) {
        let mut s = self.state.lock().expect("stand-in state");
        let r = s
            .repos
            .entry((kind_key(kind).into(), repo.into()))
            .or_default();
        r.files.insert(path.into(), bytes);
    }

    /// Adds every file of a local folder (recursively) to a repository.
    pub fn add_dir(&self, kind: RepoKind, repo: &str, dir: &Path) -> std::io::Result<()> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let p = e?.path();
                if p.is_dir() {
                    walk(root, &p, out)?;
                } else {
                    let rel = p.strip_prefix(root).unwrap_or(&p);
                    out.push((rel.to_string_lossy().replace('\\', "/"), std::fs::read(&p)?));
                }
            }
            Ok(())
        }
        let mut files = Vec::new();
        walk(dir, dir, &mut files)?;
        for (path, bytes) in files {
            self.add_file(kind, repo, &path, bytes);
        }
        Ok(())
    }

    /// Makes a repository gated: only `Authorization: Bearer TOKEN` gets its files.
    pub fn gate(&self, kind: RepoKind, repo: &str, token: &str) {
        let mut s = self.state.lock().expect("stand-in state");
        let r = s
            .repos
            .entry((kind_key(kind).into(), repo.into()))
            .or_default();
        r.token = Some(token.into());
    }

    /// The next download of a file named `path` (any repository) closes the connection after
    /// `bytes` bytes of its body.
    pub fn cut_once(&self, path: &str, bytes: usize) {
        let mut s = self.state.lock().expect("stand-in state");
        s.cut.insert(path.into(), bytes);
    }

    /// While set, every request is read and never answered.
    pub fn set_stall(&self, on: bool) {
        self.stall.store(on, Ordering::SeqCst);
    }

    /// Request lines served so far (`GET /path [Range]`), oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }
}

impl Drop for StandInHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A stable 64-hex-digit content id (std has no sha256, and a cache needs only uniqueness).
fn content_id(bytes: &[u8]) -> String {
    let h = |seed: u64| {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            x = (x ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        crate::splitmix64(&mut x)
    };
    (0..4).map(|i| format!("{:016x}", h(i))).collect()
}

fn respond(
    s: &mut TcpStream,
    status: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, stall: &AtomicBool) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if stall.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_secs(600));
        return Ok(());
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let range = headers.get("range").cloned();
    let auth = headers.get("authorization").cloned();
    let mut st = state
        .lock()
        .map_err(|_| std::io::Error::other("poisoned"))?;
    st.log.push(format!(
        "GET {path}{}",
        range
            .as_ref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default()
    ));
    let not_found = |what: &str| {
        (
            ("404 Not Found".to_string()),
            vec![("X-Error-Code".to_string(), what.to_string())],
            Vec::new(),
        )
    };

    let (kind, rest, api) = if let Some(r) = path.strip_prefix("/api/models/") {
        ("models", r.to_string(), true)
    } else if let Some(r) = path.strip_prefix("/api/datasets/") {
        ("datasets", r.to_string(), true)
    } else if let Some(r) = path.strip_prefix("/datasets/") {
        ("datasets", r.to_string(), false)
    } else {
        ("models", path.trim_start_matches('/').to_string(), false)
    };
    let parts: Vec<&str> = rest.splitn(5, '/').collect();
    let (status, hdrs, body, cut) = 'answer: {
        if parts.len() < 4 || parts[2] != if api { "revision" } else { "resolve" } {
            let (a, b, c) = not_found("RepoNotFound");
            break 'answer (a, b, c, None);
        }
        let repo_id = format!("{}/{}", parts[0], parts[1]);
        let commit = commit_of(&repo_id);
        let Some(repo) = st.repos.get(&(kind.to_string(), repo_id.clone())) else {
            let (a, b, c) = not_found("RepoNotFound");
            break 'answer (a, b, c, None);
        };
        if let Some(t) = &repo.token {
            match auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
                None => {
                    break 'answer (
                        "401 Unauthorized".into(),
                        vec![("X-Error-Code".into(), "GatedRepo".into())],
                        Vec::new(),
                        None,
                    )
                }
                Some(given) if given != t => {
                    break 'answer (
                        "403 Forbidden".into(),
                        vec![("X-Error-Code".into(), "GatedRepo".into())],
                        Vec::new(),
                        None,
                    )
                }
                Some(_) => {}
            }
        }
        let rev = parts[3].replace("%2F", "/");
        if rev != "main" && rev != commit {
            let (a, b, c) = not_found("RevisionNotFound");
            break 'answer (a, b, c, None);
        }
        if api {
            let siblings: Vec<serde_json::Value> = repo
                .files
                .keys()
                .map(|f| serde_json::json!({ "rfilename": f }))
                .collect();
            let body = serde_json::json!({ "id": repo_id, "sha": commit, "siblings": siblings })
                .to_string()
                .into_bytes();
            break 'answer (
                "200 OK".into(),
                vec![("Content-Type".into(), "application/json".into())],
                body,
                None,
            );
        }
        let Some(file) = parts.get(4) else {
            let (a, b, c) = not_found("EntryNotFound");
            break 'answer (a, b, c, None);
        };
        let Some(bytes) = repo.files.get(*file) else {
            let (a, b, c) = not_found("EntryNotFound");
            break 'answer (a, b, c, None);
        };
        let total = bytes.len();
        let sha = content_id(bytes);
        let large = total > 1024
            || file.ends_with(".safetensors")
            || file.ends_with(".parquet")
            || file.ends_with(".gguf");
        let mut h = vec![("X-Repo-Commit".to_string(), commit.clone())];
        if large {
            h.push(("ETag".into(), format!("\"{}\"", &sha[..40])));
            h.push(("X-Linked-Etag".into(), format!("\"{sha}\"")));
        } else {
            h.push(("ETag".into(), format!("\"{}\"", &sha[..40])));
        }
        let (start, end) = match range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
        {
            Some((a, b)) => {
                let a: usize = a.parse().unwrap_or(0);
                let b: usize = b.parse().unwrap_or(total.saturating_sub(1));
                (a.min(total), b.min(total.saturating_sub(1)))
            }
            None => (0, total.saturating_sub(1)),
        };
        let body = if total == 0 {
            Vec::new()
        } else {
            bytes[start..=end.max(start)].to_vec()
        };
        let status = if range.is_some() {
            h.push((
                "Content-Range".into(),
                format!("bytes {start}-{end}/{total}"),
            ));
            "206 Partial Content"
        } else {
            "200 OK"
        };
        // The metadata probe (`bytes=0-0`) is never cut; the body download is.
        let cut = if range.as_deref() == Some("bytes=0-0") {
            None
        } else {
            Some(file.to_string())
        };
        (status.to_string(), h, body, cut)
    };
    let cut_at = cut.and_then(|f| st.cut.remove(&f));
    drop(st);
    match cut_at {
        Some(n) => {
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in &hdrs {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
            stream.write_all(&body[..n.min(body.len())])?;
            stream.flush()?;
            stream.shutdown(std::net::Shutdown::Both)
        }
        None => respond(&mut stream, &status, &hdrs, &body),
    }
}
