//! Test harness: one moto emulator per test binary on a free loopback port (stopped when the
//! binary exits), tables created from `template.yaml` under a fresh prefix per test, and the
//! independent FHIR validators.

pub mod lambda_start;
pub mod provisioning;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use aws_config::SdkConfig;
use vitalwire_local::emulator::Emulator;
use vitalwire_local::stack::LocalStack;

pub use vitalwire_local::{repo_root, validate_fhir};

fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| {
        let emulator = Emulator::start(0).unwrap_or_else(|e| panic!("{e}"));
        // Exactly what a function gets in local mode: the SDK's standard variables.
        for (k, v) in emulator.aws_environment() {
            std::env::set_var(k, v);
        }
        emulator
    })
}

/// The environment that points a function process at the emulator.
pub fn emulator_environment() -> Vec<(String, String)> {
    emulator().aws_environment().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// AWS configuration built the way the functions build it, pointed at the emulator.
pub async fn aws_config() -> SdkConfig {
    emulator();
    vitalwire::platform::aws::load_config().await
}

/// A fresh set of the template's tables on the emulator.
pub struct TestStack {
    pub config: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub stack: LocalStack,
}

impl TestStack {
    pub async fn new() -> Self {
        Self::with_parameters(&[]).await
    }

    /// The stack deployed with these template parameters (`sam deploy --parameter-overrides`).
    pub async fn with_parameters(parameters: &[(&str, &str)]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!("t{}-{}-", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let config = aws_config().await;
        let dynamodb = vitalwire::platform::aws::dynamodb(&config);
        let template = parameters.iter().fold(LocalStack::template().expect("template.yaml parses"), |t, (n, v)| t.with_parameter(n, v));
        let stack = LocalStack::create(&config, template, &prefix).await.expect("tables from template.yaml");
        Self { config, dynamodb, stack }
    }

    /// The physical name of a table of the template.
    pub fn table(&self, spec: &vitalwire::platform::tables::TableSpec) -> String {
        self.stack.table(spec.logical_id).expect("table in template").to_owned()
    }

    /// What a function is built from, as Lambda and the local platform build it: the AWS
    /// clients and the settings `template.yaml` gives that function, resolved on this stack.
    pub fn wiring(&self, function: &str) -> vitalwire::wiring::Wiring {
        let definition = self.stack.function(function).unwrap_or_else(|| panic!("template.yaml has no function {function}"));
        let settings = self.stack.function_env(&definition).unwrap_or_else(|e| panic!("{e}"));
        let aws = vitalwire::platform::aws::AwsClients::new(self.config.clone(), None);
        vitalwire::wiring::Wiring::new(aws, vitalwire::wiring::Settings::from_map(settings))
    }

    /// A function's dependencies, built from its wiring as its registry entry builds them.
    pub fn deps<T: vitalwire::wiring::FromWiring>(&self, function: &str) -> T {
        T::from_wiring(&self.wiring(function)).unwrap_or_else(|e| panic!("{function}: {e}"))
    }

    /// Waits up to 5 s for a table to hold `expected` items (rules run after the PUBACK, as on
    /// AWS); returns the count it saw last.
    pub async fn wait_for_count(&self, spec: &vitalwire::platform::tables::TableSpec, expected: i32) -> i32 {
        wait_until_at_least(expected, || self.count(spec)).await
    }

    /// How many items a table holds (a counting scan through every page).
    pub async fn count(&self, spec: &vitalwire::platform::tables::TableSpec) -> i32 {
        let scan = self.dynamodb.scan().table_name(self.table(spec)).select(aws_sdk_dynamodb::types::Select::Count);
        let mut pages = scan.into_paginator().send();
        let mut count = 0;
        while let Some(page) = pages.next().await {
            count += page.expect("scan").count();
        }
        count
    }
}

/// Asserts that the resources (a JSON array or one resource) pass the FHIR validators.
/// Reads `current` every 100 ms, for up to 5 s, until it is at least `expected`; returns what it
/// read last. What a rule or a queue's consumer does shows after the publish or send returns.
async fn wait_until_at_least<T: PartialOrd, F: std::future::Future<Output = T>>(expected: T, mut current: impl FnMut() -> F) -> T {
    let mut seen = current().await;
    for _ in 1..50 {
        if seen >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        seen = current().await;
    }
    seen
}

pub fn assert_valid_fhir(resources_json: &str) {
    if let Err(report) = validate_fhir(resources_json) {
        panic!("FHIR validation failed:\n{report}\nfor: {resources_json}");
    }
}

/// The binary of the bundle that deploys `function` (`fhir-ingest`), as built for the tests; it
/// runs the function when given `_HANDLER` (the local stack's `function_env` sets it).
pub fn deployed_binary(function: &str) -> std::path::PathBuf {
    let bundle = vitalwire::wiring::functions::bundle_of(function).unwrap_or_else(|| panic!("no function {function} in the registry"));
    function_binary(bundle.binary)
}

/// A binary of the workspace (function or CLI) built by `scripts/test.sh` before the tests
/// (test executables live in `<target>/debug/deps`, the binaries in `<target>/debug`).
pub fn function_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let binary = dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p vitalwire-functions` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// The local platform (`vitalwire_local::platform`, as `vitalwire-local up` runs it) on free
/// loopback ports, over a fresh set of tables.
pub struct LocalGateway {
    pub stack: TestStack,
    pub gateway: std::sync::Arc<vitalwire_local::gateway::Gateway>,
    pub port: u16,
    /// Base URL of the IoT HTTP APIs (data-plane Publish, control-plane certificates).
    pub iot_endpoint: String,
    /// Base URL of the platform's HTTP API (the template's HttpApi routes).
    pub api_url: String,
    pub certs_dir: std::path::PathBuf,
    platform: vitalwire_local::platform::Platform,
}

impl LocalGateway {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With ownership tokens that live `token_lifetime` instead of an hour.
    pub async fn start_with(token_lifetime: Option<std::time::Duration>) -> Self {
        Self::start_configured(token_lifetime, false, vitalwire_local::gateway::AWS_MINIMUM_KEEP_ALIVE).await
    }

    /// With the Polaris issuer signing RS256 (`up --polaris-rs256`).
    pub async fn start_polaris_rs256() -> Self {
        Self::start_configured(None, true, vitalwire_local::gateway::AWS_MINIMUM_KEEP_ALIVE).await
    }

    /// With keep-alives as short as one second, for a test that watches a silent client be
    /// dropped without waiting AWS's 45 seconds.
    pub async fn start_with_short_keep_alives() -> Self {
        Self::start_configured(None, false, 1).await
    }

    /// Deployed with these template parameters (`up --parameter NAME=VALUE`).
    pub async fn start_with_parameters(parameters: &[(&str, &str)]) -> Self {
        Self::start_configured_with(TestStack::with_parameters(parameters).await, None, false, vitalwire_local::gateway::AWS_MINIMUM_KEEP_ALIVE, vitalwire_local::console::default_dir()).await
    }

    /// Serving the clinician console from `console_dir` (a test's own files) at `/console/`.
    pub async fn start_with_console(console_dir: &std::path::Path) -> Self {
        Self::start_configured_with(TestStack::new().await, None, false, vitalwire_local::gateway::AWS_MINIMUM_KEEP_ALIVE, console_dir.to_owned()).await
    }

    async fn start_configured(token_lifetime: Option<std::time::Duration>, polaris_rs256: bool, keep_alive_floor: u16) -> Self {
        Self::start_configured_with(TestStack::new().await, token_lifetime, polaris_rs256, keep_alive_floor, vitalwire_local::console::default_dir()).await
    }

    async fn start_configured_with(stack: TestStack, token_lifetime: Option<std::time::Duration>, polaris_rs256: bool, keep_alive_floor: u16, console_dir: std::path::PathBuf) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        vitalwire_local::gateway::install_default_provider();
        let state_dir = std::env::temp_dir()
            .join(format!("vitalwire-test-state-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst)));
        let free = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let settings = vitalwire_local::platform::Settings {
            state_dir: state_dir.clone(),
            mqtt: free,
            iot_http: free,
            api: free,
            token_lifetime,
            // AWS's timing, as `up` has it: device code in the tests meets what it meets on AWS.
            reply_latency: vitalwire_local::gateway::AWS_REPLY_LATENCY,
            keep_alive_floor,
            upload_poll: std::time::Duration::from_millis(200),
            polaris_rs256,
            polaris_issuer: None,
            schedule_tick: None,
            console_dir,
        };
        let platform = vitalwire_local::platform::start(&stack.stack, &stack.config, settings).await.expect("local platform");
        Self {
            gateway: platform.gateway.clone(),
            port: platform.mqtt_port,
            iot_endpoint: platform.iot_endpoint.clone(),
            api_url: platform.api_url.clone(),
            certs_dir: state_dir.join("certs"),
            stack,
            platform,
        }
    }

    /// What the functions' metrics would be on CloudWatch.
    pub fn metrics(&self) -> &vitalwire_local::metrics::LocalMetrics {
        &self.platform.metrics
    }

    /// Waits up to 5 s for `metric`'s sum over `dimensions` to reach `expected`; returns the sum
    /// it saw last. A function's metrics are recorded as its invocation ends, so after what it
    /// filed can already be read.
    pub async fn wait_for_metric(&self, metric: &str, dimensions: &[(&str, &str)], expected: u64) -> u64 {
        wait_until_at_least(expected, || std::future::ready(self.metrics().sum(metric, dimensions))).await
    }

    /// Mints tokens the HTTP API accepts.
    pub fn auth(&self) -> &vitalwire_local::http_api::LocalAuth {
        &self.platform.auth
    }

    /// Mints Polaris-compatibility tokens the HTTP API accepts (its key and issuer).
    pub fn polaris(&self) -> &vitalwire_local::http_api::PolarisCompat {
        &self.platform.polaris
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.certs_dir.join(file)).expect("cert file")
    }
}

/// Runs `vitalwire-device <args>` in `dir` against the gateway (its port and CA; the claim
/// certificate for `provision`).
pub fn device_cli(gw: &LocalGateway, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let certs = gw.certs_dir.display().to_string();
    let mut cmd = std::process::Command::new(function_binary("vitalwire-device"));
    cmd.current_dir(dir).args(args).args(["--port", &gw.port.to_string(), "--ca", &format!("{certs}/ca.pem")]);
    if args[0] == "provision" {
        cmd.args(["--claimCert", &format!("{certs}/claim.pem"), "--claimKey", &format!("{certs}/claim.key")]);
    }
    cmd.output().expect("run vitalwire-device")
}

/// A real HTTP client of the local platform's HTTP API.
pub struct Api<'a> {
    pub gw: &'a LocalGateway,
    pub http: reqwest::Client,
}

impl<'a> Api<'a> {
    pub fn new(gw: &'a LocalGateway) -> Self {
        Self { gw, http: reqwest::Client::new() }
    }

    /// A token for `role`, valid ten minutes.
    pub fn token(&self, role: vitalwire::access::Role, patient: Option<&str>) -> String {
        self.gw.auth().mint("tester", role, patient, 10).expect("mint a token")
    }

    /// Puts the clinician of [`Self::token`] ("tester", a nurse) in `patient`'s care team, so
    /// that clinician tokens read the patient's data.
    pub async fn care_for(&self, patient: &str) {
        let admin = Some(self.token(vitalwire::access::Role::Admin, None));
        let nurse = serde_json::json!({"name": "Test Nurse", "role": "nurse"});
        let (status, body) = self.call(reqwest::Method::PUT, "/admin/clinicians/tester", admin.as_deref(), Some(nurse)).await;
        assert!(status.is_success(), "{body}");
        let team = serde_json::json!({"nurses": ["tester"]});
        let (status, body) = self.call(reqwest::Method::PUT, &format!("/admin/patients/{patient}/care-team"), admin.as_deref(), Some(team)).await;
        assert!(status.is_success(), "{body}");
    }

    /// Sends a request; the status and the JSON body (`null` if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let (status, _, body) = self.call_with(method, path, token, &[], body).await;
        (status, body)
    }

    /// Sends a request with extra headers; the status, the response's headers and the JSON body.
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, serde_json::Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.gw.api_url));
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("HTTP");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// A real MQTT 3.1.1 client (rumqttc over rustls, client certificate) for the gateway tests.
pub struct MqttTestClient {
    pub client: rumqttc::AsyncClient,
    /// The CONNACK's session present flag.
    pub session_present: bool,
    incoming: tokio::sync::mpsc::UnboundedReceiver<Option<rumqttc::Packet>>,
    _loop: tokio::task::JoinHandle<()>,
}

impl MqttTestClient {
    /// Connects with mutual TLS; the error says why the connection did not open.
    pub async fn connect(port: u16, ca: &[u8], cert: &[u8], key: &[u8], client_id: &str) -> Result<Self, String> {
        Self::connect_with(port, ca, cert, key, client_id, |_| {}).await
    }

    /// [`MqttTestClient::connect`] with more options (a last will, say).
    pub async fn connect_with(
        port: u16,
        ca: &[u8],
        cert: &[u8],
        key: &[u8],
        client_id: &str,
        configure: impl FnOnce(&mut rumqttc::MqttOptions),
    ) -> Result<Self, String> {
        use rumqttc::{Event, MqttOptions, Packet, TlsConfiguration, Transport};
        vitalwire_local::gateway::install_default_provider();
        let mut options = MqttOptions::new(client_id, "localhost", port);
        options.set_keep_alive(std::time::Duration::from_secs(30));
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: ca.to_vec(),
            alpn: None,
            client_auth: Some((cert.to_vec(), key.to_vec())),
        }));
        configure(&mut options);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 16);
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), eventloop.poll())
            .await
            .map_err(|_| "timed out connecting".to_owned())?;
        let session_present = match first {
            Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == rumqttc::ConnectReturnCode::Success => ack.session_present,
            Ok(other) => return Err(format!("unexpected {other:?}")),
            Err(e) => return Err(e.to_string()),
        };
        let (tx, incoming) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(p)) => {
                        let _ = tx.send(Some(p));
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                }
            }
        });
        Ok(Self { client, session_present, incoming, _loop: pump })
    }

    /// Drops the connection without a DISCONNECT, as a device losing power does.
    pub fn drop_connection(self) {
        self._loop.abort();
    }

    /// Publishes with QoS 1 and the retain flag.
    pub async fn publish_retained(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, rumqttc::QoS::AtLeastOnce, true, payload.into()).await.expect("publish queued");
    }

    /// The next publish on `topic`: its payload and retain flag.
    pub async fn publish_on(&mut self, topic: &str) -> Option<(Vec<u8>, bool)> {
        loop {
            match self.next().await? {
                rumqttc::Packet::Publish(p) if p.topic == topic => return Some((p.payload.to_vec(), p.retain)),
                _ => continue,
            }
        }
    }

    /// The next packet from the gateway (`None` once the connection closed).
    pub async fn next(&mut self) -> Option<rumqttc::Packet> {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.incoming.recv()).await.ok().flatten().flatten()
    }

    /// Subscribes and returns the SUBACK's return codes.
    pub async fn subscribe(&mut self, filter: &str) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, rumqttc::QoS::AtLeastOnce).await.expect("subscribe queued");
        loop {
            match self.next().await {
                Some(rumqttc::Packet::SubAck(ack)) => return ack.return_codes,
                Some(_) => continue,
                None => panic!("connection closed before SUBACK"),
            }
        }
    }

    /// Publishes with QoS 1.
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.into()).await.expect("publish queued");
    }

    /// The payload of the next message on `topic`.
    pub async fn message_on(&mut self, topic: &str) -> Option<serde_json::Value> {
        loop {
            match self.next().await? {
                rumqttc::Packet::Publish(p) if p.topic == topic => return serde_json::from_slice(&p.payload).ok(),
                _ => continue,
            }
        }
    }

    /// The topics of the messages that arrive within `window`.
    pub async fn topics_within(&mut self, window: std::time::Duration) -> Vec<String> {
        self.publishes_within(window).await.into_iter().map(|p| p.topic).collect()
    }

    /// The messages that arrive within `window` (to acknowledge, with manual acks).
    pub async fn publishes_within(&mut self, window: std::time::Duration) -> Vec<rumqttc::Publish> {
        let until = tokio::time::Instant::now() + window;
        let mut publishes = Vec::new();
        while let Ok(Some(Some(packet))) = tokio::time::timeout_at(until, self.incoming.recv()).await {
            if let rumqttc::Packet::Publish(p) = packet {
                publishes.push(p);
            }
        }
        publishes
    }

    /// Waits until the gateway closes the connection.
    pub async fn closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(10), self.incoming.recv()).await {
                Ok(Some(None)) | Ok(None) => return true,
                Ok(Some(Some(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// An application certificate whose policy is `document` (devices may not use ordinary topics).
pub fn app_certificate(gw: &LocalGateway, policy: &str, document: serde_json::Value) -> (String, String) {
    use vitalwire_local::gateway::pki::{certificate_id, pem_to_der};
    use vitalwire_local::gateway::registry::Certificate;
    gw.gateway.registry.define_policy(policy, document);
    let issued = gw.gateway.pki.create_keys_and_certificate().unwrap();
    gw.gateway.registry.insert(Certificate {
        id: certificate_id(&pem_to_der(&issued.certificate_pem).unwrap()),
        pem: issued.certificate_pem.clone(),
        status: vitalwire_local::gateway::registry::CertificateStatus::Active,
        things: Vec::new(),
        policies: vec![policy.into()],
        created_at: 0,
    });
    (issued.certificate_pem, issued.private_key_pem)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `vitalwire-local up` (the real binary, its own emulator, `--log-format json`),
/// stopped when dropped.
pub struct LocalUp {
    child: std::process::Child,
    pub state_dir: std::path::PathBuf,
    pub mqtt_port: u16,
    pub api_url: String,
    /// The IoT HTTP endpoint: control plane, data plane, shadows.
    pub iot_url: String,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for LocalUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalUp {
    /// Starts it on free ports, or with MQTT on `mqtt_port`.
    pub fn start(mqtt_port: Option<u16>) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        let (mqtt_port, iot_port, api_port) = (mqtt_port.unwrap_or_else(free_port), free_port(), free_port());
        let state_dir = std::env::temp_dir().join(format!("vitalwire-up-{}-{mqtt_port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let mut child = Command::new(function_binary("vitalwire-local"))
            .args(["--state-dir", state_dir.to_str().unwrap(), "up", "--log-format", "json"])
            .args(["--mqtt-port", &mqtt_port.to_string(), "--iot-http-port", &iot_port.to_string(), "--api-port", &api_port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vitalwire-local up");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        // Ready once it has printed its endpoints.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let started = Instant::now();
        while !line.contains("Ctrl-C stops everything") {
            line.clear();
            let read = stdout.read_line(&mut line).unwrap();
            assert!(read > 0 && started.elapsed() < Duration::from_secs(120), "vitalwire-local up stopped: {:?}", log.lock().unwrap());
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, state_dir, mqtt_port, api_url: format!("http://127.0.0.1:{api_port}"), iot_url: format!("http://127.0.0.1:{iot_port}"), log }
    }

    /// The JSON log lines logged so far.
    pub fn logged(&self) -> Vec<serde_json::Value> {
        self.log.lock().unwrap().iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))).collect()
    }

    /// Waits for a log line whose message contains `text`.
    pub async fn wait_for(&self, text: &str) -> serde_json::Value {
        use std::time::{Duration, Instant};
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self.logged().into_iter().find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains(text))) {
                return found;
            }
            assert!(Instant::now() < until, "no log line with {text:?}: {:?}", self.log.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
