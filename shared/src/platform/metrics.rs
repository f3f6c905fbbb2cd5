//! Metrics in CloudWatch's embedded metric format (EMF): one JSON log line per set of counts,
//! which CloudWatch Logs turns into metrics without a `PutMetricData` call (no extra latency,
//! no IAM permission, no SDK in the function).
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

/// The namespace of the platform's metrics when `METRICS_NAMESPACE` is not set (the template
/// sets `Vitalwire/<stack name>`).
pub const NAMESPACE: &str = "Vitalwire";

/// The dimension every metric carries: the registry name of the function that recorded it
/// (`fhir-ingest`, `iot-vitals`...), stable across stacks so the template's alarms and
/// dashboard can name it.
pub const SERVICE: &str = "Service";

/// What a metric's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Unit {
    #[default]
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    /// CloudWatch's name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// Values of one unit under one set of dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// (dimension name, value), e.g. `("Connector", "ward-7")`.
    pub dimensions: Vec<(&'static str, String)>,
    /// (metric name, value).
    pub counts: Vec<(&'static str, u64)>,
    pub unit: Unit,
}

impl Counts {
    /// Counts (unit `Count`) under `dimensions`.
    pub fn of(dimensions: Vec<(&'static str, String)>, counts: Vec<(&'static str, u64)>) -> Self {
        Self { dimensions, counts, unit: Unit::Count }
    }
}

/// Metrics AWS Lambda already publishes per function, free (`AWS/Lambda`): written into the
/// EMF line for Logs Insights and counted locally, but not declared, so they cost nothing.
pub const PROVIDED_BY_LAMBDA: [&str; 2] = ["Invocations", "Duration"];

/// The EMF document of one set of counts in `namespace`, at `timestamp_ms`.
///
/// Each metric is declared under its dimensions and under none: the stack-wide roll-up the
/// template's alarms watch (one more metric per name, whatever the dimension values).
pub fn emf(namespace: &str, counts: &Counts, timestamp_ms: i64) -> Value {
    let mut doc = Map::new();
    let names: Vec<&str> = counts.dimensions.iter().map(|(n, _)| *n).collect();
    let metrics: Vec<Value> = counts
        .counts
        .iter()
        .filter(|(name, _)| !PROVIDED_BY_LAMBDA.contains(name))
        .map(|(name, _)| json!({"Name": name, "Unit": counts.unit.as_str()}))
        .collect();
    let dimension_sets = if names.is_empty() { json!([[]]) } else { json!([names, []]) };
    // A line that declares nothing (only Lambda's own metrics) keeps an empty directive list.
    let directives = if metrics.is_empty() { json!([]) } else { json!([{"Namespace": namespace, "Dimensions": dimension_sets, "Metrics": metrics}]) };
    doc.insert("_aws".into(), json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}));
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
#[derive(Debug, Clone)]
pub struct EmfLog {
    /// `Vitalwire/<stack name>` (the template's `METRICS_NAMESPACE`), so that two stacks in an
    /// account keep apart and a stack's roll-ups are its own.
    pub namespace: String,
}

impl Metrics for EmfLog {
    fn record(&self, counts: &[Counts]) {
        let now = chrono::Utc::now().timestamp_millis();
        for c in counts {
            println!("{}", emf(&self.namespace, c, now));
        }
    }
}

/// Where a function's metrics go, tagged with the function's [`SERVICE`]: EMF log lines on
/// AWS, the local platform's tally locally, nowhere in unit tests that do not look.
#[derive(Clone)]
pub struct MetricSink {
    service: &'static str,
    to: Option<Arc<dyn Metrics>>,
}

impl MetricSink {
    pub fn new(service: &'static str, to: Arc<dyn Metrics>) -> Self {
        Self { service, to: Some(to) }
    }

    /// A sink that drops what it is given.
    pub fn discard() -> Self {
        Self { service: "", to: None }
    }
}

impl Default for MetricSink {
    fn default() -> Self {
        Self::discard()
    }
}

impl std::fmt::Debug for MetricSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricSink").field("service", &self.service).finish_non_exhaustive()
    }
}

impl Metrics for MetricSink {
    fn record(&self, counts: &[Counts]) {
        let Some(to) = &self.to else { return };
        let tagged: Vec<Counts> = counts
            .iter()
            .filter(|c| !c.counts.is_empty())
            .map(|c| {
                let mut dimensions = Vec::with_capacity(c.dimensions.len() + 1);
                dimensions.push((SERVICE, self.service.to_owned()));
                dimensions.extend(c.dimensions.iter().cloned());
                Counts { dimensions, counts: c.counts.clone(), unit: c.unit }
            })
            .collect();
        if !tagged.is_empty() {
            to.record(&tagged);
        }
    }
}

