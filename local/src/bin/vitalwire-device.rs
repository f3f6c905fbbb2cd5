//! `vitalwire-device`: the device side, for trying the platform and for tests. It speaks to AWS
//! IoT Core or the local gateway exactly as device firmware does (MQTT over mutual TLS).
//!
//!     vitalwire-device provision --claimCert C --claimKey K --serialNumber S --manufacturer M \
//!         --name N --model X [--endpoint localhost --port 8883 --ca .local/certs/ca.pem]
//!     vitalwire-device upload-file --deviceName T --fileName strip.pdf --filePath ./strip.pdf
//!     vitalwire-device upload-observation --deviceName T --payloadValue 72 --unit bpm \
//!         --code 8867-4 --codeSystem http://loinc.org --codeDisplay "Heart rate" [--patientId P]
//!     vitalwire-device firmware-update --deviceName T [--firmwareDir firmware]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(version, about = "Device-side tool: fleet provisioning and measurements over MQTT")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Connection {
    /// MQTT endpoint (AWS IoT Core's ATS endpoint, or the local gateway).
    #[arg(long, default_value = "localhost")]
    endpoint: String,
    #[arg(long, default_value_t = 8883)]
    port: u16,
    /// CA certificate that signed the endpoint's server certificate.
    #[arg(long, default_value = ".local/certs/ca.pem")]
    ca: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Get this device's own certificate with the shared claim certificate (fleet provisioning).
    Provision {
        #[arg(long = "claimCert", default_value = ".local/certs/claim.pem")]
        claim_cert: PathBuf,
        #[arg(long = "claimKey", default_value = ".local/certs/claim.key")]
        claim_key: PathBuf,
        #[arg(long = "serialNumber")]
        serial_number: String,
        #[arg(long)]
        manufacturer: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        model: String,
        /// Provisioning template name.
        #[arg(long, default_value = "DefaultProvisioningTemplate")]
        template: String,
        /// Where to write <ThingName>.pem and <ThingName>.key.
        #[arg(long = "certsDir", default_value = "certs")]
        certs_dir: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// Upload a file: ask CreateFileUploadLink for a presigned URL, then PUT the file with it.
    UploadFile {
        #[arg(long = "deviceName")]
        device_name: String,
        /// The name the platform records (letters, digits, '.', '_', '-').
        #[arg(long = "fileName")]
        file_name: String,
        #[arg(long = "filePath")]
        file_path: PathBuf,
        #[arg(long = "certsDir", default_value = "certs")]
        certs_dir: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// Install the next firmware job through IoT Jobs: check assigned jobs, get the job, mark it
    /// IN_PROGRESS, download (with progress), verify the SHA-256 and apply, mark it finished.
    FirmwareUpdate {
        #[arg(long = "deviceName")]
        device_name: String,
        /// Where the "applied" image is written (`<dir>/<deviceName>/<version>.bin`).
        #[arg(long = "firmwareDir", default_value = "firmware")]
        firmware_dir: PathBuf,
        #[arg(long = "certsDir", default_value = "certs")]
        certs_dir: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// Publish one measurement to the FHIRIngest rule.
    UploadObservation {
        #[arg(long = "deviceName")]
        device_name: String,
        #[arg(long = "payloadValue")]
        payload_value: String,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        code: String,
        #[arg(long = "codeSystem")]
        code_system: String,
        #[arg(long = "codeDisplay", default_value = "")]
        code_display: String,
        #[arg(long = "patientId")]
        patient_id: Option<String>,
        #[arg(long = "certsDir", default_value = "certs")]
        certs_dir: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
}

type AnyError = Box<dyn std::error::Error>;

const TIMEOUT: Duration = Duration::from_secs(15);

fn read(path: &Path) -> Result<Vec<u8>, AnyError> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// A file of the local platform's (`.local/certs/...`): from the working folder if it is
/// there, else from the repository's, so the CLI works from any folder.
fn platform_file(path: &Path) -> PathBuf {
    if path.is_relative() && !path.exists() {
        let in_repository = vitalwire_local::repo_root().join(path);
        if in_repository.exists() {
            return in_repository;
        }
    }
    path.to_owned()
}

/// Why the platform refused a connection, as far as the client can tell (AWS IoT Core, like the
/// local platform, closes the connection without a CONNACK for a certificate it does not accept;
/// `vitalwire-local` logs which reason applied).
fn refusal(e: &rumqttc::ConnectionError, client_id: &str) -> String {
    use rumqttc::{ConnectReturnCode, ConnectionError};
    match e {
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => format!(
            "not authorized: the certificate's policy does not allow client id '{client_id}' (a device connects as its thing name, the claim certificate as provision_*)"
        ),
        ConnectionError::ConnectionRefused(code) => format!("refused with {code:?}"),
        ConnectionError::Tls(e) => format!("TLS failed ({e}): is --ca the platform's CA, and the certificate one it issued?"),
        other => format!(
            "the connection was closed before the CONNACK ({other}): the platform does not accept this certificate (unknown to it, inactive or revoked)"
        ),
    }
}

/// Connects with mutual TLS and waits for the CONNACK.
async fn connect(conn: &Connection, client_id: &str, cert: &Path, key: &Path) -> Result<(AsyncClient, EventLoop), AnyError> {
    let mut options = MqttOptions::new(client_id, &conn.endpoint, conn.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: read(&platform_file(&conn.ca))?,
        alpn: None,
        client_auth: Some((read(&platform_file(cert))?, read(&platform_file(key))?)),
    }));
    let (client, mut events) = AsyncClient::new(options, 16);
    match tokio::time::timeout(TIMEOUT, events.poll()).await {
        Err(_) => Err(format!("no answer from {}:{} within {TIMEOUT:?}", conn.endpoint, conn.port).into()),
        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => Ok((client, events)),
        Ok(Ok(other)) => Err(format!("unexpected first packet: {other:?}").into()),
        Ok(Err(e)) => Err(format!("connection to {}:{} refused: {}", conn.endpoint, conn.port, refusal(&e, client_id)).into()),
    }
}

/// Publishes `request` to `topic` and waits for the reply on `topic/accepted|rejected`.
async fn request(client: &AsyncClient, events: &mut EventLoop, topic: &str, request: &Value) -> Result<Result<Value, Value>, AnyError> {
    client.publish(topic, QoS::AtLeastOnce, false, request.to_string()).await?;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.poll()).await.map_err(|_| format!("no reply on {topic}/accepted or /rejected"))??;
        if let Event::Incoming(Packet::Publish(p)) = event {
            let body: Value = serde_json::from_slice(&p.payload)?;
            if p.topic == format!("{topic}/accepted") {
                return Ok(Ok(body));
            }
            if p.topic == format!("{topic}/rejected") {
                return Ok(Err(body));
            }
        }
    }
}

