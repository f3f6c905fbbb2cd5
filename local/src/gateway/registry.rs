//! The gateway's IoT registry: certificates (status, attached thing and policies), things, and
//! fleet-provisioning ownership tokens. It is the local stand-in for IoT Core's control plane.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A certificate's status, as AWS IoT names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    Active,
    Inactive,
    Revoked,
    PendingActivation,
}

impl CertificateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
            Self::Revoked => "REVOKED",
            Self::PendingActivation => "PENDING_ACTIVATION",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Inactive, Self::Revoked, Self::PendingActivation].into_iter().find(|s| s.as_str() == text)
    }
}

/// A certificate the gateway knows.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub id: String,
    pub pem: String,
    pub status: CertificateStatus,
    /// The things it is attached to (`AttachThingPrincipal`, or `RegisterThing`).
    pub things: Vec<String>,
    pub policies: Vec<String>,
    /// Epoch seconds.
    pub created_at: i64,
}

/// How long a certificate ownership token is valid.
pub const OWNERSHIP_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Why an ownership token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the certificate ownership token is not valid")]
    Unknown,
    #[error("the certificate ownership token was already used")]
    Used,
    #[error("the certificate ownership token has expired")]
    Expired,
}

struct Token {
    certificate_id: String,
    issued: Instant,
    used: bool,
}

/// An IoT policy: its document as written (what `GetPolicy` answers) and as parsed (what
/// connections are judged by).
#[derive(Debug, Clone)]
pub struct IotPolicy {
    pub text: String,
    pub document: serde_json::Value,
    /// Epoch seconds.
    pub created_at: i64,
}

/// Why a policy operation of the control plane was refused, as AWS names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {0} does not exist")]
    UnknownPolicy(String),
    #[error("certificate {0} does not exist")]
    UnknownCertificate(String),
    #[error("policy {0} already exists")]
    Exists(String),
    #[error("policy {0} is attached to {1} certificate(s): detach it first")]
    Attached(String, usize),
    #[error("the policy document is not valid: {0}")]
    Malformed(String),
}

impl PolicyError {
    /// The HTTP status and `x-amzn-errortype` AWS IoT answers with.
    pub fn aws_kind(&self) -> (u16, &'static str) {
        match self {
            Self::UnknownPolicy(_) | Self::UnknownCertificate(_) => (404, "ResourceNotFoundException"),
            Self::Exists(_) => (409, "ResourceAlreadyExistsException"),
            Self::Attached(..) => (409, "DeleteConflictException"),
            Self::Malformed(_) => (400, "MalformedPolicyException"),
        }
    }
}

/// A policy document AWS IoT would take: JSON with a `Statement` of objects, each with an
/// `Effect` of `Allow` or `Deny`, an `Action` and a `Resource`.
pub fn parse_policy_document(text: &str) -> Result<serde_json::Value, PolicyError> {
    use serde_json::Value;
    let bad = |m: &str| PolicyError::Malformed(m.to_owned());
    let document: Value = serde_json::from_str(text).map_err(|e| PolicyError::Malformed(e.to_string()))?;
    let statements = match document.get("Statement") {
        Some(Value::Array(s)) if !s.is_empty() => s.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return Err(bad("Statement must be a statement or a list of them")),
    };
    for statement in &statements {
        if !matches!(statement.get("Effect").and_then(Value::as_str), Some("Allow" | "Deny")) {
            return Err(bad("every statement needs an Effect of Allow or Deny"));
        }
        for key in ["Action", "Resource"] {
            if !matches!(statement.get(key), Some(Value::String(_) | Value::Array(_))) {
                return Err(PolicyError::Malformed(format!("every statement needs {key}")));
            }
        }
    }
    Ok(document)
}

#[derive(Default)]
struct State {
    certificates: HashMap<String, Certificate>,
    tokens: HashMap<String, Token>,
    policies: HashMap<String, IotPolicy>,
}

/// Certificates, things and tokens, shared by all connections.
#[derive(Default)]
pub struct IotRegistry {
    state: Mutex<State>,
    token_lifetime: Option<Duration>,
}

