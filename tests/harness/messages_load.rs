//! The Polaris messages API's performance scenario (`performance.feature` of
//! polaris-messages-api) on the local platform: `POST /drop_data`, 10 000 GENERAL messages from
//! one clinician to one patient seeded through `POST /create_messages` in chunks of 500, then
//! the clinician lists `GET /dhos/v1/sender_or_receiver/{id}/message` for their own id and for
//! the patient's, which must answer every message (the reference's bound: under 5 s each).
//! The client asks for gzip, as Python's `requests` (the reference's client) does. It runs
//! against a running `vitalwire-local up` (its `.local/endpoints.json`), as the reference's
//! suite runs against a running service; DynamoDB is the moto emulator, so the figure is the
//! local platform's, not AWS's.
//!
//!     scripts/local.sh up    # in another terminal
//!     cargo run -p vitalwire-tests --bin messages-load -- [MESSAGES] [reference|short]
//!
//! `VITALWIRE_ENDPOINTS=<file>` reads another platform's endpoints file.
//!
//! `reference` (the default) makes contents as the reference's seeding does (its alphabet
//! joined 64 to 256 times: 3 to 13 KB); `short` makes 64 to 256 characters.

use std::time::Instant;

use serde_json::{json, Value};
use vitalwire_local::http_api::PolarisCompat;
use vitalwire_tests::repo_root;

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A small deterministic generator, so runs are comparable.
fn lengths(n: usize) -> impl Iterator<Item = usize> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n).map(move |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        64 + (state % 193) as usize
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let reference_contents = args.next().as_deref() != Some("short");
    // Another platform's endpoints (`up --state-dir D` writes D/endpoints.json), as the
    // benchmark commands' check runs it.
    let endpoints_file = std::env::var_os("VITALWIRE_ENDPOINTS").map_or_else(|| repo_root().join(".local/endpoints.json"), std::path::PathBuf::from);
    let endpoints: Value = serde_json::from_slice(&std::fs::read(&endpoints_file).map_err(|e| format!("{}: {e} (start `scripts/local.sh up` first)", endpoints_file.display()))?)?;
    let text = |k: &str| endpoints[k].as_str().map(str::to_owned).ok_or(format!("endpoints.json has no {k}"));
    let api_url = text("httpApiUrl")?;
    let polaris = PolarisCompat { key: text("polarisHsKey")?, issuer: text("polarisIssuer")?, rsa_pem: String::new(), rs256: false, jwks_url: String::new() };
    let system = polaris.mint(&[("system_id", "dhos-robot")], "read:gdm_message_all write:gdm_message_all", 60)?;
    let (clinician_id, patient_id) = ("c1d1a8f2-5b6e-4a51-9a44-0d7f3e2b9c10", "p2e2b9a3-6c7f-4b62-8b55-1e8a4f3c0d21");
    let clinician = polaris.mint(&[("clinician_id", clinician_id)], "read:gdm_message read:gdm_patient read:gdm_patient_all write:gdm_message", 60)?;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{api_url}{path}")).bearer_auth(&system).json(&body).send();
    post("/drop_data", json!(null)).await?.error_for_status()?;

    let started = Instant::now();
    let messages: Vec<Value> = lengths(total)
        .map(|n| {
            let content = if reference_contents { LETTERS.repeat(n) } else { LETTERS.chars().cycle().take(n).collect() };
            json!({"message_type": {"value": 0}, "sender_type": "clinician", "sender": clinician_id, "receiver_type": "patient", "receiver": patient_id, "content": content})
        })
        .collect();
    for chunk in messages.chunks(500) {
        let status = post("/create_messages", Value::Array(chunk.to_vec())).await?.status();
        assert_eq!(status, 201, "seeding");
    }
    println!("seeded {total} messages ({}) in {:.1} s", if reference_contents { "reference contents, 3-13 KB" } else { "64-256 characters" }, started.elapsed().as_secs_f64());

    for (whose, id) in [("clinician", clinician_id), ("patient", patient_id)] {
        for run in 1..=3 {
            let started = Instant::now();
            let response = http
                .get(format!("{api_url}/dhos/v1/sender_or_receiver/{id}/message"))
                .bearer_auth(&clinician)
                .header("accept-encoding", "gzip, deflate")
                .send()
                .await?
                .error_for_status()?;
            let gzipped = response.headers().get("content-encoding").is_some_and(|v| v == "gzip");
            let bytes = response.bytes().await?;
            // Timed to the last byte: this debug-built client's own JSON parsing is not measured.
            let took = started.elapsed().as_secs_f64();
            let listed: Vec<serde::de::IgnoredAny> = if gzipped { serde_json::from_reader(flate2::read::GzDecoder::new(&bytes[..]))? } else { serde_json::from_slice(&bytes)? };
            assert_eq!(listed.len(), total, "every message");
            println!("the clinician lists by the {whose}'s id (run {run}): {} messages in {took:.2} s", listed.len());
        }
    }
    Ok(())
}
