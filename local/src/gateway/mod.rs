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
pub mod shadows;
pub mod things;
mod routing;
mod rules;
mod session;
pub mod topics;
pub mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use vitalwire::wiring::Trigger;

use self::fleet::Provisioning;
use self::pki::{certificate_id, Pki};
use self::policy::PolicyContext;
use self::registry::{Certificate, CertificateStatus, IotRegistry};
use self::rules::RuleWiring;
use self::wire::Outgoing;
use crate::functions::LocalFunctions;

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
    /// A newer connection took the client id: MQTT 5 hears so (DISCONNECT 0x8E), then closes.
    TakenOver,
}

/// The JSON object of a request on a reserved topic (jobs, shadows): an empty payload is `{}`;
/// anything but an object is `None`.
pub(crate) fn request_object(payload: &[u8]) -> Option<Value> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Some(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice::<Value>(payload).ok().filter(Value::is_object)
}

/// A message on its way: its payload and, with MQTT 5's Message Expiry Interval, when it
/// expires (1 s to 7 days, as AWS IoT Core clamps it).
#[derive(Debug, Clone)]
pub struct Message {
    pub payload: bytes::Bytes,
    pub expires_at: Option<std::time::Instant>,
}

impl Message {
    /// AWS IoT Core's longest Message Expiry Interval: 7 days.
    pub const MAX_EXPIRY: u32 = 604_800;

    pub fn new(payload: bytes::Bytes, expiry: Option<u32>) -> Self {
        let expires_at = expiry.map(|e| std::time::Instant::now() + Duration::from_secs(u64::from(e.clamp(1, Self::MAX_EXPIRY))));
        Self { payload, expires_at }
    }

    /// The whole seconds left (`Some(None)`: it never expires); `None` once it has expired.
    pub fn remaining(&self) -> Option<Option<u32>> {
        match self.expires_at {
            None => Some(None),
            Some(at) => at.checked_duration_since(std::time::Instant::now()).filter(|left| !left.is_zero()).map(|left| Some(left.as_secs() as u32)),
        }
    }
}

/// A persistent session while its client is away: its subscriptions and the QoS 1 messages
/// they caught, until it expires.
struct OfflineSession {
    protocol: wire::Protocol,
    identity: Identity,
    subscriptions: Vec<(String, u8)>,
    queue: std::collections::VecDeque<(String, Message)>,
    expires_at: std::time::Instant,
}

struct Session {
    identity: Identity,
    subscriptions: Vec<(String, u8)>,
    tx: mpsc::UnboundedSender<Outbound>,
    next_pkid: u16,
    /// MQTT 5 topic aliases the client set on this connection.
    topic_aliases: HashMap<u16, String>,
    /// QoS 1 messages sent and not yet acknowledged (packet id, topic, message), oldest first:
    /// a persistent session keeps them for the client's return.
    unacked: std::collections::VecDeque<(u16, String, Message)>,
    /// How many unacknowledged QoS 1 messages the client may have at once: AWS's 100, or the
    /// client's MQTT 5 Receive Maximum when lower.
    in_flight_limit: usize,
    /// QoS 1 messages held back while `in_flight_limit` are unacknowledged (topic, message,
    /// retained flag), sent as acknowledgements come.
    waiting: std::collections::VecDeque<(String, Message, bool)>,
    /// The client's publishes in the current second, for AWS's per-connection rate.
    publish_rate: (std::time::Instant, u32),
}

/// The gateway's state, shared by all connections. Its parts: the registry of certificates
/// and things ([`registry`]), fleet provisioning ([`fleet`]), IoT Jobs ([`jobs`]), the rules
/// that run functions ([`rules`]), and the connected sessions ([`session`], [`routing`]).
pub struct Gateway {
    pub pki: Pki,
    pub registry: IotRegistry,
    pub claim_certificate_id: String,
    /// What RegisterThing creates, and the hook it asks first.
    pub provisioning: Provisioning,
    rules: RuleWiring,
    /// IoT Jobs: device API, control plane, events.
    pub jobs: jobs::JobsEngine,
    /// Things, thing types and thing groups (the control plane's registry).
    pub things: things::Things,
    /// Device shadows, classic and named.
    pub shadows: shadows::Shadows,
    /// The platform's functions, which the rules and the provisioning hook run.
    pub(crate) functions: Arc<LocalFunctions>,
    /// Presigns the S3 URLs of job documents (`${aws:iot:s3-presigned-url:...}`).
    s3: aws_sdk_s3::Client,
    /// Where rules with an SQS action send their messages.
    sqs: aws_sdk_sqs::Client,
    sessions: Mutex<HashMap<u64, Session>>,
    next_session: AtomicU64,
    /// Retained messages by topic, with their QoS.
    retained: Mutex<std::collections::BTreeMap<String, (Message, u8)>>,
    /// Persistent sessions of clients that are not connected, by client id.
    offline: Mutex<HashMap<String, OfflineSession>>,
    /// QoS 1 messages for shared subscription groups (by `$share/<group>/<filter>`) none of
    /// whose members is connected while a persistent one is away, for the first to come.
    shared_queues: Mutex<HashMap<String, std::collections::VecDeque<(String, Message)>>>,
    /// Whose turn it is in a shared subscription group.
    shared_turn: AtomicU64,
    /// How long replies on reserved topics and rule runs wait, as AWS's round trip does.
    reply_latency: Duration,
    /// The shortest keep-alive applied ([`AWS_MINIMUM_KEEP_ALIVE`]; tests lower it).
    keep_alive_floor: u16,
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
    /// How long a reply on a reserved topic (provisioning, jobs) and a rule's run wait:
    /// [`AWS_REPLY_LATENCY`] unless `up --latency` says otherwise.
    pub reply_latency: Duration,
    /// The shortest keep-alive the gateway applies: [`AWS_MINIMUM_KEEP_ALIVE`], lower only in
    /// tests that watch a silent client be dropped.
    pub keep_alive_floor: u16,
}

