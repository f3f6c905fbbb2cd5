//! The Polaris activation API's patient routes, answering as the reference does: its paths,
//! bodies, status codes and error formats (`docs/polaris/activation-reference.md` §2–§3).
//! Every failure to use an activation answers the same 404, whatever the reason (unknown,
//! used, locked, expired, wrong OTP), so codes cannot be probed; the reason is logged.

use chrono::{Duration, Utc};
use lambda_http::{Request, RequestExt};
use serde_json::{json, Value};

use super::codes::{self, CODE_ALPHABET, CODE_LENGTH, OTP_ALPHABET, OTP_LENGTH};
use super::{expiry_after, reference_expiry, Activation, ActivationStore, NotUsable, PatientCredential, AUTHORISATION_CODE_DAYS, PATIENT_JWT_LIFETIME};
use crate::access::audit::{record_read_by, AuditLog};
use crate::access::polaris::{PolarisSigner, SignError};
use crate::access::secrets::PepperSource;
use crate::messages::http::{admitted, json_body, kind, ok, only_query, path, Answer, PolarisError};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The scopes of patient JWTs when `POLARIS_PATIENT_SCOPE` does not say: the reference's
/// sample patient scope (`run_local.sh`), what its GDM patient app needs.
pub const DEFAULT_PATIENT_SCOPE: &str = "read:gdm_patient_abbreviated read:gdm_message write:gdm_message read:gdm_bg_reading write:gdm_bg_reading \
read:gdm_medication read:gdm_question read:gdm_answer write:gdm_answer read:gdm_trustomer read:gdm_telemetry write:gdm_telemetry write:gdm_terms_agreement";

/// What the activation routes need.
pub struct ActivationDeps<S, P, L> {
    pub activations: S,
    /// Derives the salt activation codes are hashed with.
    pub pepper: P,
    pub signer: PolarisSigner,
    pub audit: L,
    pub patient_scope: String,
}

impl<S: FromWiring, P: FromWiring, L: FromWiring> FromWiring for ActivationDeps<S, P, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            activations: w.build()?,
            pepper: w.build()?,
            signer: w.build()?,
            audit: w.build()?,
            patient_scope: w.settings.optional("POLARIS_PATIENT_SCOPE").filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_PATIENT_SCOPE.to_owned()),
        })
    }
}

const NOT_FOUND: &str = "Could not find relevant activation";
const BAD_COMBINATION: &str = "Invalid combination of patient_id and code";
/// Tries this many times when another request changed the same records first.
const ATTEMPTS: usize = 3;

fn message(status: u16, text: &str) -> PolarisError {
    PolarisError::Message { status, message: text.to_owned() }
}

fn unavailable(e: &dyn std::fmt::Display) -> PolarisError {
    tracing::error!(error = %e, "activation unavailable");
    message(503, "Service unavailable")
}

/// The caller, if they hold `scope` (403 otherwise, after the reference's earlier checks).
fn caller_with(request: &Request, scope: &str) -> Result<crate::messages::access::Caller, PolarisError> {
    let caller = admitted(request)?.map_err(|_| PolarisError::forbidden())?;
    if caller.has(scope) {
        Ok(caller)
    } else {
        Err(PolarisError::forbidden())
    }
}

/// `POST /dhos/v1/patient/{patient_id}/activation` (`write:gdm_activation`): a new activation
/// code and OTP for the patient, replacing the one still open. 200
/// `{"activation_code", "expires_at", "otp"}`.
pub async fn create<S: ActivationStore, P: PepperSource, L: AuditLog>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = caller_with(&request, "write:gdm_activation")?;
    let patient_id = path(&request, "patient_id");
    let hasher = deps.pepper.hasher().await?;
    for _ in 0..ATTEMPTS {
        let (code, otp) = (codes::random_string(CODE_ALPHABET, CODE_LENGTH)?, codes::random_string(OTP_ALPHABET, OTP_LENGTH)?);
        let now = Utc::now();
        let activation = Activation {
            code_key: codes::code_key(&code, hasher)?,
            uuid: uuid::Uuid::new_v4().to_string(),
            patient_id: patient_id.clone(),
            otp_hash: codes::hash_secret(&otp)?,
            attempts: 0,
            created: now,
            created_by: caller.user_id().to_owned(),
            modified: now,
            modified_by: caller.user_id().to_owned(),
            expires: expiry_after(now),
            completed: None,
            version: 1,
        };
        let current = deps.activations.credential(&patient_id).await?.unwrap_or_else(|| PatientCredential { patient_id: patient_id.clone(), ..PatientCredential::default() });
        let replaced = current.open_code_key.clone();
        let credential = PatientCredential { open_code_key: Some(activation.code_key.clone()), version: current.version + 1, ..current };
        if deps.activations.open(&activation, replaced.as_deref(), &credential).await? {
            // Whoever holds the code and OTP can act as the patient: who asked is kept.
            record_read_by(&deps.audit, &request, caller.user_id(), kind(&caller), &[patient_id.as_str()], 200).await?;
            return Ok(ok(&json!({"activation_code": code, "expires_at": reference_expiry(activation.expires), "otp": otp}), &request));
        }
    }
    Err(StoreError::new("open activation", "the patient's activation kept changing").into())
}

