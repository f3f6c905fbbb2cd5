//! The local AWS IoT Core gateway: MQTT 3.1.1 and 5 over TLS with client certificates, AWS IoT
//! policies from `infra/iot/`, Basic Ingest rules wired as `template.yaml` wires them, the
//! fleet-provisioning MQTT API, and ordinary publish/subscribe between clients.
//!
//! The contract is `../shared/protocol/device-mqtt.md`: unchanged device code written for AWS
//! IoT Core must work against it.

pub mod fleet;
pub mod http;
pub mod jobs;
pub mod pki;
pub mod policy;
pub mod registry;
pub mod topics;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::deployments::DynamoDeploymentStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::ingest::{self, IngestDeps};
use vitalwire::job_events::JobEventDeps;
use vitalwire::observations::DynamoObservationStore;
use vitalwire::provisioning::HookDeps;
use vitalwire::uploads::{DynamoUploadStore, IotDataPublisher, S3UploadSigner, UploadLinkDeps};

use self::fleet::TemplatePlan;
use self::pki::{certificate_id, Pki};
use self::policy::{allows, client_arn, topic_arn, topic_filter_arn, PolicyContext};
use self::registry::{Certificate, CertificateStatus, IotRegistry};
use self::topics::{filter_matches, valid_filter};
use self::wire::{Incoming, Outgoing, Protocol};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The handlers the gateway's rules and provisioning run, over the platform's tables.
pub struct Functions {
    pub ingest: IngestDeps<DynamoDeviceRegistry, DynamoObservationStore, DynamoDeadLetterStore, vitalwire::alerts::DynamoAlertStore>,
    pub hook: HookDeps<DynamoDeviceRegistry, DynamoDeadLetterStore>,
    pub uploads: UploadLinkDeps<S3UploadSigner, IotDataPublisher, DynamoUploadStore, DynamoDeadLetterStore>,
    pub job_events: JobEventDeps<DynamoDeploymentStore, DynamoDeviceRegistry, DynamoDeadLetterStore>,
    /// Presigns the S3 URLs of job documents (`${aws:iot:s3-presigned-url:...}`).
    pub s3: aws_sdk_s3::Client,
}

/// A connected client's identity, from its certificate and CONNECT.
#[derive(Debug, Clone)]
pub struct Identity {
    pub certificate_id: String,
    pub client_id: String,
    pub context: PolicyContext,
    pub policies: Arc<Vec<Value>>,
}

enum Outbound {
    Packet(Outgoing),
    Close,
}

struct Session {
    identity: Identity,
    subscriptions: Vec<(String, u8)>,
    tx: mpsc::UnboundedSender<Outbound>,
    next_pkid: u16,
}

/// The gateway's state, shared by all connections.
pub struct Gateway {
    pub pki: Pki,
    pub registry: IotRegistry,
    pub claim_certificate_id: String,
    policies: std::sync::RwLock<HashMap<String, Value>>,
    template: TemplatePlan,
    provisioning_template_name: String,
    /// Basic Ingest rule name → function binary.
    rules: HashMap<String, String>,
    /// Rules with a `FROM '<topic filter>'`: (filter, function binary).
    topic_rules: Vec<(String, String)>,
    /// IoT Jobs: device API, control plane, events.
    pub jobs: jobs::JobsEngine,
    job_events: JobEventDeps<DynamoDeploymentStore, DynamoDeviceRegistry, DynamoDeadLetterStore>,
    s3: aws_sdk_s3::Client,
    hook: HookDeps<DynamoDeviceRegistry, DynamoDeadLetterStore>,
    ingest: IngestDeps<DynamoDeviceRegistry, DynamoObservationStore, DynamoDeadLetterStore, vitalwire::alerts::DynamoAlertStore>,
    uploads: UploadLinkDeps<S3UploadSigner, IotDataPublisher, DynamoUploadStore, DynamoDeadLetterStore>,
    sessions: Mutex<HashMap<u64, Session>>,
    next_session: AtomicU64,
}

fn read_json(path: &Path) -> Result<Value, GatewayError> {
    let text = std::fs::read_to_string(path).map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))
}