async fn subscribe_replies(client: &AsyncClient, events: &mut EventLoop, topics: &[&str]) -> Result<(), AnyError> {
    for topic in topics {
        for suffix in ["accepted", "rejected"] {
            client.subscribe(format!("{topic}/{suffix}"), QoS::AtLeastOnce).await?;
        }
    }
    let mut acked = 0;
    while acked < topics.len() * 2 {
        match tokio::time::timeout(TIMEOUT, events.poll()).await.map_err(|_| "no SUBACK")?? {
            Event::Incoming(Packet::SubAck(ack)) => {
                if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                    return Err("subscription to the provisioning replies was refused".into());
                }
                acked += 1;
            }
            _ => continue,
        }
    }
    Ok(())
}

fn rejection(body: &Value) -> String {
    format!(
        "{} {}: {}",
        body["statusCode"],
        body["errorCode"].as_str().unwrap_or("?"),
        body["errorMessage"].as_str().unwrap_or("?")
    )
}

async fn run(cli: Cli) -> Result<(), AnyError> {
    match cli.command {
        Command::Provision { claim_cert, claim_key, serial_number, manufacturer, name, model, template, certs_dir, connection } => {
            let client_id = format!("provision_{}", serial_number.chars().filter(char::is_ascii_alphanumeric).collect::<String>());
            let (client, mut events) = connect(&connection, &client_id, &claim_cert, &claim_key).await?;
            let create = "$aws/certificates/create/json";
            let provision = format!("$aws/provisioning-templates/{template}/provision/json");
            subscribe_replies(&client, &mut events, &[create, &provision]).await?;
            let keys = request(&client, &mut events, create, &json!({})).await?.map_err(|r| format!("CreateKeysAndCertificate rejected: {}", rejection(&r)))?;
            println!("Certificate {} created", keys["certificateId"].as_str().unwrap_or("?"));
            let registration = json!({
                "certificateOwnershipToken": keys["certificateOwnershipToken"],
                "parameters": {"SerialNumber": serial_number, "Manufacturer": manufacturer, "Name": name, "Model": model},
            });
            let accepted = request(&client, &mut events, &provision, &registration)
                .await?
                .map_err(|r| format!("RegisterThing rejected: {}", rejection(&r)))?;
            let thing = accepted["thingName"].as_str().ok_or("the accepted reply has no thingName")?;
            std::fs::create_dir_all(&certs_dir)?;
            let (pem, key) = (certs_dir.join(format!("{thing}.pem")), certs_dir.join(format!("{thing}.key")));
            std::fs::write(&pem, keys["certificatePem"].as_str().unwrap_or_default())?;
            vitalwire_local::private_file::write(&key, keys["privateKey"].as_str().unwrap_or_default().as_bytes())?;
            let _ = client.disconnect().await;
            println!("Provisioned as thing {thing}");
            println!("Certificate: {}\nPrivate key: {}", pem.display(), key.display());
            Ok(())
        }
        Command::UploadFile { device_name, file_name, file_path, certs_dir, connection } => {
            let body = read(&file_path)?;
            let content_type = content_type_for(&file_path);
            let cert = certs_dir.join(format!("{device_name}.pem"));
            let key = certs_dir.join(format!("{device_name}.key"));
            let (client, mut events) = connect(&connection, &device_name, &cert, &key).await?;
            client.subscribe(&device_name, QoS::AtLeastOnce).await?;
            // Announcing the size binds it into the link: S3 then takes exactly these bytes.
            let request = json!({"fileName": file_name, "contentType": content_type, "fileSize": body.len()});
            let mut requested = false;
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            let reply: Value = loop {
                let event = tokio::time::timeout_at(deadline, events.poll()).await.map_err(|_| "no upload link arrived")??;
                match event {
                    Event::Incoming(Packet::SubAck(_)) if !requested => {
                        client.publish("$aws/rules/CreateFileUploadLink", QoS::AtLeastOnce, false, request.to_string()).await?;
                        requested = true;
                    }
                    Event::Incoming(Packet::Publish(p)) if p.topic == device_name => break serde_json::from_slice(&p.payload)?,
                    _ => {}
                }
            };
            let _ = client.disconnect().await;
            if let Some(error) = reply.get("error") {
                return Err(format!("upload link refused: {} {}", error["code"].as_str().unwrap_or("?"), error["message"].as_str().unwrap_or("")).into());
            }
            let url = reply["uploadUrl"].as_str().ok_or("the reply has no uploadUrl")?;
            println!("Uploading {} ({} bytes, {content_type})", file_path.display(), body.len());
            let response = reqwest::Client::new().put(url).header("content-type", content_type).body(body).send().await?;
            if !response.status().is_success() {
                return Err(format!("upload failed: HTTP {}", response.status()).into());
            }
            println!("Uploaded {file_name}");
            Ok(())
        }
        Command::FirmwareUpdate { device_name, firmware_dir, certs_dir, connection } => {
            firmware_update(&device_name, &firmware_dir, &certs_dir, &connection).await
        }
        Command::UploadObservation {
            device_name,
            payload_value,
            unit,
            code,
            code_system,
            code_display,
            patient_id,
            certs_dir,
            connection,
        } => {
            let cert = certs_dir.join(format!("{device_name}.pem"));
            let key = certs_dir.join(format!("{device_name}.key"));
            let (client, mut events) = connect(&connection, &device_name, &cert, &key).await?;
            let mut payload = json!({
                "value": payload_value,
                "unit": unit,
                "coding": [{"code": code, "system": code_system, "display": code_display}],
            });
            if let Some(p) = patient_id {
                payload["patientId"] = json!(p);
            }
            client.publish("$aws/rules/FHIRIngest", QoS::AtLeastOnce, false, payload.to_string()).await?;
            loop {
                match tokio::time::timeout(TIMEOUT, events.poll()).await.map_err(|_| "no PUBACK")? {
                    Ok(Event::Incoming(Packet::PubAck(_))) => break,
                    Ok(_) => continue,
                    Err(e) => return Err(format!("the connection closed: {e} (is the device allowed to publish?)").into()),
                }
            }
            let _ = client.disconnect().await;
            println!("Observation published to $aws/rules/FHIRIngest (accepted by the rules engine)");
            Ok(())
        }
    }
}

