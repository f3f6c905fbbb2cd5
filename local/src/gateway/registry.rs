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

#[derive(Default)]
struct State {
    certificates: HashMap<String, Certificate>,
    tokens: HashMap<String, Token>,
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

    /// `DeleteCertificate`: only one that is not active and attached to no thing (AWS's
    /// `CertificateStateException` and `DeleteConflictException`); `Ok(false)` when unknown.
    pub fn delete_certificate(&self, id: &str) -> Result<bool, (u16, &'static str, String)> {
        let mut state = self.lock();
        let Some(c) = state.certificates.get(id) else { return Ok(false) };
        if c.status == CertificateStatus::Active {
            return Err((406, "CertificateStateException", format!("certificate {id} is ACTIVE: make it INACTIVE first")));
        }
        if !c.things.is_empty() {
            return Err((409, "DeleteConflictException", format!("certificate {id} is attached to {}: detach it first", c.things.join(", "))));
        }
        state.certificates.remove(id);
        Ok(true)
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
