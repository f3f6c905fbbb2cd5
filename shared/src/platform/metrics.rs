//! Metrics in CloudWatch's embedded metric format (EMF): one JSON log line per set of counts,
//! which CloudWatch Logs turns into metrics without a `PutMetricData` call (no extra latency,
//! no IAM permission, no SDK in the function).
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::sync::Mutex;

use serde_json::{json, Map, Value};

/// The namespace of the platform's metrics.
pub const NAMESPACE: &str = "Vitalwire";

/// Counts under one set of dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// (dimension name, value), e.g. `("Connector", "ward-7")`.
    pub dimensions: Vec<(&'static str, String)>,
    /// (metric name, count).
    pub counts: Vec<(&'static str, u64)>,
}

/// The EMF document of one set of counts, at `timestamp_ms`.
pub fn emf(counts: &Counts, timestamp_ms: i64) -> Value {
    let mut doc = Map::new();
    let names: Vec<&str> = counts.dimensions.iter().map(|(n, _)| *n).collect();
    let metrics: Vec<Value> = counts.counts.iter().map(|(name, _)| json!({"Name": name, "Unit": "Count"})).collect();
    doc.insert(
        "_aws".into(),
        json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [names], "Metrics": metrics}]}),
    );
    for (name, value) in &counts.dimensions {
        doc.insert((*name).into(), json!(value));
    }
    for (name, count) in &counts.counts {
        doc.insert((*name).into(), json!(count));
    }
    Value::Object(doc)
}

/// Where counts go.
pub trait Metrics: Send + Sync {
    fn record(&self, counts: &[Counts]);
}

/// EMF lines on standard output, where Lambda sends them to CloudWatch Logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmfLog;

impl Metrics for EmfLog {
    fn record(&self, counts: &[Counts]) {
        let now = chrono::Utc::now().timestamp_millis();
        for c in counts {
            println!("{}", emf(c, now));
        }
    }
}

impl crate::wiring::FromWiring for EmfLog {
    fn from_wiring(_: &crate::wiring::Wiring) -> Result<Self, crate::wiring::WiringError> {
        Ok(Self)
    }
}

/// Counts kept in memory (tests, and the local platform's quiet mode).
#[derive(Debug, Default)]
pub struct MemoryMetrics(pub Mutex<Vec<Counts>>);

impl Metrics for MemoryMetrics {
    fn record(&self, counts: &[Counts]) {
        self.0.lock().expect("lock").extend_from_slice(counts);
    }
}

impl MemoryMetrics {
    /// The sum of a metric over every record whose dimensions include `dimension`.
    pub fn total(&self, metric: &str, dimension: (&str, &str)) -> u64 {
        let all = self.0.lock().expect("lock");
        all.iter()
            .filter(|c| c.dimensions.iter().any(|(n, v)| *n == dimension.0 && v == dimension.1))
            .flat_map(|c| c.counts.iter().filter(|(n, _)| *n == metric).map(|(_, v)| *v))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_document_declares_its_metrics_and_carries_their_values() {
        let counts = Counts { dimensions: vec![("Connector", "ward-7".into())], counts: vec![("Messages", 3), ("Errors", 1)] };
        let doc = emf(&counts, 1_700_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Connector"]]));
        assert_eq!(directive["Metrics"], json!([{"Name": "Messages", "Unit": "Count"}, {"Name": "Errors", "Unit": "Count"}]));
        assert_eq!((doc["Connector"].as_str(), doc["Messages"].as_u64(), doc["Errors"].as_u64()), (Some("ward-7"), Some(3), Some(1)));
    }
}