impl crate::wiring::FromWiring for MetricSink {
    /// The wiring's sink (the local platform's), or EMF log lines, for the wiring's function.
    fn from_wiring(w: &crate::wiring::Wiring) -> Result<Self, crate::wiring::WiringError> {
        let to: Arc<dyn Metrics> = match &w.metrics {
            Some(to) => to.clone(),
            None => Arc::new(EmfLog { namespace: w.settings.optional("METRICS_NAMESPACE").unwrap_or_else(|| NAMESPACE.to_owned()) }),
        };
        Ok(Self::new(w.function, to))
    }
}

/// (dimension name, value) pairs.
type Dimensions = Vec<(&'static str, String)>;

/// Counts gathered over one unit of work (a request, a file, a batch) and recorded once when
/// it ends, so that a file of half a million readings writes a handful of metric lines.
#[derive(Debug, Default)]
pub struct Tally {
    values: BTreeMap<(Dimensions, Unit), BTreeMap<&'static str, u64>>,
}

impl Tally {
    /// Adds `n` to a count under `dimensions` (besides the service).
    pub fn add(&mut self, dimensions: &[(&'static str, &str)], metric: &'static str, n: u64) {
        self.put(dimensions, metric, n, Unit::Count);
    }

    /// Adds `n` of `unit` to a metric.
    pub fn put(&mut self, dimensions: &[(&'static str, &str)], metric: &'static str, n: u64, unit: Unit) {
        let key = (dimensions.iter().map(|(d, v)| (*d, (*v).to_owned())).collect(), unit);
        *self.values.entry(key).or_default().entry(metric).or_default() += n;
    }

    /// Everything counted, one [`Counts`] per dimension set and unit; the tally is emptied.
    pub fn take(&mut self) -> Vec<Counts> {
        std::mem::take(&mut self.values)
            .into_iter()
            .map(|((dimensions, unit), metrics)| Counts { dimensions, counts: metrics.into_iter().collect(), unit })
            .collect()
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
    /// The sum of a metric over every record (whatever its dimensions).
    pub fn sum(&self, metric: &str) -> u64 {
        let all = self.0.lock().expect("lock");
        all.iter().flat_map(|c| c.counts.iter().filter(|(n, _)| *n == metric).map(|(_, v)| *v)).sum()
    }

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
        let counts = Counts::of(vec![("Connector", "ward-7".into())], vec![("Messages", 3), ("Errors", 1)]);
        let doc = emf("Vitalwire/prod", &counts, 1_700_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(directive["Namespace"], "Vitalwire/prod");
        assert_eq!(directive["Dimensions"], json!([["Connector"], []]), "and the stack-wide roll-up");
        assert_eq!(directive["Metrics"], json!([{"Name": "Messages", "Unit": "Count"}, {"Name": "Errors", "Unit": "Count"}]));
        assert_eq!((doc["Connector"].as_str(), doc["Messages"].as_u64(), doc["Errors"].as_u64()), (Some("ward-7"), Some(3), Some(1)));
    }

    #[test]
    fn a_sink_tags_every_record_with_its_service_and_a_tally_sums_per_dimension_set() {
        let memory = Arc::new(MemoryMetrics::default());
        let sink = MetricSink::new("fhir-ingest", memory.clone());
        let mut tally = Tally::default();
        tally.add(&[], "ReadingsFiled", 1);
        tally.add(&[], "ReadingsFiled", 2);
        tally.add(&[("Severity", "high")], "AlertsRaised", 1);
        tally.put(&[], "Duration", 12, Unit::Milliseconds);
        let counts = tally.take();
        assert_eq!(counts.len(), 3, "no dimensions (Count), Severity, no dimensions (Milliseconds)");
        sink.record(&counts);
        assert_eq!(memory.total("ReadingsFiled", (SERVICE, "fhir-ingest")), 3);
        assert_eq!(memory.total("AlertsRaised", ("Severity", "high")), 1);
        let recorded = memory.0.lock().unwrap();
        let duration = recorded.iter().find(|c| c.unit == Unit::Milliseconds).unwrap();
        let handler = Counts { dimensions: duration.dimensions.clone(), counts: vec![("Duration", 12), ("Slowest", 12)], unit: Unit::Milliseconds };
        let doc = emf(NAMESPACE, &handler, 0);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "Slowest", "Unit": "Milliseconds"}]), "Lambda publishes Duration itself");
        assert_eq!(doc["Duration"], 12, "but the line still carries it");
        let only_lambdas = Counts { counts: vec![("Duration", 12)], ..handler };
        assert_eq!(emf(NAMESPACE, &only_lambdas, 0)["_aws"]["CloudWatchMetrics"], json!([]));
        assert!(tally.take().is_empty(), "taking empties the tally");
        MetricSink::discard().record(&counts);
    }
}
