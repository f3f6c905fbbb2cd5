//! A Lambda Runtime API stand-in, so the real function binaries run here as they do in Lambda:
//! the binary polls `GET /runtime/invocation/next`, handles the event and posts the result.
//!
//! One server serves one function process; invocations are queued and handed out in order.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, Notify};

/// The function reported an error, or never answered.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function returned an error: {0}")]
    Function(String),
    #[error("the function did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the runtime API stopped")]
    Stopped,
}

struct Pending {
    request_id: String,
    payload: Bytes,
    reply: oneshot::Sender<Result<Bytes, String>>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    queued: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Result<Bytes, String>>>>,
    first_poll: Mutex<Option<Instant>>,
    polled: Notify,
    next_id: Mutex<u64>,
}

/// A running Runtime API stand-in.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

type AppState = State<Arc<Shared>>;

async fn next(State(shared): AppState) -> (HeaderMap, Bytes) {
    {
        let mut first = shared.first_poll.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(Instant::now);
    }
    shared.polled.notify_waiters();
    loop {
        let notified = shared.queued.notified();
        let item = shared.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        if let Some(p) = item {
            shared.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(p.request_id.clone(), p.reply);
            let mut headers = HeaderMap::new();
            let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
            let put = |h: &mut HeaderMap, k: &'static str, v: String| {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            };
            put(&mut headers, "lambda-runtime-aws-request-id", p.request_id);
            put(&mut headers, "lambda-runtime-deadline-ms", deadline.to_string());
            put(
                &mut headers,
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:local".into(),
            );
            put(&mut headers, "lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".into());
            return (headers, p.payload);
        }
        notified.await;
    }
}

async fn respond(State(shared): AppState, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    complete(&shared, &id, Ok(body))
}

async fn error(State(shared): AppState, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    complete(&shared, &id, Err(String::from_utf8_lossy(&body).into_owned()))
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("function init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

fn complete(shared: &Shared, id: &str, result: Result<Bytes, String>) -> StatusCode {
    match shared.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(id) {
        Some(reply) => {
            let _ = reply.send(result);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

impl RuntimeApi {
    /// Serves the Runtime API on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, server })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn env_value(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues an event and waits for the function's answer.
    pub async fn invoke(&self, payload: Vec<u8>, timeout: Duration) -> Result<Bytes, InvokeError> {
        let (reply, answer) = oneshot::channel();
        let request_id = {
            let mut n = self.shared.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            format!("local-{:08}", *n)
        };
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(Pending {
            request_id,
            payload: payload.into(),
            reply,
        });
        self.shared.queued.notify_waiters();
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(e))) => Err(InvokeError::Function(e)),
            Ok(Err(_)) => Err(InvokeError::Stopped),
            Err(_) => Err(InvokeError::Timeout(timeout)),
        }
    }

    /// Waits until the function first asks for work, i.e. has finished its init phase.
    pub async fn first_poll(&self, timeout: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.polled.notified();
            if let Some(at) = *self.shared.first_poll.lock().unwrap_or_else(|e| e.into_inner()) {
                return Some(at);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Starts a function binary against this Runtime API with the given extra environment.
    pub fn spawn_function(&self, binary: &Path, name: &str, env: &[(String, String)]) -> std::io::Result<Child> {
        self.spawn_command(Command::new(binary), name, env)
    }

    /// Starts a command (an interpreter and its script, say) as a function against this Runtime
    /// API, with Lambda's variables and the given extra environment.
    pub fn spawn_command(&self, mut command: Command, name: &str, env: &[(String, String)]) -> std::io::Result<Child> {
        command
            .env("AWS_LAMBDA_RUNTIME_API", self.env_value())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}
