//! The AWS IoT Device SDK v2 for JavaScript and its own samples, byte for byte (`tests/js/`),
//! against `vitalwire-local up` as a user runs them: fleet provisioning, jobs, shadows and MQTT 5
//! publish/subscribe. The samples take no CA and no port, so `up` serves MQTT on 8883 and the
//! SDK's TLS trusts the local CA through `SSL_CERT_FILE`; no line of a sample changes. The jobs
//! and shadow samples are interactive: the tests type their commands as a user would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use vitalwire_tests::LocalUp;

/// Every sample needs MQTT on 8883: one `up` at a time.
static PORT_8883: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// A certificate for `thing` as AWS's getting-started steps make one (CreateKeysAndCertificate,
/// CreateThing, AttachThingPrincipal, AttachPolicy with the platform's device policy), written
/// to files the samples read; `(cert path, key path)`.
async fn device_certificate(up: &LocalUp, thing: &str) -> (PathBuf, PathBuf) {
    let config = vitalwire_tests::aws_config().await;
    let iot = aws_sdk_iot::Client::from_conf(aws_sdk_iot::config::Builder::from(&config).endpoint_url(&up.iot_url).build());
    let made = iot.create_keys_and_certificate().set_as_active(true).send().await.unwrap();
    iot.create_thing().thing_name(thing).send().await.unwrap();
    iot.attach_thing_principal().thing_name(thing).principal(made.certificate_arn().unwrap()).send().await.unwrap();
    iot.attach_policy().policy_name("VitalwireDevicePolicy").target(made.certificate_arn().unwrap()).send().await.unwrap();
    let (cert, key) = (up.state_dir.join(format!("{thing}.pem")), up.state_dir.join(format!("{thing}.key")));
    std::fs::write(&cert, made.certificate_pem().unwrap()).unwrap();
    std::fs::write(&key, made.key_pair().unwrap().private_key().unwrap()).unwrap();
    (cert, key)
}

/// A running sample, its output read line by line; commands are typed after its prompt.
struct Sample {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    said: Vec<String>,
    /// How many lines of `said` are behind the last prompt answered.
    answered: usize,
}

const PROMPT: &str = "Enter command:";

