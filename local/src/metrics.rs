//! The functions' metrics on the local platform: what they would write to CloudWatch as EMF
//! lines on AWS, summed per metric and dimension set, listed at `GET /local/metrics` (and by
//! tests, through [`LocalMetrics::sum`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use vitalwire::platform::metrics::{Counts, Metrics, NAMESPACE};

/// One metric under one dimension set, as CloudWatch would aggregate it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    pub namespace: &'static str,
    pub metric: &'static str,
    pub unit: &'static str,
    pub dimensions: BTreeMap<&'static str, String>,
    /// The sum of the recorded values (CloudWatch's `Sum`).
    pub sum: u64,
    /// How many values were recorded (`SampleCount`).
    pub samples: u64,
    pub max: u64,
}

/// (dimension name, value) pairs.
type Dimensions = Vec<(&'static str, String)>;

/// Every metric the local functions recorded since the platform started.
#[derive(Debug, Default)]
pub struct LocalMetrics {
    aggregates: Mutex<BTreeMap<(&'static str, Dimensions), Aggregate>>,
}

impl Metrics for LocalMetrics {
    fn record(&self, counts: &[Counts]) {
        let mut aggregates = self.aggregates.lock().unwrap_or_else(|e| e.into_inner());
        for c in counts {
            for (metric, value) in &c.counts {
                let a = aggregates.entry((*metric, c.dimensions.clone())).or_insert_with(|| Aggregate {
                    namespace: NAMESPACE,
                    metric,
                    unit: c.unit.as_str(),
                    dimensions: c.dimensions.iter().cloned().collect(),
                    ..Aggregate::default()
                });
                a.sum += value;
                a.samples += 1;
                a.max = a.max.max(*value);
            }
        }
    }
}

impl LocalMetrics {
    /// Every aggregate, by metric name then dimensions.
    pub fn list(&self) -> Vec<Aggregate> {
        self.aggregates.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// The sum of `metric` over the dimension sets that include every one of `dimensions`.
    pub fn sum(&self, metric: &str, dimensions: &[(&str, &str)]) -> u64 {
        self.list()
            .into_iter()
            .filter(|a| a.metric == metric && dimensions.iter().all(|(d, v)| a.dimensions.get(d).is_some_and(|x| x == v)))
            .map(|a| a.sum)
            .sum()
    }

    /// `GET /local/metrics`: `{"metrics": [Aggregate...]}`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().route("/local/metrics", get(list)).with_state(self.clone())
    }
}

async fn list(State(metrics): State<Arc<LocalMetrics>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "metrics": metrics.list() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalwire::platform::metrics::Unit;

    #[test]
    fn values_are_summed_per_metric_and_dimension_set() {
        let metrics = LocalMetrics::default();
        let service = |s: &str| vec![("Service", s.to_owned())];
        metrics.record(&[Counts::of(service("fhir-ingest"), vec![("ReadingsFiled", 2)])]);
        metrics.record(&[Counts::of(service("fhir-ingest"), vec![("ReadingsFiled", 3)])]);
        metrics.record(&[Counts::of(service("vitals-post"), vec![("ReadingsFiled", 1)])]);
        metrics.record(&[Counts { dimensions: service("fhir-ingest"), counts: vec![("Duration", 7)], unit: Unit::Milliseconds }]);
        assert_eq!(metrics.sum("ReadingsFiled", &[("Service", "fhir-ingest")]), 5);
        assert_eq!(metrics.sum("ReadingsFiled", &[]), 6);
        let filed = metrics.list().into_iter().find(|a| a.metric == "ReadingsFiled" && a.dimensions["Service"] == "fhir-ingest").unwrap();
        assert_eq!((filed.samples, filed.max, filed.unit), (2, 3, "Count"));
        let duration = metrics.list().into_iter().find(|a| a.metric == "Duration").unwrap();
        assert_eq!(duration.unit, "Milliseconds");
    }
}