/// Settings of the gateway.
pub struct GatewayConfig {
    /// Where the CA and certificates live.
    pub certs_dir: PathBuf,
    /// Ownership-token lifetime (one hour unless a test shortens it).
    pub token_lifetime: Option<Duration>,
}

impl Gateway {
    /// Loads the PKI (creating it on first run), the policies and provisioning template from
    /// `infra/iot/`, and the rule wiring from `template.yaml`.
    pub fn new(config: GatewayConfig, functions: Functions) -> Result<Arc<Self>, GatewayError> {
        let root = crate::repo_root();
        let template = crate::stack::LocalStack::template().map_err(|e| GatewayError::Config(e.to_string()))?;
        let policy_name = |logical: &str| {
            template
                .properties_json(logical)
                .and_then(|p| p["PolicyName"].as_str().map(str::to_owned))
                .ok_or_else(|| GatewayError::Config(format!("template.yaml: {logical} has no PolicyName")))
        };
        let device_policy = policy_name("DeviceIotPolicy")?;
        let claim_policy = policy_name("ClaimIotPolicy")?;
        let policies = HashMap::from([
            (device_policy, read_json(&root.join("infra/iot/device-policy.json"))?),
            (claim_policy.clone(), read_json(&root.join("infra/iot/claim-policy.json"))?),
        ]);
        let plan = TemplatePlan::from_body(&read_json(&root.join("infra/iot/provisioning-template.json"))?)
            .map_err(|e| GatewayError::Config(format!("provisioning-template.json: {e}")))?;
        let provisioning_template_name = template
            .properties_json("DefaultProvisioningTemplate")
            .and_then(|p| p["TemplateName"].as_str().map(str::to_owned))
            .ok_or_else(|| GatewayError::Config("template.yaml has no DefaultProvisioningTemplate".into()))?;
        let functions_by_id: HashMap<_, _> =
            template.functions().into_iter().filter_map(|f| Some((f.logical_id, f.binary?))).collect();
        let defined = template.topic_rules();
        let rules = defined
            .iter()
            .filter_map(|r| Some((r.name.clone(), functions_by_id.get(&r.function)?.clone())))
            .collect();
        let topic_rules = defined
            .iter()
            .filter_map(|r| Some((r.topic_filter()?.to_owned(), functions_by_id.get(&r.function)?.clone())))
            .collect();

        let pki = Pki::load_or_create(&config.certs_dir)?;
        let registry = config.token_lifetime.map(IotRegistry::with_token_lifetime).unwrap_or_default();
        let claim_pem = std::fs::read_to_string(&pki.files.claim_cert)?;
        let claim_der = pki::pem_to_der(&claim_pem).ok_or_else(|| GatewayError::Config("claim certificate is not PEM".into()))?;
        let claim_certificate_id = certificate_id(&claim_der);
        registry.insert(Certificate {
            id: claim_certificate_id.clone(),
            pem: claim_pem,
            status: CertificateStatus::Active,
            thing: None,
            policies: vec![claim_policy],
        });
        Ok(Arc::new(Self {
            pki,
            registry,
            claim_certificate_id,
            policies: std::sync::RwLock::new(policies),
            template: plan,
            provisioning_template_name,
            rules,
            topic_rules,
            jobs: jobs::JobsEngine::default(),
            job_events: functions.job_events,
            s3: functions.s3,
            hook: functions.hook,
            ingest: functions.ingest,
            uploads: functions.uploads,
            sessions: Mutex::default(),
            next_session: AtomicU64::new(1),
        }))
    }

