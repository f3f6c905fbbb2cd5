//! Every function of the registry (`vitalwire::wiring::functions`), built on this machine as
//! Lambda builds it on AWS: its dependencies from the settings `template.yaml` gives that
//! function (resolved against the local stack), over the local AWS clients. The HTTP API, the
//! IoT gateway's rules and provisioning, and the S3 watchers dispatch to them by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;
use vitalwire::platform::aws::AwsClients;
use vitalwire::wiring::functions::ALL;
use vitalwire::wiring::{EventHandler, FunctionSpec, Handler, HttpHandler, Settings, Trigger, Wiring};

use crate::stack::LocalStack;

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
        for spec in ALL.iter().copied() {
            let definition = stack.function(spec.name).ok_or_else(|| format!("template.yaml has no function with binary {}", spec.name))?;
            let settings = stack.function_env_with(&definition, overrides).map_err(|e| e.to_string())?;
            let wiring = Wiring::new(aws.clone(), Settings::from_map(settings)).with_clock(clock.clone()).with_metrics(metrics.clone() as Arc<dyn vitalwire::platform::metrics::Metrics>);
            let handler = spec.instantiate(wiring).map_err(|e| format!("{}: {e}", spec.name))?;
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