/// Subscribes to every reply and notification of the device's jobs topics.
async fn subscribe_jobs(client: &AsyncClient, events: &mut EventLoop, thing: &str) -> Result<(), AnyError> {
    client.subscribe(format!("$aws/things/{thing}/jobs/#"), QoS::AtLeastOnce).await?;
    loop {
        match tokio::time::timeout(TIMEOUT, events.poll()).await.map_err(|_| "no SUBACK")?? {
            Event::Incoming(Packet::SubAck(ack)) => {
                if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                    return Err("subscription to the jobs topics was refused".into());
                }
                return Ok(());
            }
            _ => continue,
        }
    }
}

fn job_rejection(body: &Value) -> String {
    format!("{}: {}", body["code"].as_str().unwrap_or("?"), body["message"].as_str().unwrap_or("?"))
}

/// The seed's six firmware-update steps over the IoT Jobs MQTT API.
async fn firmware_update(thing: &str, firmware_dir: &Path, certs_dir: &Path, connection: &Connection) -> Result<(), AnyError> {
    let cert = certs_dir.join(format!("{thing}.pem"));
    let key = certs_dir.join(format!("{thing}.key"));
    let (client, mut events) = connect(connection, thing, &cert, &key).await?;
    subscribe_jobs(&client, &mut events, thing).await?;
    let jobs = format!("$aws/things/{thing}/jobs");

    // 1. Check assigned jobs.
    let listed = request(&client, &mut events, &format!("{jobs}/get"), &json!({"clientToken": "firmware-update-1"}))
        .await?
        .map_err(|r| format!("listing jobs was rejected: {}", job_rejection(&r)))?;
    let (running, queued) = (listed["inProgressJobs"].as_array().cloned().unwrap_or_default(), listed["queuedJobs"].as_array().cloned().unwrap_or_default());
    println!("[1/6] {} job(s) in progress, {} queued", running.len(), queued.len());
    let Some(job_id) = running.iter().chain(&queued).find_map(|j| j["jobId"].as_str()).map(str::to_owned) else {
        println!("No job is assigned to {thing}: nothing to update");
        let _ = client.disconnect().await;
        return Ok(());
    };

    // 2. Get the job's details.
    let described = request(&client, &mut events, &format!("{jobs}/{job_id}/get"), &json!({"clientToken": "firmware-update-2", "includeJobDocument": true}))
        .await?
        .map_err(|r| format!("describing job {job_id} was rejected: {}", job_rejection(&r)))?;
    let document = described["execution"]["jobDocument"].clone();
    if document["operation"] != "firmware_update" {
        let _ = client.disconnect().await;
        return Err(format!("job {job_id} is not a firmware update (operation {})", document["operation"]).into());
    }
    let version = document["version"].as_str().unwrap_or("?").to_owned();
    println!("[2/6] Job {job_id}: firmware {} version {version}", document["firmwareId"].as_str().unwrap_or("?"));

    let update = |status: &str, details: Value| {
        json!({"status": status, "statusDetails": details, "clientToken": format!("firmware-update-{status}")})
    };
    let update_topic = format!("{jobs}/{job_id}/update");

    // 3. Mark the job in progress.
    request(&client, &mut events, &update_topic, &update("IN_PROGRESS", json!({"step": "downloading", "percentProgress": 0})))
        .await?
        .map_err(|r| format!("marking job {job_id} IN_PROGRESS was rejected: {}", job_rejection(&r)))?;
    println!("[3/6] Job {job_id} marked IN_PROGRESS");

    // 4. and 5. Download with progress, verify, apply; any failure ends the job FAILED.
    let outcome = download_and_apply(&client, &mut events, &update_topic, &document, thing, firmware_dir).await;
    let (status, details) = match &outcome {
        Ok(path) => {
            println!("[5/6] SHA-256 verified; version {version} applied ({})", path.display());
            ("SUCCEEDED", json!({"version": version, "percentProgress": 100}))
        }
        Err(reason) => {
            eprintln!("firmware update failed: {reason}");
            ("FAILED", json!({"reason": reason.chars().take(1000).collect::<String>()}))
        }
    };

    // 6. Mark the job finished.
    request(&client, &mut events, &update_topic, &update(status, details))
        .await?
        .map_err(|r| format!("marking job {job_id} {status} was rejected: {}", job_rejection(&r)))?;
    println!("[6/6] Job {job_id} marked {status}");
    let _ = client.disconnect().await;
    outcome.map(|_| ()).map_err(|reason| format!("job {job_id} FAILED: {reason}").into())
}

