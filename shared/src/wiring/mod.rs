//! How every function is put together, in one place.
//!
//! [`functions`] is the registry: for each Lambda function, its name (the template's `Handler`),
//! what triggers it (an HTTP route, an IoT rule, an S3 event, ...), and how its dependencies are
//! built from the AWS clients and its settings. Its [`Bundle`]s are the binaries deployed: each
//! runs the entry its function's `Handler` names; `vitalwire-local` builds every entry
//! with the settings `template.yaml` gives that function and dispatches to it; the tests build
//! entries the same way; `tests/registry.rs` checks the registry against `template.yaml` both
//! ways.
//!
//! A handler is a plain async function over its dependencies (see each domain). An entry wraps
//! it as a [`Handler`]: an HTTP route takes an API Gateway request and answers a response; any
//! other function takes its event as JSON and answers JSON, exactly what Lambda hands it.

pub mod functions;

use crate::platform::metrics::{MetricSink, Metrics as _, Tally, Unit};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::platform::aws::AwsClients;
use crate::platform::tables::TableSpec;

/// A boxed future, as the registry's erased handlers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What fails an invocation (Lambda retries it or keeps the event in the dead-letter queue).
pub type FunctionError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A function's settings could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WiringError {
    #[error("setting {0} is not set (template.yaml sets it for every function that needs it)")]
    Missing(&'static str),
    #[error("setting {name} is {value:?}: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
    #[error("{0}")]
    Other(String),
}

/// A function's settings: its environment in Lambda, or the values `template.yaml` gives it
/// when the local platform or a test builds it. Reads are recorded, so that a test can check
/// that a function reads every setting the template gives it.
#[derive(Debug, Default)]
pub struct Settings {
    /// `None`: the process environment.
    values: Option<BTreeMap<String, String>>,
    read: Mutex<BTreeSet<String>>,
}

impl Settings {
    /// The process environment (a Lambda function's).
    pub fn from_env() -> Self {
        Self { values: None, read: Mutex::default() }
    }

    /// Fixed values (the local platform, tests).
    pub fn from_map(values: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { values: Some(values.into_iter().collect()), read: Mutex::default() }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned());
        match &self.values {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
        .filter(|v| !v.trim().is_empty())
    }

    /// A setting the function cannot work without.
    pub fn required(&self, name: &'static str) -> Result<String, WiringError> {
        self.lookup(name).ok_or(WiringError::Missing(name))
    }

    /// A setting with a default.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.lookup(name)
    }

    /// A setting parsed as `T`, `default` when absent; an unparsable value is an error, not a
    /// silent default.
    pub fn parsed<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, WiringError>
    where
        T::Err: std::fmt::Display,
    {
        match self.lookup(name) {
            None => Ok(default),
            Some(text) => text.trim().parse().map_err(|e: T::Err| WiringError::Invalid { name, value: text, reason: e.to_string() }),
        }
    }

    /// Every setting name read so far.
    pub fn read_names(&self) -> BTreeSet<String> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What a function's dependencies are built from: the AWS clients and its settings.
pub struct Wiring {
    pub aws: AwsClients,
    pub settings: Settings,
    /// The system clock on AWS; the local platform's and the tests' can be advanced.
    pub clock: crate::platform::time::Clock,
    /// The registry name of the function being built: its metrics' `Service`.
    pub function: &'static str,
    /// Where metrics go instead of EMF log lines (the local platform's tally).
    pub metrics: Option<Arc<dyn crate::platform::metrics::Metrics>>,
}

impl Wiring {
    /// A Lambda function's: the SDK's configuration and the process environment.
    pub async fn from_env() -> Self {
        Self::new(AwsClients::from_env().await, Settings::from_env())
    }

    pub fn new(aws: AwsClients, settings: Settings) -> Self {
        Self { aws, settings, clock: Default::default(), function: "", metrics: None }
    }