/// AWS IoT Core raises a shorter keep-alive to 30 seconds.
pub const AWS_MINIMUM_KEEP_ALIVE: u16 = 30;

/// The pause before the gateway answers a request on a reserved topic or runs a rule. AWS
/// IoT Core answers a request tens of milliseconds after its PUBACK (its round trip within a
/// region, before the client's own network), and AWS publishes no figure; device code that
/// subscribes to the reply only after its request's PUBACK works against AWS because of that
/// pause, and must work here too. Answering within a millisecond, as the gateway did, made
/// such code miss the reply about half the time.
pub const AWS_REPLY_LATENCY: Duration = Duration::from_millis(50);

impl Gateway {
    /// Loads the PKI (creating it on first run), the policies and provisioning template from
    /// `infra/iot/`, and the rule wiring from `template.yaml`; rules and provisioning run
    /// `functions`.
    /// The gateway of `stack`: its template's policies, provisioning template and rules (with
    /// the parameters the stack was made with), its queues for rules with an SQS action.
    pub fn new(config: GatewayConfig, functions: Arc<LocalFunctions>, stack: &crate::stack::LocalStack, aws: &vitalwire::platform::aws::AwsClients) -> Result<Arc<Self>, GatewayError> {
        let root = crate::repo_root();
        let template = &stack.template;
        let policy_name = |logical: &str| {
            template
                .properties_json(logical)
                .and_then(|p| p["PolicyName"].as_str().map(str::to_owned))
                .ok_or_else(|| GatewayError::Config(format!("template.yaml: {logical} has no PolicyName")))
        };
        let device_policy = policy_name("DeviceIotPolicy")?;
        let claim_policy = policy_name("ClaimIotPolicy")?;
        let hook = functions
            .triggered_by(|t| matches!(t, Trigger::ProvisioningHook))
            .next()
            .map(|s| s.name)
            .ok_or_else(|| GatewayError::Config("the registry has no pre-provisioning hook".into()))?;
        let provisioning = Provisioning::from_template(template, &read_json(&root.join("infra/iot/provisioning-template.json"))?, hook)
            .map_err(GatewayError::Config)?;
        let rules = RuleWiring::from_template(template, &stack.queues);

        let pki = Pki::load_or_create(&config.certs_dir)?;
        let registry = config.token_lifetime.map(IotRegistry::with_token_lifetime).unwrap_or_default();
        registry.define_policy(&device_policy, read_json(&root.join("infra/iot/device-policy.json"))?);
        registry.define_policy(&claim_policy, read_json(&root.join("infra/iot/claim-policy.json"))?);
        let claim_pem = std::fs::read_to_string(&pki.files.claim_cert)?;
        let claim_der = pki::pem_to_der(&claim_pem).ok_or_else(|| GatewayError::Config("claim certificate is not PEM".into()))?;
        let claim_certificate_id = certificate_id(&claim_der);
        registry.insert(Certificate {
            id: claim_certificate_id.clone(),
            pem: claim_pem,
            status: CertificateStatus::Active,
            things: Vec::new(),
            policies: vec![claim_policy],
            created_at: chrono::Utc::now().timestamp(),
        });
        Ok(Arc::new(Self {
            pki,
            registry,
            claim_certificate_id,
            provisioning,
            rules,
            jobs: jobs::JobsEngine::default(),
            things: things::Things::default(),
            shadows: shadows::Shadows::default(),
            functions,
            s3: aws.s3(),
            sqs: aws.sqs(),
            sessions: Mutex::default(),
            next_session: AtomicU64::new(1),
            retained: Mutex::default(),
            offline: Mutex::default(),
            shared_queues: Mutex::default(),
            shared_turn: AtomicU64::new(0),
            reply_latency: config.reply_latency,
            keep_alive_floor: config.keep_alive_floor,
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
                    Err(e) => tracing::info!(%peer, error = %e, "connection refused: TLS handshake failed (a client certificate signed by the local CA is required)"),
                }
            });
        }
    }

    /// Runs `then` on its own task once the reply latency has passed: the requester's session
    /// goes on meanwhile (it may subscribe to the reply topic after its request's PUBACK).
    pub(super) fn after_latency(&self, then: impl std::future::Future<Output = ()> + Send + 'static) {
        let latency = self.reply_latency;
        tokio::spawn(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            then.await;
        });
    }

    /// Closes every connection authenticated with this certificate.
    pub fn disconnect_certificate(&self, certificate_id: &str) {
        for s in self.sessions.lock().unwrap_or_else(|e| e.into_inner()).values() {
            if s.identity.certificate_id == certificate_id {
                let _ = s.tx.send(Outbound::Close);
            }
        }
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