    fn tls_acceptor(&self) -> Result<TlsAcceptor, GatewayError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |e: &dyn std::fmt::Display| GatewayError::Config(format!("TLS: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.pki.ca_pem.as_bytes()) {
            roots.add(ca.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| bad(&e))?;
        let chain = CertificateDer::pem_file_iter(&self.pki.files.server_cert)
            .map_err(|e| bad(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&e))?;
        let key = PrivateKeyDer::from_pem_file(&self.pki.files.server_key).map_err(|e| bad(&e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| bad(&e))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Serves MQTT over TLS on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<(), GatewayError> {
        let acceptor = self.tls_acceptor()?;
        loop {
            let (tcp, peer) = listener.accept().await?;
            let (gw, acceptor) = (self.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(tls) => gw.connection(tls, peer).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                }
            });
        }
    }

    async fn connection(self: Arc<Self>, mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>, peer: SocketAddr) {
        let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| certificate_id(c)) else {
            return;
        };
        // Identity is the certificate: unknown, inactive or revoked certificates cannot connect.
        let Some(certificate) = self.registry.certificate(&cert).filter(|c| c.status == CertificateStatus::Active) else {
            tracing::info!(%peer, certificate_id = %cert, "connection refused: certificate not active");
            return;
        };
        let mut buf = BytesMut::with_capacity(4096);
        let (protocol, client_id, keep_alive) = match read_connect(&mut tls, &mut buf).await {
            Some(Incoming::Connect { client_id, protocol, keep_alive }) => (protocol, client_id, keep_alive),
            _ => return,
        };
        // A client silent for 1.5 keep-alive periods is gone (MQTT 3.1.1 §3.1.2.10).
        let idle_limit = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        let identity = Identity {
            certificate_id: certificate.id.clone(),
            context: PolicyContext {
                client_id: client_id.clone(),
                thing_attached: certificate.thing.as_deref() == Some(client_id.as_str()),
            },
            client_id: client_id.clone(),
            policies: Arc::new({
                let known = self.policies.read().unwrap_or_else(|e| e.into_inner());
                certificate.policies.iter().filter_map(|p| known.get(p).cloned()).collect()
            }),
        };
        let authorized = !client_id.is_empty() && allows(&identity.policies, "iot:Connect", &client_arn(&client_id), &identity.context);
        let mut out = BytesMut::new();
        if wire::write(protocol, Outgoing::ConnAck { accepted: authorized }, &mut out).is_err()
            || tls.write_all(&out).await.is_err()
            || !authorized
        {
            tracing::info!(%peer, client_id = %client_id, authorized, "connect");
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let session_id = self.next_session.fetch_add(1, Ordering::Relaxed);
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            // AWS IoT allows one connection per client id: the newer one wins.
            for s in sessions.values().filter(|s| s.identity.client_id == client_id) {
                let _ = s.tx.send(Outbound::Close);
            }
            sessions.insert(session_id, Session { identity: identity.clone(), subscriptions: Vec::new(), tx, next_pkid: 0 });
        }
        tracing::info!(%peer, client_id = %client_id, ?protocol, "connected");
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                read = read_within(&mut tls, &mut chunk, idle_limit) => {
                    let n = match read { Some(Ok(n)) if n > 0 => n, _ => break };
                    buf.extend_from_slice(&chunk[..n]);
                    let mut closing = false;
                    loop {
                        match wire::read(protocol, &mut buf) {
                            Ok(None) => break,
                            Ok(Some(packet)) => {
                                if !self.clone().on_packet(session_id, &identity, protocol, packet).await {
                                    closing = true;
                                    break;
                                }
                            }
                            Err(_) => { closing = true; break; }
                        }
                    }
                    if closing { break; }
                }
                outbound = rx.recv() => {
                    match outbound {
                        Some(Outbound::Packet(p)) => {
                            out.clear();
                            if wire::write(protocol, p, &mut out).is_err() || tls.write_all(&out).await.is_err() { break; }
                        }
                        Some(Outbound::Close) | None => break,
                    }
                }
            }
        }
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&session_id);
        let _ = tls.shutdown().await;
        tracing::info!(%peer, client_id = %client_id, "disconnected");
    }

    fn send(&self, session_id: u64, packet: Outgoing) {
        if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(&session_id) {
            let _ = s.tx.send(Outbound::Packet(packet));
        }
    }

    /// Defines (or replaces) an IoT policy by name, as `CreatePolicy` does; certificates name
    /// policies, and connections made afterwards use the document.
    pub fn define_policy(&self, name: &str, document: Value) {
        self.policies.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), document);
    }

    /// Closes every connection authenticated with this certificate.
    pub fn disconnect_certificate(&self, certificate_id: &str) {
        for s in self.sessions.lock().unwrap_or_else(|e| e.into_inner()).values() {
            if s.identity.certificate_id == certificate_id {
                let _ = s.tx.send(Outbound::Close);
            }
        }
    }

    /// Delivers a message to every session subscribed to the topic and allowed to receive it;
    /// `only` restricts delivery to one session (replies go only to the requester).
    pub fn deliver(&self, topic: &str, payload: Bytes, qos: u8, only: Option<u64>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        for (id, s) in sessions.iter_mut() {
            if only.is_some_and(|o| o != *id) {
                continue;
            }
            let Some(granted) = s.subscriptions.iter().filter(|(f, _)| filter_matches(f, topic)).map(|(_, q)| *q).max() else {
                continue;
            };
            if !allows(&s.identity.policies, "iot:Receive", &topic_arn(topic), &s.identity.context) {
                continue;
            }
            let qos = qos.min(granted);
            let pkid = if qos > 0 {
                s.next_pkid = s.next_pkid.checked_add(1).filter(|p| *p != 0).unwrap_or(1);
                s.next_pkid
            } else {
                0
            };
            let _ = s.tx.send(Outbound::Packet(Outgoing::Publish { topic: topic.to_owned(), qos, pkid, payload: payload.clone() }));
        }
    }

    /// Handles one packet; false closes the connection.
    async fn on_packet(self: Arc<Self>, session_id: u64, identity: &Identity, protocol: Protocol, packet: Incoming) -> bool {
        match packet {
            Incoming::PingReq => self.send(session_id, Outgoing::PingResp),
            Incoming::Disconnect | Incoming::Connect { .. } => return false,
            Incoming::PubAck => {}
            // AWS IoT Core has no QoS 2: it closes the connection.
            Incoming::Unsupported(_) => return false,
            Incoming::Subscribe { pkid, filters } => {
                let granted = filters
                    .iter()
                    .map(|(filter, qos)| {
                        let ok = valid_filter(filter)
                            && !filter.starts_with("$aws/rules/")
                            && allows(&identity.policies, "iot:Subscribe", &topic_filter_arn(filter), &identity.context);
                        ok.then_some((*qos).min(1))
                    })
                    .collect::<Vec<_>>();
                if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&session_id) {
                    for ((filter, _), g) in filters.iter().zip(&granted) {
                        if let Some(q) = g {
                            s.subscriptions.retain(|(f, _)| f != filter);
                            s.subscriptions.push((filter.clone(), *q));
                        }
                    }
                }
                self.send(session_id, Outgoing::SubAck { pkid, granted });
            }
            Incoming::Unsubscribe { pkid, filters } => {
                if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&session_id) {
                    s.subscriptions.retain(|(f, _)| !filters.contains(f));
                }
                self.send(session_id, Outgoing::UnsubAck { pkid, count: filters.len() });
            }
            Incoming::Publish { topic, qos, pkid, payload } => {
                if qos > 1 {
                    return false;
                }
                if !allows(&identity.policies, "iot:Publish", &topic_arn(&topic), &identity.context) {
                    tracing::info!(client_id = %identity.client_id, "publish not authorized");
                    // MQTT 5 can say so; with MQTT 3.1.1 AWS IoT Core closes the connection.
                    if protocol == Protocol::V5 {
                        if qos == 1 {
                            self.send(session_id, Outgoing::PubAck { pkid, authorized: false });
                        }
                        return true;
                    }
                    return false;
                }
                if qos == 1 {
                    self.send(session_id, Outgoing::PubAck { pkid, authorized: true });
                }
                self.route(session_id, identity, &topic, payload, qos).await;
            }
        }
        true
    }

    async fn route(self: Arc<Self>, session_id: u64, identity: &Identity, topic: &str, payload: Bytes, qos: u8) {
        if let Some(rest) = topic.strip_prefix("$aws/rules/") {
            let rule = rest.split('/').next().unwrap_or_default();
            self.run_rule(rule, identity, payload);
            return;
        }
        let reply = |result: fleet::Reply| {
            let (suffix, body) = match result {
                Ok(v) => ("accepted", v),
                Err(v) => ("rejected", v),
            };
            self.deliver(&format!("{topic}/{suffix}"), Bytes::from(body.to_string()), 1, Some(session_id));
        };
        let json = || serde_json::from_slice::<Value>(&payload).ok().filter(Value::is_object);
        match topic.split('/').collect::<Vec<_>>().as_slice() {
            ["$aws", "certificates", "create", "json"] => reply(fleet::create_keys_and_certificate(&self)),
            ["$aws", "certificates", "create-from-csr", "json"] => reply(match json() {
                Some(p) => fleet::create_certificate_from_csr(&self, &p),
                None => Err(serde_json::json!({"statusCode": 400, "errorCode": "InvalidPayload", "errorMessage": "payload is not a JSON object"})),
            }),
            ["$aws", "provisioning-templates", name, "provision", "json"] => {
                let result = match json() {
                    Some(p) => fleet::register_thing(&self, identity, name, &p).await,
                    None => Err(serde_json::json!({"statusCode": 400, "errorCode": "InvalidPayload", "errorMessage": "payload is not a JSON object"})),
                };
                reply(result);
            }
            ["$aws", "things", thing, "jobs", rest @ ..] => {
                // The policy already limits a device to its own jobs topics; a certificate
                // without a thing has no jobs either way.
                if *thing != identity.client_id || !identity.context.thing_attached {
                    tracing::info!(client_id = %identity.client_id, "jobs request for another thing dropped");
                    return;
                }
                self.jobs_request(session_id, topic, thing, rest, &payload).await;
            }
            // Other reserved topics (shadows) are not served: dropped.
            ["$aws", ..] => tracing::debug!(topic, "reserved topic not served"),
            _ => {
                self.deliver(topic, payload.clone(), qos, None);
                self.run_topic_rules(topic, &payload);
            }
        }
    }

    /// A device's request to the IoT Jobs MQTT API; the reply goes to the requester only.
    async fn jobs_request(self: &Arc<Self>, session_id: u64, topic: &str, thing: &str, rest: &[&str], payload: &[u8]) {
        let Some((token, reply, effects)) = self.jobs.device_request(thing, rest, payload) else { return };
        let now = chrono::Utc::now().timestamp();
        let job_id = match rest {
            [id, _] if *id != "$next" => Some(*id),
            _ => None,
        };
        let (suffix, body) = match reply {
            Ok(mut body) => {
                self.resolve_documents(&mut body, job_id).await;
                ("accepted", body)
            }
            Err(e) => ("rejected", jobs::rejection(&e, &token, now)),
        };
        self.deliver(&format!("{topic}/{suffix}"), Bytes::from(body.to_string()), 1, Some(session_id));
        self.apply_job_effects(effects).await;
    }

    /// Publishes what a jobs operation caused: device notifications, and job-execution events
    /// to subscribers and to the topic rules that select them.
    pub async fn apply_job_effects(self: &Arc<Self>, effects: Vec<jobs::Effect>) {
        for effect in effects {
            match effect {
                jobs::Effect::Notify { topic, mut payload } => {
                    self.resolve_documents(&mut payload, None).await;
                    self.deliver(&topic, Bytes::from(payload.to_string()), 1, None);
                }
                jobs::Effect::Event { topic, payload } => {
                    let payload = Bytes::from(payload.to_string());
                    self.deliver(&topic, payload.clone(), 1, None);
                    self.run_topic_rules(&topic, &payload);
                }
            }
        }
    }

    /// Replaces IoT presigned-URL placeholders in job documents with presigned S3 GET URLs, as
    /// IoT Jobs does each time a device reads a document.
    async fn resolve_documents(&self, body: &mut Value, job_id: Option<&str>) {
        if let Some(execution) = body.get_mut("execution") {
            let id = execution.get("jobId").and_then(Value::as_str).map(str::to_owned);
            if let (Some(id), Some(doc)) = (id, execution.get_mut("jobDocument")) {
                self.presign_placeholders(doc, &id).await;
            }
        }
        if let (Some(id), Some(doc)) = (job_id, body.get_mut("jobDocument")) {
            self.presign_placeholders(doc, id).await;
        }
    }

    async fn presign_placeholders(&self, doc: &mut Value, job_id: &str) {
        let Some(map) = doc.as_object_mut() else { return };
        let lifetime = Duration::from_secs(self.jobs.presigned_url_seconds(job_id));
        for value in map.values_mut() {
            let Some((bucket, key)) = value.as_str().and_then(presigned_placeholder) else { continue };
            let Ok(config) = aws_sdk_s3::presigning::PresigningConfig::expires_in(lifetime) else { continue };
            match self.s3.get_object().bucket(bucket).key(key).presigned(config).await {
                Ok(request) => *value = Value::String(request.uri().to_owned()),
                Err(e) => tracing::warn!(error = %e, "cannot presign a job document URL"),
            }
        }
    }

    /// Runs the functions of rules whose `FROM` filter matches the topic (`SELECT *` rules: the
    /// function gets the message as published).
    fn run_topic_rules(self: &Arc<Self>, topic: &str, payload: &[u8]) {
        for (filter, function) in &self.topic_rules {
            if filter_matches(filter, topic) {
                self.invoke(function.clone(), String::from_utf8_lossy(payload).into_owned());
            }
        }
    }

    /// Runs a Basic Ingest rule's function with the fields its SQL adds, as IoT does: after the
    /// PUBACK, asynchronously.
    fn run_rule(self: &Arc<Self>, rule: &str, identity: &Identity, payload: Bytes) {
        let Some(function) = self.rules.get(rule).cloned() else {
            tracing::info!(rule, "no such rule (RuleNotFound)");
            return;
        };
        let added = [
            ("thingName", Value::String(identity.client_id.clone())),
            ("receivedAt", Value::from(chrono::Utc::now().timestamp_millis())),
            ("traceId", Value::String(fleet::random_hex(16).unwrap_or_default())),
        ];
        self.invoke(function, rule_event(&payload, &added));
    }

    /// Runs a rule's function with its event, as IoT does: asynchronously, after the PUBACK.
    fn invoke(self: &Arc<Self>, function: String, event: String) {
        let gw = self.clone();
        tokio::spawn(async move {
            match function.as_str() {
                "fhir-ingest" => {
                    let Ok(raw) = serde_json::value::RawValue::from_string(event) else { return };
                    match ingest::handle(&raw, &gw.ingest).await {
                        Ok(outcome) => tracing::debug!(?outcome, "FHIRIngest"),
                        Err(e) => tracing::error!(error = %e, "FHIRIngest failed"),
                    }
                }
                "upload-link" => {
                    let event = serde_json::from_str(&event).unwrap_or_default();
                    if let Err(e) = vitalwire::uploads::handle(&event, &gw.uploads).await {
                        tracing::error!(error = %e, "CreateFileUploadLink failed");
                    }
                }
                "job-events" => {
                    let event = serde_json::from_str(&event).unwrap_or_default();
                    match vitalwire::job_events::handle(&event, &gw.job_events).await {
                        Ok(outcome) => tracing::debug!(?outcome, "job event"),
                        Err(e) => tracing::error!(error = %e, "job-events failed"),
                    }
                }
                other => tracing::warn!(function = other, "rule function not wired in the local gateway"),
            }
        });
    }
}

