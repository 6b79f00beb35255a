//! The HTTP side of `wst serve`: routes, the bearer key, the body limit, one log line per
//! request (method, path, status, time, choices and tokens; never message text or the key).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use super::queue::{unavailable, Queue};
use super::types::{model_list, ApiError, ChatRequest, Limits};

/// What the handlers share.
pub struct AppState {
    /// The batching queue.
    pub queue: Queue,
    /// Model names `/v1/models` lists and requests may ask for (the first is reported).
    pub models: Vec<String>,
    /// The bearer key clients must send, when one is set.
    pub api_key: Option<String>,
    /// Request limits.
    pub limits: Limits,
    /// When the server started (Unix seconds; `created` of the models).
    pub started: u64,
    counter: AtomicU64,
}

impl AppState {
    /// The shared state.
    pub fn new(queue: Queue, models: Vec<String>, api_key: Option<String>, limits: Limits) -> Self {
        AppState {
            queue,
            models,
            api_key,
            limits,
            started: now(),
            counter: AtomicU64::new(0),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a handler tells the log line about its request.
#[derive(Debug, Clone, Default)]
struct LogInfo {
    n: usize,
    prompt_tokens: usize,
    completion_tokens: usize,
    stream: bool,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = json_response(status, &self.body());
        if self.status == 429 || self.status == 503 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == 401 {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

/// The app: `/health`, `/v1/models`, `/v1/chat/completions`, OpenAI-shaped 404s elsewhere.
pub fn app(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/chat/completions", post(chat))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(log_line))
        .with_state(state)
}

async fn log_line(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let info = response
        .extensions()
        .get::<LogInfo>()
        .cloned()
        .unwrap_or_default();
    tracing::info!(
        target: "wst::serve",
        "{method} {path} {} {:.1} ms n={} prompt_tokens={} completion_tokens={}{}",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1e3,
        info.n,
        info.prompt_tokens,
        info.completion_tokens,
        if info.stream { " stream" } else { "" },
    );
    response
}

/// 401 unless the request carries the key (when one is set); compared in constant time.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| {
        g.len() == key.len()
            && g.bytes()
                .zip(key.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "invalid_request_error",
            if given.is_some() {
                "invalid_api_key"
            } else {
                "missing_api_key"
            },
            if given.is_some() {
                "incorrect API key provided"
            } else {
                "no API key: send the header `Authorization: Bearer KEY`"
            },
        ))
    }
}

async fn health() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        404,
        "invalid_request_error",
        "unknown_url",
        format!("unknown URL: {} {}", req.method(), req.uri().path()),
    )
}

async fn models(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    Ok(json_response(
        StatusCode::OK,
        &model_list(&state.models, state.started),
    ))
}

fn unknown_model(name: &str, state: &AppState) -> ApiError {
    ApiError {
        param: Some("model".into()),
        ..ApiError::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!(
                "the model `{name}` does not exist here (this server has {:?})",
                state.models
            ),
        )
    }
}

async fn model(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    if !state.models.contains(&id) {
        return Err(unknown_model(&id, &state));
    }
    let list = model_list(std::slice::from_ref(&id), state.started);
    Ok(json_response(StatusCode::OK, &list["data"][0]))
}

async fn chat(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let body = body.map_err(|e| {
        let status = e.status().as_u16();
        ApiError::new(
            status,
            "invalid_request_error",
            if status == 413 {
                "request_too_large"
            } else {
                "invalid_body"
            },
            format!("the request body: {e}"),
        )
    })?;
    let request = ChatRequest::parse(&body, state.limits)?;
    if !state.models.contains(&request.model) {
        return Err(unknown_model(&request.model, &state));
    }
    let (stream, include_usage) = (request.stream, request.include_usage);
    let answer = state
        .queue
        .submit(request)?
        .await
        .map_err(|_| unavailable())??;
    let id = format!(
        "chatcmpl-{:x}{:08x}",
        now(),
        state.counter.fetch_add(1, Ordering::Relaxed)
    );
    let created = now();
    let model = &state.models[0];
    let info = LogInfo {
        n: answer.choices.len(),
        prompt_tokens: answer.prompt_tokens,
        completion_tokens: answer.choices.iter().map(|c| c.tokens).sum(),
        stream,
    };
    let mut response = if stream {
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from(answer.sse(&id, created, model, include_usage)))
            .map_err(|e| ApiError::new(500, "server_error", "internal_error", e.to_string()))?
    } else {
        json_response(StatusCode::OK, &answer.completion(&id, created, model))
    };
    response.extensions_mut().insert(info);
    Ok(response)
}