impl Sample {
    fn start(up: &LocalUp, script: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = tokio::process::Command::new("node")
            .current_dir(js_dir())
            .env("SSL_CERT_FILE", up.state_dir.join("certs/ca.pem"))
            .envs(env.iter().copied())
            .arg(format!("dist/{script}.js"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the compiled sample (scripts/dev-env.sh builds it)");
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, stdin, stdout, said: Vec::new(), answered: 0 }
    }

    /// Reads lines until `done` holds for the index of one read at or after `from`.
    async fn read_until(&mut self, from: usize, done: impl Fn(&str) -> bool) -> usize {
        if let Some(at) = self.said[from..].iter().position(|l| done(l)) {
            return from + at;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.said.push(line);
                    if done(self.said.last().unwrap()) {
                        return self.said.len() - 1;
                    }
                }
                _ => panic!("the sample stopped or went quiet; it said:\n{}", self.said.join("\n")),
            }
        }
    }

    /// Waits until the sample has said `text`, at any time; that line.
    async fn until(&mut self, text: &str) -> String {
        let at = self.read_until(0, |l| l.contains(text)).await;
        self.said[at].clone()
    }

    /// Types a command once the sample asks for one; what it said up to its next prompt.
    async fn command(&mut self, command: &str) -> String {
        self.answered = self.read_until(self.answered, |l| l == PROMPT).await + 1;
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        let next = self.read_until(self.answered, |l| l == PROMPT).await;
        self.said[self.answered..next].join("\n")
    }

    /// Types `quit` once asked for a command; whether the sample then exited with success.
    async fn quit(mut self) -> bool {
        self.answered = self.read_until(self.answered, |l| l == PROMPT).await + 1;
        self.stdin.write_all(b"quit\n").await.unwrap();
        self.exited().await
    }

    /// Waits for the sample to exit; whether it succeeded.
    async fn exited(mut self) -> bool {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("the sample exits").unwrap().success()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdks_fleet_provisioning_sample_provisions_a_registered_device_unchanged() {
    let _port = PORT_8883.lock().await;
    let up = LocalUp::start(Some(8883));
    let local = vitalwire_tests::function_binary("vitalwire-local");
    let admin = Command::new(&local).args(["--state-dir", up.state_dir.to_str().unwrap(), "token", "--role", "admin"]).output().unwrap();
    let admin = String::from_utf8(admin.stdout).unwrap().trim().to_owned();
    let registered = reqwest::Client::new()
        .post(format!("{}/admin/devices", up.api_url))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"serialNumber": "0077", "manufacturer": "Acme Medical", "model": "BP-200"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    let js = js_dir();
    let certs = up.state_dir.join("certs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(&js)
            .env("SSL_CERT_FILE", certs.join("ca.pem"))
            .arg("dist/fleet_provisioning_basic.js")
            .args(["--endpoint", "localhost", "--client_id", "provision_0077", "--template_name", "DefaultProvisioningTemplate"])
            .arg("--cert")
            .arg(certs.join("claim.pem"))
            .arg("--key")
            .arg(certs.join("claim.key"))
            .args(["--template_parameters", r#"{"SerialNumber": "0077", "Manufacturer": "Acme Medical", "Name": "cuff", "Model": "BP-200"}"#])
            .output()
            .expect("node runs the compiled sample (scripts/dev-env.sh builds it)")
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("CreateKeysAndCertificate Response"), "{said}");
    assert!(said.contains(r#""thingName":"acme-medical-0077""#), "RegisterThing answered the thing: {said}");
    let step = up.wait_for("fleet provisioning: accepted").await;
    assert_eq!(step["fields"]["client_id"], "provision_0077");
}

/// The jobs sample creates a job for its thing through the control plane (the AWS SDK for
/// JavaScript's `IoTClient`, pointed at the local endpoint by `AWS_ENDPOINT_URL_IOT`), hears of
/// it on the jobs notification topics, starts it, reports it done and deletes it, as a user
/// typing the sample's commands would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdks_jobs_sample_runs_a_job_through_the_control_plane_and_mqtt() {
    let _port = PORT_8883.lock().await;
    let up = LocalUp::start(Some(8883));
    let (cert, key) = device_certificate(&up, "cuff-jobs").await;
    let env = [("AWS_ENDPOINT_URL_IOT", up.iot_url.as_str()), ("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")];
    let args = ["--endpoint", "localhost", "--thing_name", "cuff-jobs", "--client_id", "cuff-jobs", "--region", "us-east-1", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()];
    let mut sample = Sample::start(&up, "jobs", &args, &env);

    let pending = sample.command("get-pending-job-executions").await;
    assert!(pending.contains(r#""queuedJobs":[]"#) && pending.contains(r#""inProgressJobs":[]"#), "{pending}");
    let created = sample.command(r#"create-job fw-1 {"operation":"firmware-update","version":"2.0.0"}"#).await;
    assert!(created.contains(r#""jobId":"fw-1""#) && created.contains("arn:aws:iot:"), "CreateJob answered the job: {created}");
    let changed = sample.until("Received JobExecutionsChanged event").await;
    assert!(changed.contains(r#""QUEUED":[{"#) && changed.contains("fw-1"), "{changed}");
    let next = sample.until("Received NextJobExecutionChanged event").await;
    assert!(next.contains(r#""jobId":"fw-1""#), "{next}");

    let pending = sample.command("get-pending-job-executions").await;
    assert!(pending.contains(r#""queuedJobs":[{"#) && pending.contains("fw-1"), "{pending}");
    let started = sample.command("start-next-pending-job-execution").await;
    assert!(started.contains(r#""status":"IN_PROGRESS""#) && started.contains(r#""version":"2.0.0""#), "the execution and its document: {started}");
    let described = sample.command("describe-job-execution fw-1").await;
    assert!(described.contains(r#""status":"IN_PROGRESS""#), "{described}");
    let updated = sample.command("update-job-execution fw-1 SUCCEEDED").await;
    assert!(updated.contains("UpdateJobExecution Response") && !updated.contains("Error processing"), "{updated}");
    let done = sample.until("Received NextJobExecutionChanged event: {\"timestamp\"").await;
    assert!(!done.contains("execution"), "no job is next: {done}");
    let described = sample.command("describe-job-execution fw-1").await;
    assert!(described.contains("TerminalStateReached") && described.contains(r#""status":"SUCCEEDED""#), "AWS describes a finished execution only in its refusal: {described}");
    let missing = sample.command("describe-job-execution no-such-job").await;
    assert!(missing.contains("Error processing command") && missing.contains("ResourceNotFound"), "a rejected request reaches the sample: {missing}");
    let deleted = sample.command("delete-job fw-1").await;
    assert!(deleted.contains("DeleteJob Response") && !deleted.contains("Error processing"), "{deleted}");

    assert!(sample.quit().await);
    up.wait_for("control plane: DeleteJob").await;
}

/// The shadow sample reads, updates and deletes its thing's shadow and hears the updated and
/// delta streams, including a setting an operator pushes through the data-plane HTTP API
/// while it runs (the AWS SDK for Rust's `UpdateThingShadow`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdks_shadow_sample_reads_updates_and_deletes_its_shadow() {
    let _port = PORT_8883.lock().await;
    let up = LocalUp::start(Some(8883));
    let (cert, key) = device_certificate(&up, "cuff-shadow").await;
    let args = ["--endpoint", "localhost", "--thing_name", "cuff-shadow", "--client_id", "cuff-shadow", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()];
    let mut sample = Sample::start(&up, "shadow", &args, &[]);

    let none = sample.command("get").await;
    assert!(none.contains("Error processing command") && none.contains("404"), "no shadow yet: {none}");
    let desired = sample.command(r#"update-desired {"intervalSeconds":60}"#).await;
    assert!(desired.contains("Update Desired response") && desired.contains(r#""version":1"#), "{desired}");
    let delta = sample.until("Received ShadowDeltaUpdated event").await;
    assert!(delta.contains(r#""intervalSeconds":60"#), "{delta}");
    let reported = sample.command(r#"update-reported {"intervalSeconds":60}"#).await;
    assert!(reported.contains("Update Reported response") && reported.contains(r#""version":2"#), "{reported}");
    let got = sample.command("get").await;
    assert!(got.contains(r#""reported":{"intervalSeconds":60}"#) && !got.contains(r#""delta""#), "in step, no delta: {got}");

    let config = vitalwire_tests::aws_config().await;
    let data = aws_sdk_iotdataplane::Client::from_conf(aws_sdk_iotdataplane::config::Builder::from(&config).endpoint_url(&up.iot_url).build());
    let pushed = br#"{"state":{"desired":{"intervalSeconds":300}}}"#.to_vec();
    data.update_thing_shadow().thing_name("cuff-shadow").payload(aws_sdk_iotdataplane::primitives::Blob::new(pushed)).send().await.expect("UpdateThingShadow");
    sample.read_until(0, |l| l.contains("Received ShadowDeltaUpdated event") && l.contains(r#""intervalSeconds":300"#)).await;

    let deleted = sample.command("delete").await;
    assert!(deleted.contains("Delete response") && deleted.contains(r#""version":3"#), "{deleted}");
    assert!(sample.quit().await);
}

/// The MQTT 5 publish/subscribe sample with a certificate whose own policy (made through the
/// control plane) allows its topic: it subscribes, publishes five messages at QoS 1 and
/// receives each of them back, then unsubscribes and stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdks_mqtt5_sample_publishes_and_receives_its_messages() {
    let _port = PORT_8883.lock().await;
    let up = LocalUp::start(Some(8883));
    let config = vitalwire_tests::aws_config().await;
    let iot = aws_sdk_iot::Client::from_conf(aws_sdk_iot::config::Builder::from(&config).endpoint_url(&up.iot_url).build());
    let made = iot.create_keys_and_certificate().set_as_active(true).send().await.unwrap();
    let document = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/mqtt5-sample-*"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/test/topic"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/test/topic"}]}"#;
    iot.create_policy().policy_name("PubSubSample").policy_document(document).send().await.unwrap();
    iot.attach_policy().policy_name("PubSubSample").target(made.certificate_arn().unwrap()).send().await.unwrap();
    let (cert, key) = (up.state_dir.join("pubsub.pem"), up.state_dir.join("pubsub.key"));
    std::fs::write(&cert, made.certificate_pem().unwrap()).unwrap();
    std::fs::write(&key, made.key_pair().unwrap().private_key().unwrap()).unwrap();

    let mut sample = Sample::start(&up, "mqtt5_x509", &["--endpoint", "localhost", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()], &[]);
    assert!(sample.until("Lifecycle Connection Success with reason code").await.ends_with(": 0"));
    assert!(sample.until("Suback received with reason code").await.ends_with(": 1"), "granted QoS 1");
    for n in 1..=5 {
        let received = sample.until(&format!("Hello from mqtt5 sample [{n}]")).await;
        assert!(received.contains("Publishing message"), "{received}");
        sample.until(&format!("Received message from topic 'test/topic': Hello from mqtt5 sample [{n}]")).await;
    }
    sample.until("5 message(s) received.").await;
    sample.until("Unsubscribed with 0").await;
    sample.until("==== Client Stopped! ====").await;
    assert!(sample.exited().await);
    let logged = up.logged();
    assert!(!logged.iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("refused"))), "nothing was refused: {logged:?}");
    // The sample's `stop()` passes no DISCONNECT packet, so the SDK closes the connection
    // without one (aws-c-mqtt sends DISCONNECT only when given its options): not a clean end,
    // on AWS as here (a last will would be published).
    let ended = up.wait_for("disconnected").await;
    assert_eq!(ended["fields"]["clean"], false, "{ended}");
}
