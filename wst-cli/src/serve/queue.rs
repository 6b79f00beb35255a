//! The batching queue: HTTP handlers put checked requests into a bounded queue; one worker
//! thread, which owns the models, takes what has arrived (waiting up to a short window after
//! the first request for more, up to a number of sequences), runs them through its
//! [`Backend`] as one batch and hands each answer back through a oneshot channel.
//!
//! The models live on a plain thread, not on the async runtime: libtorch calls block for
//! seconds, and the HTTP student runs its own runtime. A full queue answers 429 (clients
//! retry); a queue whose worker has stopped answers 503. Dropping every [`Queue`] lets the
//! worker finish what it holds and exit (graceful shutdown).

use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::types::{Answer, ApiError, ChatRequest};

/// What runs batches of requests: a local model, or the WST proxy.
pub trait Backend {
    /// Answers each request of a batch, in order (one request's error does not fail others).
    fn run(&mut self, batch: &[&ChatRequest]) -> Vec<Result<Answer, ApiError>>;
}

/// How the queue batches.
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    /// Requests waiting at most; more are refused with 429.
    pub capacity: usize,
    /// How long the worker waits after a first request for others to share its batch.
    pub window: Duration,
    /// Sequences (the sum of `n`) in one batch at most.
    pub max_rows: usize,
}

struct Job {
    request: ChatRequest,
    reply: oneshot::Sender<Result<Answer, ApiError>>,
}

/// The sending side, shared by the handlers.
#[derive(Clone)]
pub struct Queue {
    tx: Arc<mpsc::SyncSender<Job>>,
}

impl Queue {
    /// Starts the worker thread: `make` builds the backend on it (models need not be `Send`);
    /// returns once it is built, or with its error.
    pub fn start<B, F>(
        make: F,
        options: QueueOptions,
    ) -> anyhow::Result<(Queue, std::thread::JoinHandle<()>)>
    where
        B: Backend,
        F: FnOnce() -> anyhow::Result<B> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Job>(options.capacity.max(1));
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<()>>();
        let handle = std::thread::Builder::new()
            .name("wst-serve-worker".into())
            .spawn(move || {
                let mut backend = match make() {
                    Ok(b) => {
                        let _ = ready_tx.send(Ok(()));
                        b
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                work(&mut backend, &rx, options);
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok((Queue { tx: Arc::new(tx) }, handle)),
            Ok(Err(e)) => Err(e),
            Err(_) => anyhow::bail!("the model worker stopped while loading"),
        }
    }

    /// Queues a request; the receiver gets its answer.
    pub fn submit(
        &self,
        request: ChatRequest,
    ) -> Result<oneshot::Receiver<Result<Answer, ApiError>>, ApiError> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { request, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(ApiError::new(
                429,
                "rate_limit_error",
                "queue_full",
                "the server's queue is full; retry shortly",
            )),
            Err(TrySendError::Disconnected(_)) => Err(unavailable()),
        }
    }
}

/// 503: the worker is gone (shutting down, or it failed).
pub fn unavailable() -> ApiError {
    ApiError::new(
        503,
        "server_error",
        "unavailable",
        "the server is shutting down or its model worker stopped",
    )
}

fn work<B: Backend>(backend: &mut B, rx: &mpsc::Receiver<Job>, options: QueueOptions) {
    // Ends when every sender is dropped and the queue is empty.
    while let Ok(first) = rx.recv() {
        let mut rows = first.request.n;
        let mut jobs = vec![first];
        let deadline = Instant::now() + options.window;
        while rows < options.max_rows {
            // What is already waiting joins at once; then up to the window for more.
            let next = match rx.try_recv() {
                Ok(j) => Ok(j),
                Err(_) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    rx.recv_timeout(left)
                }
            };
            match next {
                Ok(j) => {
                    rows += j.request.n;
                    jobs.push(j);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        // Clients that hung up while waiting are not computed.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let requests: Vec<&ChatRequest> = jobs.iter().map(|j| &j.request).collect();
        let answers =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.run(&requests)));
        let answers = match answers {
            Ok(a) if a.len() == jobs.len() => a,
            _ => {
                tracing::error!("the backend failed on a batch of {} requests", jobs.len());
                vec![
                    Err(ApiError::new(
                        500,
                        "server_error",
                        "internal_error",
                        "the model failed on this batch"
                    ));
                    jobs.len()
                ]
            }
        };
        tracing::debug!(requests = jobs.len(), rows, "batch done");
        for (job, answer) in jobs.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::types::{Choice, Limits};
    use std::sync::Mutex;
    use wst_core::FinishReason;

    /// Records batch sizes; answers each request with its `n`.
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl Backend for Recorder {
        fn run(&mut self, batch: &[&ChatRequest]) -> Vec<Result<Answer, ApiError>> {
            std::thread::sleep(Duration::from_millis(300));
            self.0.lock().unwrap().push(batch.len());
            batch
                .iter()
                .map(|r| {
                    Ok(Answer {
                        choices: vec![
                            Choice {
                                text: r.model.clone(),
                                finish_reason: FinishReason::Stop,
                                tokens: 1
                            };
                            r.n
                        ],
                        prompt_tokens: 0,
                        wst: None,
                    })
                })
                .collect()
        }
    }

    fn request(model: &str) -> ChatRequest {
        let body =
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": "q"}]});
        ChatRequest::parse(body.to_string().as_bytes(), Limits { max_n: 4 }).unwrap()
    }

    #[test]
    fn concurrent_requests_share_batches_and_a_full_queue_is_429() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let s = sizes.clone();
        let options = QueueOptions {
            capacity: 4,
            window: Duration::from_millis(20),
            max_rows: 64,
        };
        let (queue, worker) = Queue::start(move || Ok(Recorder(s)), options).unwrap();
        let rxs: Vec<_> = (0..4)
            .map(|i| queue.submit(request(&format!("m{i}"))).unwrap())
            .collect();
        // The worker holds one batch; four more fill the queue, the next is refused.
        std::thread::sleep(Duration::from_millis(100));
        let more: Vec<_> = (0..4)
            .map(|_| queue.submit(request("x")).unwrap())
            .collect();
        let e = queue.submit(request("y")).unwrap_err();
        assert_eq!(e.status, 429);
        for (i, rx) in rxs.into_iter().enumerate() {
            let a = rx.blocking_recv().unwrap().unwrap();
            assert_eq!(a.choices[0].text, format!("m{i}"));
        }
        for rx in more {
            rx.blocking_recv().unwrap().unwrap();
        }
        drop(queue);
        worker.join().unwrap();
        assert_eq!(*sizes.lock().unwrap(), vec![4, 4]);
    }
}