impl IotRegistry {
    /// A registry whose tokens live for `lifetime` (tests shorten it).
    pub fn with_token_lifetime(lifetime: Duration) -> Self {
        Self { state: Mutex::default(), token_lifetime: Some(lifetime) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, certificate: Certificate) {
        self.lock().certificates.insert(certificate.id.clone(), certificate);
    }

    pub fn certificate(&self, id: &str) -> Option<Certificate> {
        self.lock().certificates.get(id).cloned()
    }

    /// `UpdateCertificate`; false when the certificate is unknown.
    pub fn set_status(&self, id: &str, status: CertificateStatus) -> bool {
        self.lock().certificates.get_mut(id).map(|c| c.status = status).is_some()
    }

    /// Activates a certificate, attaches a thing and a policy (what `RegisterThing` applies).
    pub fn activate_for_thing(&self, id: &str, thing: &str, policy: &str) -> bool {
        let mut state = self.lock();
        let Some(c) = state.certificates.get_mut(id) else { return false };
        c.status = CertificateStatus::Active;
        if !c.things.iter().any(|t| t == thing) {
            c.things.push(thing.to_owned());
        }
        if !c.policies.iter().any(|p| p == policy) {
            c.policies.push(policy.to_owned());
        }
        true
    }

    /// Every certificate (`ListCertificates`), oldest first.
    pub fn certificates(&self) -> Vec<Certificate> {
        let mut all: Vec<Certificate> = self.lock().certificates.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// `AttachThingPrincipal` (`attach`) or `DetachThingPrincipal`; false for an unknown
    /// certificate.
    pub fn set_thing(&self, id: &str, thing: &str, attach: bool) -> bool {
        let mut state = self.lock();
        let Some(c) = state.certificates.get_mut(id) else { return false };
        c.things.retain(|t| t != thing);
        if attach {
            c.things.push(thing.to_owned());
        }
        true
    }

    /// The certificates attached to a thing (`ListThingPrincipals`).
    pub fn principals_of(&self, thing: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().certificates.values().filter(|c| c.things.iter().any(|t| t == thing)).map(|c| c.id.clone()).collect();
        ids.sort();
        ids
    }

    /// `DeleteCertificate`: only one that is not active and attached to no thing or policy (AWS's
    /// `CertificateStateException` and `DeleteConflictException`); `Ok(false)` when unknown.
    pub fn delete_certificate(&self, id: &str) -> Result<bool, (u16, &'static str, String)> {
        let mut state = self.lock();
        let Some(c) = state.certificates.get(id) else { return Ok(false) };
        if c.status == CertificateStatus::Active {
            return Err((406, "CertificateStateException", format!("certificate {id} is ACTIVE: make it INACTIVE first")));
        }
        if !c.things.is_empty() || !c.policies.is_empty() {
            let attached: Vec<&str> = c.things.iter().chain(&c.policies).map(String::as_str).collect();
            return Err((409, "DeleteConflictException", format!("certificate {id} is attached to {}: detach it first", attached.join(", "))));
        }
        state.certificates.remove(id);
        Ok(true)
    }

    /// Defines (or replaces) a policy by name, as the stack does for its own policies.
    pub fn define_policy(&self, name: &str, document: serde_json::Value) {
        let policy = IotPolicy { text: document.to_string(), document, created_at: chrono::Utc::now().timestamp() };
        self.lock().policies.insert(name.to_owned(), policy);
    }

    /// `CreatePolicy`: a new name only.
    pub fn create_policy(&self, name: &str, text: &str, now: i64) -> Result<IotPolicy, PolicyError> {
        let document = parse_policy_document(text)?;
        let mut state = self.lock();
        if state.policies.contains_key(name) {
            return Err(PolicyError::Exists(name.to_owned()));
        }
        let policy = IotPolicy { text: text.to_owned(), document, created_at: now };
        state.policies.insert(name.to_owned(), policy.clone());
        Ok(policy)
    }

    /// `GetPolicy`.
    pub fn policy(&self, name: &str) -> Option<IotPolicy> {
        self.lock().policies.get(name).cloned()
    }

    /// Every policy's name (`ListPolicies`), in order.
    pub fn policy_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().policies.keys().cloned().collect();
        names.sort();
        names
    }

    /// `DeletePolicy`: only one no certificate uses (AWS's `DeleteConflictException`).
    pub fn delete_policy(&self, name: &str) -> Result<(), PolicyError> {
        let mut state = self.lock();
        if !state.policies.contains_key(name) {
            return Err(PolicyError::UnknownPolicy(name.to_owned()));
        }
        let users = state.certificates.values().filter(|c| c.policies.iter().any(|p| p == name)).count();
        if users > 0 {
            return Err(PolicyError::Attached(name.to_owned(), users));
        }
        state.policies.remove(name);
        Ok(())
    }

    /// `AttachPolicy` (`attach`) or `DetachPolicy` to a certificate; connections made
    /// afterwards are judged by the new set.
    pub fn set_policy(&self, certificate_id: &str, name: &str, attach: bool) -> Result<(), PolicyError> {
        let mut state = self.lock();
        if !state.policies.contains_key(name) {
            return Err(PolicyError::UnknownPolicy(name.to_owned()));
        }
        let c = state.certificates.get_mut(certificate_id).ok_or_else(|| PolicyError::UnknownCertificate(certificate_id.to_owned()))?;
        c.policies.retain(|p| p != name);
        if attach {
            c.policies.push(name.to_owned());
        }
        Ok(())
    }

    /// The documents of the named policies that exist, for judging a connection.
    pub fn policy_documents(&self, names: &[String]) -> Vec<serde_json::Value> {
        let state = self.lock();
        names.iter().filter_map(|n| state.policies.get(n).map(|p| p.document.clone())).collect()
    }

    /// Issues a single-use ownership token for a new certificate.
    pub fn issue_token(&self, certificate_id: &str, token: String) {
        self.lock().tokens.insert(token, Token { certificate_id: certificate_id.to_owned(), issued: Instant::now(), used: false });
    }

    /// Spends a token; the certificate id it stands for.
    pub fn redeem_token(&self, token: &str) -> Result<String, TokenError> {
        let lifetime = self.token_lifetime.unwrap_or(OWNERSHIP_TOKEN_LIFETIME);
        let mut state = self.lock();
        let t = state.tokens.get_mut(token).ok_or(TokenError::Unknown)?;
        if t.used {
            return Err(TokenError::Used);
        }
        t.used = true;
        if t.issued.elapsed() > lifetime {
            return Err(TokenError::Expired);
        }
        Ok(t.certificate_id.clone())
    }
}
