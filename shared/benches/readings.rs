//! The vitals API and inbox hot paths without I/O: validate a reading in the seed's format and
//! build its Observations; NEWS2 scoring; the inbox scanner's throughput on a batch file.
//! Run with `cargo bench -p vitalwire --bench readings`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vitalwire::clinical::news2;
use vitalwire::ingest::inbox::scanner::{Found, Scanner};
use vitalwire::ingest::readings;

const SEED: &str = r#"{"device_id": "inhealth-dev001", "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75,
    "blood_pressure_systolic": 120, "blood_pressure_diastolic": 80, "temperature": 98.6, "temperature_unit": "F",
    "respiratory_rate": 16, "oxygen_saturation": 98.0, "glucose": 95.0, "weight": 150.0, "weight_unit": "lbs",
    "notes": "Morning reading", "signal_quality": 95, "battery_level": 80}"#;

fn bench(c: &mut Criterion) {
    let now = Utc.with_ymd_and_hms(2025, 11, 17, 10, 31, 0).unwrap();
    c.bench_function("reading: validate the seed's full reading", |b| b.iter(|| readings::parse(black_box(SEED), None, now).unwrap()));
    let reading = readings::parse(SEED, None, now).unwrap().reading;
    // Six vital signs, the blood-pressure panel, the battery's charge and the grouping panel.
    assert_eq!(reading.observations("P123", "2025-11-17T10:31:00.000Z").len(), 9);
    c.bench_function("reading: build its 9 Observations", |b| {
        b.iter(|| black_box(&reading).observations("P123", "2025-11-17T10:31:00.000Z"))
    });
    let set = news2::Observations {
        respiratory_rate: Some(22.0),
        oxygen_saturation: Some(95.0),
        heart_rate: Some(115.0),
        systolic_bp: Some(105.0),
        temperature: Some(38.5),
        ..Default::default()
    };
    c.bench_function("news2: score a set", |b| b.iter(|| news2::score(black_box(&set))));

    let mut batch = String::from(r#"{"device_id": "inhealth-dev001", "readings": ["#);
    for i in 0..10_000 {
        if i > 0 {
            batch.push(',');
        }
        batch.push_str(r#"{"timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75, "blood_pressure_systolic": 120, "blood_pressure_diastolic": 80}"#);
    }
    batch.push_str("]}");
    let mut group = c.benchmark_group("inbox");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("scanner: split a 10 000-reading batch in 64 KiB chunks", |b| {
        b.iter(|| {
            let mut scanner = Scanner::default();
            let mut out: Vec<Found> = Vec::new();
            let mut n = 0;
            for chunk in batch.as_bytes().chunks(64 * 1024) {
                scanner.feed(chunk, &mut out);
                n += out.len();
                out.clear();
            }
            scanner.finish(&mut out);
            n + out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