/// The JSON a rule's `SELECT *, <fields>` produces: the device's object with the rule's fields
/// added. The device's text is kept as written (number literals such as `36.60` must reach the
/// handler unchanged), so fields are appended to it rather than parsed and re-serialized; only
/// a payload that already uses one of the rule's field names is rebuilt, the rule's value
/// winning as in IoT SQL. A payload that is not a JSON object is kept under `payload`, so the
/// refusal can show it.
fn rule_event(payload: &[u8], added: &[(&str, Value)]) -> String {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(payload) else {
        let mut map = Map::from_iter([("payload".to_owned(), Value::String(String::from_utf8_lossy(payload).into_owned()))]);
        map.extend(added.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        return Value::Object(map).to_string();
    };
    if added.iter().any(|(k, _)| map.contains_key(*k)) {
        map.extend(added.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        return Value::Object(map).to_string();
    }
    // A valid JSON object's text ends with its closing brace.
    let text = String::from_utf8_lossy(payload);
    let body = text.trim_end().strip_suffix('}').unwrap_or_default();
    let fields: Vec<String> = added.iter().map(|(k, v)| format!("{}:{v}", Value::String((*k).to_owned()))).collect();
    let separator = if map.is_empty() { "" } else { "," };
    format!("{body}{separator}{}}}", fields.join(","))
}

/// The bucket and key of `${aws:iot:s3-presigned-url:<https S3 URL>}` (path-style or
/// virtual-hosted-style URL).
fn presigned_placeholder(text: &str) -> Option<(String, String)> {
    let url = text.strip_prefix("${aws:iot:s3-presigned-url:")?.strip_suffix('}')?;
    let rest = url.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let (bucket, key) = if host.starts_with("s3.") || host.starts_with("s3-") {
        path.split_once('/')?
    } else {
        (host.split(".s3").next()?, path)
    };
    (!bucket.is_empty() && !key.is_empty()).then(|| (bucket.to_owned(), key.to_owned()))
}

/// Reads from the connection, giving up (`None`) after `limit` without a byte.
async fn read_within(
    tls: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    chunk: &mut [u8],
    limit: Option<Duration>,
) -> Option<std::io::Result<usize>> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, tls.read(chunk)).await.ok(),
        None => Some(tls.read(chunk).await),
    }
}