/// `GET /dhos/v1/patient/{patient_id}/activation` (`read:gdm_activation`): the patient's
/// completed activations, last first.
pub async fn list<S: ActivationStore, P: PepperSource, L: AuditLog>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = caller_with(&request, "read:gdm_activation")?;
    let patient_id = path(&request, "patient_id");
    let done = deps.activations.completed_of(&patient_id).await?;
    let listed: Vec<Value> = done
        .iter()
        .map(|a| {
            json!({
                "activation_completed": a.completed.map(format_utc), "created": format_utc(a.created), "created_by": a.created_by,
                "modified": format_utc(a.modified), "modified_by": a.modified_by, "uuid": a.uuid,
            })
        })
        .collect();
    record_read_by(&deps.audit, &request, caller.user_id(), kind(&caller), &[patient_id.as_str()], 200).await?;
    Ok(ok(&listed, &request))
}

/// The OTP of a validation body, checked as the reference checks it.
fn otp_of(request: &Request) -> Result<String, PolarisError> {
    let raw = crate::platform::http::body_bytes(request);
    let text = String::from_utf8_lossy(raw);
    if text.trim().is_empty() || text.trim() == "null" {
        return Err(message(400, "Request requires a json body"));
    }
    let body = json_body(request)?;
    let Value::Object(fields) = &body else { return Err(PolarisError::schema(format!("{body} is not of type 'object'"))) };
    match fields.get("otp") {
        None => return Err(PolarisError::schema("'otp' is a required property")),
        Some(Value::Null) => return Err(message(400, "'Json request is missing a required key otp'")),
        Some(Value::String(_)) => {}
        Some(other) => return Err(PolarisError::schema(format!("{other} is not of type 'string' - 'otp'"))),
    }
    if let Some(extra) = fields.keys().find(|k| *k != "otp") {
        return Err(message(400, &format!("\"Request body '{body}' contains unexpected key: {extra}\"")));
    }
    Ok(fields["otp"].as_str().unwrap_or_default().to_owned())
}

/// `POST /dhos/v1/activation/{activation_code}` (no token): the patient's app exchanges the
/// code and its OTP, once, for an authorisation code. 200 `{"authorisation_code", "patient_id"}`;
/// every failure the same 404.
pub async fn validate<S: ActivationStore, P: PepperSource, L: AuditLog>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    only_query(&request, &["type"])?;
    match request.query_string_parameters().first("type").unwrap_or_default() {
        "" | "gdm" => {}
        // Device (SEND Entry) activations are not served yet: none can exist.
        "send_entry" => return Err(message(404, NOT_FOUND)),
        other => return Err(message(400, &format!("Invalid device type: {other}"))),
    }
    let otp = otp_of(&request)?;
    let code = path(&request, "activation_code");
    let key = codes::code_key(&code, deps.pepper.hasher().await?)?;
    let refused = |why: NotUsable| {
        tracing::info!(reason = why.as_str(), "activation refused");
        message(404, NOT_FOUND)
    };
    for _ in 0..ATTEMPTS {
        let Some(mut activation) = deps.activations.activation(&key).await? else { return Err(refused(NotUsable::Unknown)) };
        let now = Utc::now();
        activation.usable(now).map_err(refused)?;
        // The attempt is counted before the OTP is checked, so that guesses sent at once cannot
        // outrun the lock: only a counted attempt gets its OTP checked.
        activation.attempts += 1;
        activation.version += 1;
        if !deps.activations.update(&activation).await? {
            continue;
        }
        if !codes::verify_secret(&otp, &activation.otp_hash) {
            return Err(refused(NotUsable::WrongOtp));
        }
        let authorisation_code = codes::random_string(CODE_ALPHABET, CODE_LENGTH)?;
        let current = deps.activations.credential(&activation.patient_id).await?.unwrap_or_else(|| PatientCredential { patient_id: activation.patient_id.clone(), ..PatientCredential::default() });
        let credential = PatientCredential {
            open_code_key: current.open_code_key.clone().filter(|open| *open != key),
            authorisation_hash: Some(codes::hash_secret(&authorisation_code)?),
            authorisation_expires: Some(now + Duration::days(AUTHORISATION_CODE_DAYS)),
            version: current.version + 1,
            patient_id: current.patient_id,
        };
        activation.completed = Some(now);
        activation.modified = now;
        activation.modified_by = activation.patient_id.clone();
        activation.version += 1;
        if deps.activations.complete(&activation, &credential).await? {
            record_read_by(&deps.audit, &request, &activation.patient_id, "patient", &[activation.patient_id.as_str()], 200).await?;
            return Ok(ok(&json!({"authorisation_code": authorisation_code, "patient_id": activation.patient_id}), &request));
        }
    }
    // Others kept changing it: as for any activation that cannot be used, the same 404.
    Err(message(404, NOT_FOUND))
}