    /// The same, with metrics going to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn crate::platform::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The same, going by `clock`.
    pub fn with_clock(mut self, clock: crate::platform::time::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds one dependency.
    pub fn build<T: FromWiring>(&self) -> Result<T, WiringError> {
        T::from_wiring(self)
    }

    /// A table's physical name, from the setting its spec names.
    pub fn table(&self, spec: &TableSpec) -> Result<String, WiringError> {
        self.settings.required(spec.env_var)
    }
}

/// A dependency (an adapter, or a handler's set of them) built from the wiring; every AWS
/// adapter has this one constructor besides its plain `new`.
pub trait FromWiring: Sized {
    fn from_wiring(wiring: &Wiring) -> Result<Self, WiringError>;
}

/// Nothing (routes that need no dependency).
impl FromWiring for () {
    fn from_wiring(_: &Wiring) -> Result<Self, WiringError> {
        Ok(())
    }
}

/// One HTTP API route (payload format 2.0) and its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

/// What invokes a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// HTTP API routes (usually one; the vitals API also answers its paths with a trailing slash).
    Http(&'static [Route]),
    /// HTTP API routes that take no token (`Auth: {Authorizer: NONE}`): monitoring only.
    PublicHttp(&'static [Route]),
    /// The HTTP API's Lambda authorizer.
    HttpAuthorizer,
    /// An IoT topic rule's Lambda action, by `RuleName`.
    IotRule(&'static str),
    /// The fleet-provisioning template's pre-provisioning hook.
    ProvisioningHook,
    /// S3 `ObjectCreated` events of a bucket (template logical id) under a key prefix.
    S3ObjectCreated { bucket: &'static str, prefix: &'static str },
    /// Batches of an SQS queue (template logical id), reporting partial batch failures.
    Sqs { queue: &'static str },
    /// An EventBridge schedule (`rate(1 minute)`): the template's `Schedule` event.
    Schedule(&'static str),
}

/// Functions deployed as one binary (`functions/src/bin/<binary>.rs`): `sam build` builds and
/// links each bundle once and copies it into the package of each of its functions, whose
/// `Handler` (Lambda's `_HANDLER`) names the entry to run. A few bundles rather than one binary
/// for all keep each package under 5 MB zipped and each cold start near a single function's
/// (docs/benchmarks.md, "Release builds").
pub struct Bundle {
    /// The cargo binary, and the template's `BuildProperties.Binary` of its functions.
    pub binary: &'static str,
    pub functions: &'static [&'static FunctionSpec],
}

impl Bundle {
    /// Its function of this name.
    pub fn function(&self, name: &str) -> Option<&'static FunctionSpec> {
        self.functions.iter().copied().find(|f| f.name == name)
    }
}

/// One function of the registry.
pub struct FunctionSpec {
    /// The function's name: the template's `Handler` (Lambda's `_HANDLER`) for it.
    pub name: &'static str,
    pub trigger: Trigger,
    /// Builds the handler with its dependencies (once per cold start).
    pub build: fn(&Wiring) -> Result<Handler, WiringError>,
}

impl FunctionSpec {
    /// Builds the entry's handler for `wiring` (its metrics tagged with the entry's name), and
    /// measures every call: `Invocations`, `Errors` (a failed event, an HTTP 5xx answer) and
    /// `Duration` in milliseconds, so every function reports the same basics.
    pub fn instantiate(&self, mut wiring: Wiring) -> Result<Handler, WiringError> {
        wiring.function = self.name;
        let handler = (self.build)(&wiring)?;
        let sink: MetricSink = wiring.build()?;
        Ok(match handler {
            Handler::Http(inner) => Handler::Http(Arc::new(Measured { inner, sink })),
            Handler::Event(inner) => Handler::Event(Arc::new(Measured { inner, sink })),
        })
    }
}

/// A handler whose calls are counted and timed.
struct Measured<H: ?Sized> {
    inner: Arc<H>,
    sink: MetricSink,
}

impl<H: ?Sized> Measured<H> {
    fn record(&self, started: std::time::Instant, failed: bool) {
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut tally = Tally::default();
        tally.add(&[], "Invocations", 1);
        tally.add(&[], "Errors", u64::from(failed));
        tally.put(&[], "Duration", elapsed, Unit::Milliseconds);
        self.sink.record(&tally.take());
    }
}

impl HttpHandler for Measured<dyn HttpHandler> {
    fn call(&self, request: Request) -> BoxFuture<'_, Response<Body>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let response = self.inner.call(request).await;
            self.record(started, response.status().is_server_error());
            response
        })
    }
}

