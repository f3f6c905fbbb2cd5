//! IoMT mapping throughput (issue 10): messages per second per core through normalization and
//! FHIR conversion, on the connector's conformance templates (`../shared/conformance/iomt-fhir`).
//! Run with `cargo bench -p vitalwire --bench mapping`.

use std::hint::black_box;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use vitalwire::mapping::content::DeviceMapping;
use vitalwire::mapping::convert::{convert, IdentityOptions, NoPrior, ObservationSet, Sources};
use vitalwire::mapping::fhir_templates::FhirMapping;
use vitalwire::mapping::identity::{IdentityMode, MemoryRegistry};
use vitalwire::mapping::measurement::wrap;

/// The conformance templates, found where the tests find them (`platform::reference_dir`, which
/// only test builds have): `$VITALWIRE_REFERENCE_DIR`, a `shared/` beside the repository or one
/// of its ancestors, or the workplace's `/work/shared`.
fn conformance(name: &str) -> String {
    let sub = "conformance/iomt-fhir";
    let mut candidates: Vec<PathBuf> = std::env::var_os("VITALWIRE_REFERENCE_DIR").map(|d| PathBuf::from(d).join(sub)).into_iter().collect();
    candidates.extend(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(|a| a.join("shared").join(sub)));
    candidates.push(PathBuf::from("/work/shared").join(sub));
    let dir = candidates.iter().find(|p| p.is_dir()).unwrap_or_else(|| panic!("the reference material ../shared/{sub} is needed; looked in {candidates:?}"));
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Heart-rate messages one second apart over an hour, as a device sends them.
fn messages(n: usize) -> Vec<Value> {
    let start = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let at = start + chrono::Duration::seconds(i as i64 % 3600);
            wrap(json!({"heartrate": 60 + (i % 40), "deviceid": "band-1", "patientid": "mrn-1", "measurementdatetime": at.to_rfc3339()}))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let sample = DeviceMapping::parse(&conformance("devicecontent.json")).unwrap();
    let mut only_hr: Value = serde_json::from_str(&conformance("devicecontent.json")).unwrap();
    only_hr["template"].as_array_mut().unwrap().truncate(1);
    let heart_rate = DeviceMapping::from_json(&only_hr).unwrap();
    let fhir = FhirMapping::parse(&conformance("fhirmapping.json")).unwrap();
    let one = &messages(1)[0];

    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one message, heart-rate JsonPathContent template", |b| b.iter(|| heart_rate.normalize(black_box(one)).unwrap()));
    group.bench_function("one message, the sample's six templates", |b| b.iter(|| sample.normalize(black_box(one)).unwrap()));
    group.finish();

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let options = IdentityOptions { mode: IdentityMode::Create, device_system: None };
    let issued = Utc::now();
    let mut group = c.benchmark_group("normalize + convert");
    for n in [1usize, 1000] {
        let batch = messages(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n} heart-rate message(s) into SampledData Observations (1000 ms slots, hourly)"), |b| {
            b.iter(|| {
                let measurements: Vec<_> = batch.iter().flat_map(|m| heart_rate.normalize(m).unwrap()).collect();
                let registry = MemoryRegistry::default();
                let mut set = ObservationSet::default();
                runtime.block_on(convert(&fhir, &measurements, &options, Sources { registry: &registry, prior: &NoPrior }, issued, &mut set)).unwrap();
                set
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