/// `GET /dhos/v1/patient/{patient_id}/jwt` (no token; `x-authorisation-code`): a patient JWT
/// (HS512, 900 s) for the holder of the patient's authorisation code. 200 `{"jwt"}`.
pub async fn patient_jwt<S: ActivationStore, P: PepperSource, L: AuditLog>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    only_query(&request, &[])?;
    let Some(code) = request.headers().get("x-authorisation-code").and_then(|v| v.to_str().ok()) else {
        return Err(PolarisError::schema("Missing header parameter 'x-authorisation-code'"));
    };
    let patient_id = path(&request, "patient_id");
    let credential = deps.activations.credential(&patient_id).await?;
    let (Some(hash), Some(expires)) = (credential.as_ref().and_then(|c| c.authorisation_hash.as_deref()), credential.as_ref().and_then(|c| c.authorisation_expires)) else {
        return Err(message(404, BAD_COMBINATION));
    };
    if Utc::now() > expires || !codes::verify_secret(code, hash) {
        tracing::info!("authorisation code refused");
        return Err(message(404, BAD_COMBINATION));
    }
    let jwt = deps.signer.mint(&[("patient_id", &patient_id)], &deps.patient_scope, PATIENT_JWT_LIFETIME).await.map_err(|e| match e {
        SignError::Key(e) => PolarisError::from(e),
        other => unavailable(&other),
    })?;
    record_read_by(&deps.audit, &request, &patient_id, "patient", &[patient_id.as_str()], 200).await?;
    Ok(ok(&json!({"jwt": jwt}), &request))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::access::api_keys::KeyHasher;
    use crate::access::memory::MemoryAudit;
    use crate::access::polaris::tests::{ISSUER, KEY};
    use crate::access::polaris::PolarisVerifier;
    use crate::activation::memory::MemoryActivations;
    use crate::activation::MAX_ATTEMPTS;
    use crate::platform::testing::{answered, patient, refused_token, Answered, ApiRequest};

    type Deps = ActivationDeps<MemoryActivations, KeyHasher, MemoryAudit>;

    fn deps() -> Deps {
        ActivationDeps {
            activations: MemoryActivations::default(),
            pepper: KeyHasher::new(b"unit-test-pepper-of-32-bytes-or-more".to_vec()),
            signer: PolarisSigner::with_key(ISSUER, KEY),
            audit: MemoryAudit::default(),
            patient_scope: "read:gdm_message write:gdm_message".into(),
        }
    }

    fn clinician() -> Value {
        json!({"authenticated": true, "polaris": true, "clinicianId": "c-1", "scope": "read:gdm_activation write:gdm_activation"})
    }

    async fn activate(deps: &Deps, caller: Value) -> Answered {
        answered(create(ApiRequest::new("POST /dhos/v1/patient/{patient_id}/activation").path("patient_id", "p-1").caller(caller).build(), deps).await)
    }

    async fn exchange(deps: &Deps, code: &str, body: Option<Value>) -> Answered {
        let mut request = ApiRequest::new("POST /dhos/v1/activation/{activation_code}").path("activation_code", code);
        if let Some(b) = body {
            request = request.json(b);
        }
        answered(validate(request.build(), deps).await)
    }

    async fn jwt(deps: &Deps, code: Option<&str>) -> Answered {
        let mut request = ApiRequest::new("GET /dhos/v1/patient/{patient_id}/jwt").path("patient_id", "p-1");
        if let Some(c) = code {
            request = request.header("x-authorisation-code", c);
        }
        answered(patient_jwt(request.build(), deps).await)
    }

    #[tokio::test]
    async fn code_and_otp_give_an_authorisation_code_once_and_it_gives_patient_jwts() {
        let deps = deps();
        let issued = activate(&deps, clinician()).await;
        assert_eq!(issued.status, 200, "{}", issued.body);
        let (code, otp) = (issued.body["activation_code"].as_str().unwrap().to_owned(), issued.body["otp"].as_str().unwrap().to_owned());
        assert_eq!(issued.body["expires_at"], reference_expiry(expiry_after(Utc::now())));
        let stored = deps.activations.activations.lock().unwrap().values().next().cloned().unwrap();
        assert!(stored.otp_hash.starts_with("$argon2id$") && !stored.code_key.contains(&code), "only hashes are kept");

        let exchanged = exchange(&deps, &code, Some(json!({"otp": otp}))).await;
        assert_eq!(exchanged.status, 200, "{}", exchanged.body);
        assert_eq!(exchanged.body["patient_id"], "p-1");
        let authorisation = exchanged.body["authorisation_code"].as_str().unwrap().to_owned();
        assert_eq!(authorisation.len(), 30);
        assert_eq!(exchange(&deps, &code, Some(json!({"otp": otp}))).await.body, json!({"message": NOT_FOUND}), "single use");

        let token = jwt(&deps, Some(&authorisation)).await;
        assert_eq!(token.status, 200);
        let claims = PolarisVerifier::with_key(ISSUER, ISSUER, KEY).verify(token.body["jwt"].as_str().unwrap()).await.unwrap();
        assert_eq!(claims.patient_id.as_deref(), Some("p-1"));
        assert_eq!(claims.scopes, ["read:gdm_message", "write:gdm_message"]);
        assert_eq!(jwt(&deps, Some("WRONGCODE")).await.body, json!({"message": BAD_COMBINATION}));
        assert_eq!(jwt(&deps, None).await.status, 400);

        let listed = answered(list(ApiRequest::new("GET /dhos/v1/patient/{patient_id}/activation").path("patient_id", "p-1").caller(clinician()).build(), &deps).await);
        assert_eq!(listed.body.as_array().unwrap().len(), 1);
        assert_eq!(listed.body[0]["modified_by"], "p-1");
        assert!(listed.body[0]["activation_completed"].is_string());
    }

    #[tokio::test]
    async fn ten_wrong_otps_lock_the_activation_and_asking_again_replaces_it() {
        let deps = deps();
        let issued = activate(&deps, clinician()).await;
        let (code, otp) = (issued.body["activation_code"].as_str().unwrap().to_owned(), issued.body["otp"].as_str().unwrap().to_owned());
        let wrong = if otp == "aaaa" { "bbbb" } else { "aaaa" };
        for _ in 0..MAX_ATTEMPTS {
            assert_eq!(exchange(&deps, &code, Some(json!({"otp": wrong}))).await.body, json!({"message": NOT_FOUND}));
        }
        assert_eq!(exchange(&deps, &code, Some(json!({"otp": otp}))).await.status, 404, "locked: even the right OTP");
        assert_eq!(exchange(&deps, "NOSUCHCODE", Some(json!({"otp": otp}))).await.body, json!({"message": NOT_FOUND}), "the same answer for an unknown code");
        let again = activate(&deps, clinician()).await;
        let (new_code, new_otp) = (again.body["activation_code"].as_str().unwrap().to_owned(), again.body["otp"].as_str().unwrap().to_owned());
        assert_ne!(new_code, code, "codes are kept hashed: asking again gives a new one");
        assert_eq!(deps.activations.activations.lock().unwrap().len(), 1, "the locked activation is replaced");
        assert_eq!(exchange(&deps, &new_code, Some(json!({"otp": new_otp}))).await.status, 200);
    }

    #[tokio::test]
    async fn bodies_and_callers_are_checked_as_the_reference_checks_them() {
        let deps = deps();
        assert_eq!(activate(&deps, patient("p-1")).await.status, 403, "a patient may not activate");
        assert_eq!(activate(&deps, refused_token("expired")).await.body, json!({"message": "Forbidden"}));
        let code = activate(&deps, clinician()).await.body["activation_code"].as_str().unwrap().to_owned();
        assert_eq!(exchange(&deps, &code, None).await.body, json!({"message": "Request requires a json body"}));
        assert_eq!(exchange(&deps, &code, Some(json!({}))).await.body["detail"], "'otp' is a required property");
        assert_eq!(exchange(&deps, &code, Some(json!({"otp": 5}))).await.body["detail"], "5 is not of type 'string' - 'otp'");
        assert_eq!(exchange(&deps, &code, Some(json!({"otp": null}))).await.body["message"], "'Json request is missing a required key otp'");
        assert_eq!(exchange(&deps, &code, Some(json!({"otp": "abcd", "x": 1}))).await.status, 400);
        let typed = answered(validate(ApiRequest::new("POST /dhos/v1/activation/{activation_code}").path("activation_code", &code).query("type", "other").json(json!({"otp": "abcd"})).build(), &deps).await);
        assert_eq!(typed.body, json!({"message": "Invalid device type: other"}));
        let extra = answered(validate(ApiRequest::new("POST /dhos/v1/activation/{activation_code}").path("activation_code", &code).query("type", "gdm").query("x", "1").json(json!({"otp": "abcd"})).build(), &deps).await);
        assert_eq!(extra.body["detail"], "Extra query parameter(s) x not in spec", "only `type` is in the reference's spec");
        assert_eq!(deps.activations.activations.lock().unwrap().values().next().unwrap().attempts, 0, "refused bodies are no attempts");
    }
}