/// Steps 4 and 5: streams the image, reporting progress every 25 %, checks its SHA-256 against
/// the job document, and "applies" it by writing it under `firmware_dir`.
async fn download_and_apply(
    client: &AsyncClient,
    events: &mut EventLoop,
    update_topic: &str,
    document: &Value,
    thing: &str,
    firmware_dir: &Path,
) -> Result<PathBuf, String> {
    use sha2::{Digest, Sha256};
    let url = document["firmwareUrl"].as_str().ok_or("the job document has no firmwareUrl")?;
    let expected = document["sha256"].as_str().ok_or("the job document has no sha256")?.to_ascii_lowercase();
    let version = document["version"].as_str().unwrap_or("unknown");
    let mut response = reqwest::get(url).await.map_err(|e| format!("download failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("download failed: HTTP {}", response.status()));
    }
    let total = response.content_length().or_else(|| document["sizeBytes"].as_u64()).unwrap_or(0);
    let mut image = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut hasher = Sha256::new();
    let mut reported = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("download failed: {e}"))? {
        hasher.update(&chunk);
        image.extend_from_slice(&chunk);
        let percent = (image.len() as u64 * 100).checked_div(total).map_or(100, |p| p.min(100));
        if percent >= reported + 25 || (percent == 100 && reported < 100) {
            reported = percent - percent % 25;
            println!("[4/6] Downloading: {percent}% ({} of {total} bytes)", image.len());
            let progress = json!({"status": "IN_PROGRESS", "statusDetails": {"step": "downloading", "percentProgress": percent}});
            request(client, events, update_topic, &progress)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|r| format!("progress update rejected: {}", job_rejection(&r)))?;
        }
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        return Err(format!("checksum mismatch: expected SHA-256 {expected}, downloaded {actual}"));
    }
    let dir = firmware_dir.join(thing);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot apply: {}: {e}", dir.display()))?;
    let path = dir.join(format!("{version}.bin"));
    std::fs::write(&path, &image).map_err(|e| format!("cannot apply: {}: {e}", path.display()))?;
    std::fs::write(dir.join("current"), version).map_err(|e| format!("cannot apply: {e}"))?;
    Ok(path)
}

/// The content type of a file, from its extension (the platform's default allow-list).
fn content_type_for(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("pdf") => "application/pdf",
        Some("json") => "application/json",
        Some("csv") => "text/csv",
        _ => "application/octet-stream",
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    vitalwire_local::gateway::install_default_provider();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vitalwire-device: {e}");
            ExitCode::FAILURE
        }
    }
}
