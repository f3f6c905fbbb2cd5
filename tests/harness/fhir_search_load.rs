//! The FHIR API's searches over a patient with a large history: Observations filed with the
//! platform's own store into the local platform's DynamoDB (moto), then each kind of request
//! timed through the local HTTP API (authorizer, route function, real HTTP client), repeated.
//! Prints the median and p90 of each, and the time to page through the whole history.
//!
//!     cargo run --release -p vitalwire-tests --bin fhir-search-load -- [OBSERVATIONS] [REPEATS]
//!
//! OBSERVATIONS (default 10 000) are the patient's, in four vital signs a minute apart, besides
//! 2 000 of another patient's; REPEATS defaults to 20.

use std::time::{Duration, Instant};

use vitalwire::access::Role;
use vitalwire::fhir::vitals::VitalSign;
use vitalwire::fhir::Decimal;
use vitalwire::observations::{measured, DynamoObservationStore, Fingerprint, Measurement, ObservationStore, StoredObservation, Subject};
use vitalwire_tests::{Api, LocalGateway};

const SIGNS: [(VitalSign, &str); 4] =
    [(VitalSign::HeartRate, "bpm"), (VitalSign::RespiratoryRate, "/min"), (VitalSign::OxygenSaturation, "%"), (VitalSign::BodyTemperature, "Cel")];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// `count` Observations of the patient, the four signs in turn, one a minute from 2026-01-01.
async fn seed(store: &DynamoObservationStore, patient: &str, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")?.to_utc();
    let mut batch = Vec::with_capacity(100);
    // Ids derive from the device, time and code: each patient has a cuff of their own.
    let cuff = format!("{patient}-cuff");
    for i in 0..count {
        let effective = vitalwire::platform::time::format_utc(start + chrono::Duration::minutes((i / SIGNS.len()) as i64));
        let subject = Subject { thing_name: &cuff, patient_id: patient, effective: &effective, identity: &effective, named_patient: false, issued: &effective };
        let (sign, unit) = SIGNS[i % SIGNS.len()];
        let value = Decimal::parse(match sign {
            VitalSign::BodyTemperature => "36.8",
            VitalSign::OxygenSaturation => "97",
            _ => "18",
        })?;
        let m = Measurement::vital(sign, value, unit, sign.unit_for(unit).ok_or("unit")?.ucum);
        batch.push(StoredObservation::new(&measured(&m, &subject), m.code_key(), effective.clone(), Fingerprint::WithTime)?);
        if batch.len() == 100 || i + 1 == count {
            if !store.insert_new_sets(&[&batch]).await? {
                return Err("an Observation existed already".into());
            }
            batch.clear();
        }
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let repeats: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(20).max(1);
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let store: DynamoObservationStore = gw.stack.deps("fhir-observation-search");
    let seeding = Instant::now();
    seed(&store, "load-patient", total).await?;
    seed(&store, "other-patient", 2_000).await?;
    println!("seeded {} Observations in {:.1} s", total + 2_000, seeding.elapsed().as_secs_f64());
    let token = api.token(Role::Admin, None);
    let base = format!("{}/fhir", gw.api_url);
    let last_day = {
        let minutes = (total / SIGNS.len()) as i64;
        let end = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")?.to_utc() + chrono::Duration::minutes(minutes);
        (end - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%MZ").to_string()
    };
    let id = {
        let (_, page) = api.call(reqwest::Method::GET, "/fhir/Observation?patient=load-patient&_count=1", Some(&token), None).await;
        page["entry"][0]["resource"]["id"].as_str().ok_or("no Observation found")?.to_owned()
    };
    let requests = [
        ("latest 50 heart rates", format!("{base}/Observation?patient=load-patient&code=http://loinc.org|8867-4&_count=50")),
        ("heart rates of the last day (one page of 200)", format!("{base}/Observation?patient=load-patient&code=http://loinc.org|8867-4&date=ge{last_day}&_count=200")),
        ("latest 50 of two codes, merged", format!("{base}/Observation?patient=load-patient&code=http://loinc.org|8867-4,http://loinc.org|8310-5&_count=50")),
        ("latest 50 of every code (byPatient)", format!("{base}/Observation?patient=load-patient&_count=50")),
        ("latest 50 in a category (filtered)", format!("{base}/Observation?patient=load-patient&category=vital-signs&_count=50")),
        ("_summary=count of every code", format!("{base}/Observation?patient=load-patient&_summary=count")),
        ("$lastn, every vital sign", format!("{base}/Observation/$lastn?patient=load-patient")),
        ("read by id", format!("{base}/Observation/{id}")),
    ];
    println!("{:<48} {:>10} {:>10}", "request", "median", "p90");
    for (name, url) in &requests {
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let began = Instant::now();
            let response = api.http.get(url).bearer_auth(&token).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            times.push(began.elapsed());
            if !status.is_success() {
                return Err(format!("{name}: {status} {}", String::from_utf8_lossy(&body)).into());
            }
        }
        times.sort();
        println!("{name:<48} {:>8.1}ms {:>8.1}ms", percentile(&times, 0.5).as_secs_f64() * 1000.0, percentile(&times, 0.9).as_secs_f64() * 1000.0);
    }
    // The whole history, 200 to a page, following the next links.
    let began = Instant::now();
    let mut url = format!("{base}/Observation?patient=load-patient&_count=200");
    let (mut pages, mut found) = (0, 0);
    loop {
        let bundle: serde_json::Value = api.http.get(&url).bearer_auth(&token).send().await?.json().await?;
        pages += 1;
        found += bundle["entry"].as_array().map_or(0, Vec::len);
        match bundle["link"].as_array().and_then(|l| l.iter().find(|l| l["relation"] == "next")).and_then(|l| l["url"].as_str()) {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    if found != total {
        return Err(format!("paging found {found} of {total}").into());
    }
    println!("every Observation of the patient, {pages} pages of 200: {:.2} s ({found} found)", began.elapsed().as_secs_f64());
    Ok(())
}