/// The TLS crypto provider, named explicitly: the dependency tree carries more than one.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Makes the same provider the process default, for TLS clients that use the default.
pub fn install_default_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

async fn read_connect(
    tls: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    buf: &mut BytesMut,
) -> Option<Incoming> {
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(protocol)) = wire::connect_protocol(buf) {
            if let Ok(Some(packet)) = wire::read(protocol, buf) {
                return Some(packet);
            }
        } else if wire::connect_protocol(buf).is_err() {
            return None;
        }
        let n = tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn added() -> Vec<(&'static str, Value)> {
        vec![("thingName", json!("dev-1")), ("receivedAt", json!(1700))]
    }

    #[test]
    fn rule_events_keep_the_devices_number_text() {
        let event = rule_event(br#"{"value": 36.60, "unit": "Cel"} "#, &added());
        assert!(event.contains("36.60"), "{event}");
        let v: Value = serde_json::from_str(&event).unwrap();
        assert_eq!((v["thingName"].as_str(), v["receivedAt"].as_i64(), v["unit"].as_str()), (Some("dev-1"), Some(1700), Some("Cel")));
        let empty: Value = serde_json::from_str(&rule_event(b"{}", &added())).unwrap();
        assert_eq!(empty, json!({"thingName": "dev-1", "receivedAt": 1700}));
    }

    #[test]
    fn presigned_url_placeholders_name_a_bucket_and_key() {
        let path_style = "${aws:iot:s3-presigned-url:https://s3.eu-west-1.amazonaws.com/files/firmware/a/1.0/x.bin}";
        assert_eq!(presigned_placeholder(path_style), Some(("files".into(), "firmware/a/1.0/x.bin".into())));
        let hosted = "${aws:iot:s3-presigned-url:https://files.s3.eu-west-1.amazonaws.com/firmware/x.bin}";
        assert_eq!(presigned_placeholder(hosted), Some(("files".into(), "firmware/x.bin".into())));
        assert_eq!(presigned_placeholder("https://s3.amazonaws.com/files/x"), None);
    }

    #[test]
    fn rule_fields_win_over_the_devices_and_non_objects_are_kept() {
        let v: Value = serde_json::from_str(&rule_event(br#"{"thingName": "someone-else"}"#, &added())).unwrap();
        assert_eq!(v["thingName"], "dev-1", "a device cannot claim another identity");
        let v: Value = serde_json::from_str(&rule_event(b"not json", &added())).unwrap();
        assert_eq!((v["payload"].as_str(), v["thingName"].as_str()), (Some("not json"), Some("dev-1")));
    }
}