impl EventHandler for Measured<dyn EventHandler> {
    fn call<'a>(&'a self, event: &'a str) -> BoxFuture<'a, Result<Box<RawValue>, FunctionError>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let answer = self.inner.call(event).await;
            self.record(started, answer.is_err());
            answer
        })
    }
}

impl std::fmt::Debug for FunctionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionSpec").field("name", &self.name).field("trigger", &self.trigger).finish()
    }
}

/// A built function, ready for events.
#[derive(Clone)]
pub enum Handler {
    Http(Arc<dyn HttpHandler>),
    Event(Arc<dyn EventHandler>),
}

impl Handler {
    /// The HTTP handler, if this is an HTTP route.
    pub fn http(&self) -> Option<&Arc<dyn HttpHandler>> {
        match self {
            Handler::Http(h) => Some(h),
            Handler::Event(_) => None,
        }
    }

    /// The event handler, if this is not an HTTP route.
    pub fn event(&self) -> Option<&Arc<dyn EventHandler>> {
        match self {
            Handler::Event(h) => Some(h),
            Handler::Http(_) => None,
        }
    }
}

/// An HTTP route's handler.
pub trait HttpHandler: Send + Sync {
    fn call(&self, request: Request) -> BoxFuture<'_, Response<Body>>;
}

/// Any other function's handler: the event as JSON text in, the answer as JSON out.
pub trait EventHandler: Send + Sync {
    fn call<'a>(&'a self, event: &'a str) -> BoxFuture<'a, Result<Box<RawValue>, FunctionError>>;
}

/// A route function over its dependencies.
pub type RouteFn<D> = for<'a> fn(Request, &'a D) -> BoxFuture<'a, Response<Body>>;

/// An event function over its dependencies.
pub type EventFn<D, E, O, X> = for<'a> fn(E, &'a D) -> BoxFuture<'a, Result<O, X>>;

struct HttpFunction<D> {
    deps: D,
    route: RouteFn<D>,
}

impl<D: Send + Sync> HttpHandler for HttpFunction<D> {
    fn call(&self, request: Request) -> BoxFuture<'_, Response<Body>> {
        (self.route)(request, &self.deps)
    }
}

struct JsonFunction<D, E, O, X> {
    deps: D,
    handle: EventFn<D, E, O, X>,
    _types: PhantomData<fn(E) -> (O, X)>,
}

impl<D, E, O, X> EventHandler for JsonFunction<D, E, O, X>
where
    D: Send + Sync,
    E: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    X: Into<FunctionError> + Send + 'static,
{
    fn call<'a>(&'a self, event: &'a str) -> BoxFuture<'a, Result<Box<RawValue>, FunctionError>> {
        Box::pin(async move {
            let event: E = serde_json::from_str(event).map_err(|e| format!("the event is not what this function takes: {e}"))?;
            let answer = (self.handle)(event, &self.deps).await.map_err(Into::into)?;
            Ok(serde_json::value::to_raw_value(&answer)?)
        })
    }
}

/// An HTTP route entry: its dependencies built from the wiring, then `route`.
pub fn http<D: FromWiring + Send + Sync + 'static>(wiring: &Wiring, route: RouteFn<D>) -> Result<Handler, WiringError> {
    Ok(Handler::Http(Arc::new(HttpFunction { deps: wiring.build::<D>()?, route })))
}

/// An event entry: its dependencies built from the wiring, then `handle` for each event.
pub fn event<D, E, O, X>(wiring: &Wiring, handle: EventFn<D, E, O, X>) -> Result<Handler, WiringError>
where
    D: FromWiring + Send + Sync + 'static,
    E: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    X: Into<FunctionError> + Send + 'static,
{
    Ok(Handler::Event(Arc::new(JsonFunction { deps: wiring.build::<D>()?, handle, _types: PhantomData })))
}
