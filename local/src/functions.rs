//! Every function of the registry (`vitalwire::wiring::functions`), built on this machine as
//! Lambda builds it on AWS: its dependencies from the settings `template.yaml` gives that
//! function (resolved against the local stack), over the local AWS clients. The HTTP API, the
//! IoT gateway's rules and provisioning, and the S3 watchers dispatch to them by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::Semaphore;
use vitalwire::platform::aws::AwsClients;
use vitalwire::wiring::{EventHandler, FunctionSpec, Handler, HttpHandler, Settings, Trigger, Wiring};

use crate::stack::LocalStack;

/// How many events one function handles at once locally, as a Lambda function's concurrency
/// bounds it on AWS (the ingest functions reserve 25 there): a burst runs that many at a time
/// and the rest wait their turn, instead of all at once or one after another.
pub const LOCAL_CONCURRENCY: usize = 10;

/// A function's handler, run at most [`LOCAL_CONCURRENCY`] calls at a time.
struct Bounded<H: ?Sized> {
    inner: Arc<H>,
    slots: Arc<Semaphore>,
}

impl HttpHandler for Bounded<dyn HttpHandler> {
    fn call(&self, request: lambda_http::Request) -> vitalwire::wiring::BoxFuture<'_, lambda_http::Response<lambda_http::Body>> {
        Box::pin(async move {
            // The semaphore is never closed, so a permit always comes.
            let _slot = self.slots.acquire().await;
            self.inner.call(request).await
        })
    }
}

impl EventHandler for Bounded<dyn EventHandler> {
    fn call<'a>(&'a self, event: &'a str) -> vitalwire::wiring::BoxFuture<'a, Result<Box<RawValue>, vitalwire::wiring::FunctionError>> {
        Box::pin(async move {
            let _slot = self.slots.acquire().await;
            self.inner.call(event).await
        })
    }
}

/// `handler`, bounded to [`LOCAL_CONCURRENCY`] calls at once.
fn bounded(handler: Handler) -> Handler {
    let slots = Arc::new(Semaphore::new(LOCAL_CONCURRENCY));
    match handler {
        Handler::Http(inner) => Handler::Http(Arc::new(Bounded { inner, slots })),
        Handler::Event(inner) => Handler::Event(Arc::new(Bounded { inner, slots })),
    }
}

/// The built functions, by name.
pub struct LocalFunctions {
    built: BTreeMap<&'static str, (&'static FunctionSpec, Handler)>,
}

impl LocalFunctions {
    /// Builds every registry entry with its template settings; `overrides` replace settings the
    /// local platform provides itself (the authorizer's token issuer, say).
    /// Every function goes by `clock`, which the local platform can move forward.
    /// Their metrics go to `metrics`.
    pub fn build(
        stack: &LocalStack,
        aws: &AwsClients,
        overrides: &BTreeMap<String, String>,
        clock: &vitalwire::platform::time::Clock,
        metrics: &Arc<crate::metrics::LocalMetrics>,
    ) -> Result<Arc<Self>, String> {
        let mut built = BTreeMap::new();
        for spec in vitalwire::wiring::functions::all() {
            let definition = stack.function(spec.name).ok_or_else(|| format!("template.yaml has no function with Handler {}", spec.name))?;
            let settings = stack.function_env_with(&definition, overrides).map_err(|e| e.to_string())?;
            let wiring = Wiring::new(aws.clone(), Settings::from_map(settings)).with_clock(clock.clone()).with_metrics(metrics.clone() as Arc<dyn vitalwire::platform::metrics::Metrics>);
            let handler = bounded(spec.instantiate(wiring).map_err(|e| format!("{}: {e}", spec.name))?);
            built.insert(spec.name, (spec, handler));
        }
        Ok(Arc::new(Self { built }))
    }

    /// Every built function's registry entry.
    pub fn specs(&self) -> impl Iterator<Item = &'static FunctionSpec> + '_ {
        self.built.values().map(|(spec, _)| *spec)
    }

    /// The entries with this kind of trigger.
    pub fn triggered_by(&self, wanted: fn(&Trigger) -> bool) -> impl Iterator<Item = &'static FunctionSpec> + '_ {
        self.specs().filter(move |s| wanted(&s.trigger))
    }

    /// An HTTP route's handler.
    pub fn http(&self, name: &str) -> Option<Arc<dyn HttpHandler>> {
        self.built.get(name).and_then(|(_, h)| h.http()).cloned()
    }

    /// An event function's handler.
    pub fn event(&self, name: &str) -> Option<Arc<dyn EventHandler>> {
        self.built.get(name).and_then(|(_, h)| h.event()).cloned()
    }

    /// Runs an event function with a JSON event, as Lambda would; its JSON answer.
    pub async fn invoke(&self, name: &str, event: &str) -> Result<Box<RawValue>, String> {
        let handler = self.event(name).ok_or_else(|| format!("no event function {name}"))?;
        handler.call(event).await.map_err(|e| format!("{name} failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the calls in progress and the most there ever were.
    #[derive(Default)]
    struct Counting {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl EventHandler for Counting {
        fn call<'a>(&'a self, _: &'a str) -> vitalwire::wiring::BoxFuture<'a, Result<Box<RawValue>, vitalwire::wiring::FunctionError>> {
            Box::pin(async move {
                let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                Ok(RawValue::from_string("null".into())?)
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_runs_as_many_at_once_as_the_concurrency_and_the_rest_wait() {
        let counting = Arc::new(Counting::default());
        let Handler::Event(handler) = bounded(Handler::Event(counting.clone())) else { unreachable!() };
        let calls: Vec<_> = (0..3 * LOCAL_CONCURRENCY)
            .map(|_| {
                let handler = handler.clone();
                tokio::spawn(async move { handler.call("{}").await.is_ok() })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap(), "every call of the burst is served");
        }
        assert_eq!(counting.most.load(Ordering::SeqCst), LOCAL_CONCURRENCY);
    }
}
