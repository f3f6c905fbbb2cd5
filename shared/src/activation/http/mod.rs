//! The Polaris activation API's routes, answering as the reference does: its paths, bodies,
//! status codes and error formats (`docs/polaris/activation-reference.md` §2–§7). Here the
//! patient routes and the activation every holder uses; the ward tablets' routes in
//! [`devices`], the clinicians' in [`clinicians`]. Every failure to use an activation answers
//! the same 404, whatever the reason (unknown, used, locked, expired, wrong OTP or code), so
//! codes cannot be probed; the reason is logged.

pub mod clinicians;
pub mod devices;

use chrono::{Duration, Utc};
use lambda_http::{Request, RequestExt};
use serde_json::{json, Value};

use super::codes::{self, CODE_ALPHABET, CODE_LENGTH, OTP_ALPHABET, OTP_LENGTH};
use super::{reference_expiry, Activation, ActivationStore, Credential, Holder, NotUsable, AUTHORISATION_CODE_DAYS, PATIENT_JWT_LIFETIME};
use crate::access::audit::{record_read_by, AuditLog};
use crate::access::polaris::{PolarisSigner, SignError};
use crate::access::secrets::PepperSource;
use crate::messages::access::Caller;
pub(crate) use crate::messages::http::bearer;
use crate::messages::http::{admitted, json_body, kind, ok, only_query, path, Answer, NoCaller, PolarisError};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The scopes of patient JWTs when `POLARIS_PATIENT_SCOPE` does not say: the reference's
/// sample patient scope (`run_local.sh`), what its GDM patient app needs.
pub const DEFAULT_PATIENT_SCOPE: &str = "read:gdm_patient_abbreviated read:gdm_message write:gdm_message read:gdm_bg_reading write:gdm_bg_reading \
read:gdm_medication read:gdm_question read:gdm_answer write:gdm_answer read:gdm_trustomer read:gdm_telemetry write:gdm_telemetry write:gdm_terms_agreement";
/// The scopes of clinician JWTs when `POLARIS_CLINICIAN_SCOPE` does not say: the reference's
/// sample SEND clinician scope.
pub const DEFAULT_CLINICIAN_SCOPE: &str = "read:send_clinician read:send_patient read:send_observation write:send_observation";
/// The scopes of device JWTs when `POLARIS_DEVICE_SCOPE` does not say: what signing
/// clinicians in takes, as the reference's integration tests set it.
pub const DEFAULT_DEVICE_SCOPE: &str = "read:send_entry_identifier";

/// What the activation routes need.
pub struct ActivationDeps<S, P, L> {
    pub activations: S,
    /// Derives the salt activation codes are hashed with.
    pub pepper: P,
    pub signer: PolarisSigner,
    pub audit: L,
    pub patient_scope: String,
    pub clinician_scope: String,
    pub device_scope: String,
}

impl<S: FromWiring, P: FromWiring, L: FromWiring> FromWiring for ActivationDeps<S, P, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            activations: w.build()?,
            pepper: w.build()?,
            signer: w.build()?,
            audit: w.build()?,
            patient_scope: scope_setting(w, "POLARIS_PATIENT_SCOPE", DEFAULT_PATIENT_SCOPE),
            clinician_scope: scope_setting(w, "POLARIS_CLINICIAN_SCOPE", DEFAULT_CLINICIAN_SCOPE),
            device_scope: scope_setting(w, "POLARIS_DEVICE_SCOPE", DEFAULT_DEVICE_SCOPE),
        })
    }
}

fn scope_setting(w: &Wiring, name: &'static str, default: &str) -> String {
    w.settings.optional(name).filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_owned())
}

const NOT_FOUND: &str = "Could not find relevant activation";
const BAD_COMBINATION: &str = "Invalid combination of patient_id and code";
/// Tries this many times when another request changed the same records first.
const ATTEMPTS: usize = 3;

pub(crate) fn message(status: u16, text: &str) -> PolarisError {
    PolarisError::Message { status, message: text.to_owned() }
}

fn unavailable(e: &dyn std::fmt::Display) -> PolarisError {
    tracing::error!(error = %e, "activation unavailable");
    message(503, "Service unavailable")
}

/// The caller, if their token is good and holds `scope` (403 otherwise).
pub(crate) fn with_scope(caller: Result<Caller, NoCaller>, scope: &str) -> Result<Caller, PolarisError> {
    caller.ok().filter(|c| c.has(scope)).ok_or_else(PolarisError::forbidden)
}

/// A route without body or query parameters: the caller, if they hold `scope`.
fn caller_with(request: &Request, scope: &str) -> Result<Caller, PolarisError> {
    with_scope(admitted(request)?, scope)
}

/// The type of a body's field, as the reference's OpenAPI document gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Text,
    /// A string or null.
    NullableText,
    Bool,
    /// A list of strings.
    TextList,
}

impl Field {
    fn admits(self, v: &Value) -> Result<(), &'static str> {
        match (self, v) {
            (Self::Text | Self::NullableText, Value::String(_)) | (Self::NullableText, Value::Null) | (Self::Bool, Value::Bool(_)) => Ok(()),
            (Self::TextList, Value::Array(_)) => Ok(()),
            (Self::Text | Self::NullableText, _) => Err("string"),
            (Self::Bool, _) => Err("boolean"),
            (Self::TextList, _) => Err("array"),
        }
    }
}

/// A JSON body as connexion checks it against the reference's schema: an object, with the
/// `required` fields, each of `fields` of its type (other fields pass, as in the schema).
pub(crate) fn checked_body(request: &Request, required: &[&str], fields: &[(&str, Field)]) -> Result<serde_json::Map<String, Value>, PolarisError> {
    let body = json_body(request)?;
    let Value::Object(given) = body else { return Err(PolarisError::schema(format!("{body} is not of type 'object'"))) };
    if let Some(missing) = required.iter().find(|k| !given.contains_key(**k)) {
        return Err(PolarisError::schema(format!("'{missing}' is a required property")));
    }
    for (name, field) in fields {
        let Some(value) = given.get(*name) else { continue };
        field.admits(value).map_err(|expected| PolarisError::schema(format!("{value} is not of type '{expected}' - '{name}'")))?;
        if let (Field::TextList, Value::Array(items)) = (field, value) {
            if let Some((i, item)) = items.iter().enumerate().find(|(_, item)| !item.is_string()) {
                return Err(PolarisError::schema(format!("{item} is not of type 'string' - '{name}/{i}'")));
            }
        }
    }
    Ok(given)
}

/// The first field of `given` that is not one of `fields`.
fn unknown_field<'a>(given: &'a serde_json::Map<String, Value>, fields: &[(&str, Field)]) -> Option<&'a String> {
    given.keys().find(|k| !fields.iter().any(|(name, _)| name == k))
}

/// The reference's refusal, on creation, of a field its model does not have (a `KeyError`, quoted).
pub(crate) fn unexpected_key(given: &serde_json::Map<String, Value>, fields: &[(&str, Field)]) -> Result<(), PolarisError> {
    match unknown_field(given, fields) {
        None => Ok(()),
        Some(extra) => {
            let body = Value::Object(given.clone());
            Err(message(400, &format!("\"Request body '{body}' contains unexpected key: {extra}\"")))
        }
    }
}

/// The reference's refusal, on an update, of a field that may not change.
pub(crate) fn only_updatable(given: &serde_json::Map<String, Value>, fields: &[(&str, Field)]) -> Result<(), PolarisError> {
    match unknown_field(given, fields) {
        None => Ok(()),
        Some(extra) => Err(message(400, &format!("{extra} can not be updated"))),
    }
}

/// A JWT naming `metadata` (the holder's ids) with `scope`, valid `lifetime`.
pub(crate) async fn mint<S, P, L>(deps: &ActivationDeps<S, P, L>, metadata: &[(&str, &str)], scope: &str, lifetime: Duration) -> Result<String, PolarisError> {
    deps.signer.mint(metadata, scope, lifetime).await.map_err(sign_failure)
}

fn sign_failure(e: SignError) -> PolarisError {
    match e {
        SignError::Key(e) => PolarisError::from(e),
        other => unavailable(&other),
    }
}

/// Whether `code` is the holder's authorisation code, still good at `now`.
pub(crate) fn authorised(credential: Option<&Credential>, code: &str, now: chrono::DateTime<Utc>) -> bool {
    let Some(c) = credential else { return false };
    match (&c.authorisation_hash, c.authorisation_expires) {
        (Some(hash), Some(expires)) => now <= expires && codes::verify_secret(code, hash),
        _ => false,
    }
}

/// The `x-authorisation-code` header (400 as connexion answers without it).
pub(crate) fn authorisation_header(request: &Request) -> Result<&str, PolarisError> {
    request
        .headers()
        .get("x-authorisation-code")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| PolarisError::schema("Missing header parameter 'x-authorisation-code'"))
}

/// Opens `activation` for its holder, replacing the one still open; false if others changed
/// the holder's records first.
async fn open_for<S: ActivationStore>(store: &S, activation: &Activation) -> Result<bool, StoreError> {
    let current = store.credential(&activation.holder).await?.unwrap_or_else(|| Credential::none(activation.holder.clone()));
    let replaced = current.open_code_key.clone();
    let credential = Credential { open_code_key: Some(activation.code_key.clone()), version: current.version + 1, ..current };
    store.open(activation, replaced.as_deref(), &credential).await
}

/// Completes `activation` at `now`: its holder gets a new authorisation code,
/// which replaces the last. None if others changed its records first.
async fn complete<S: ActivationStore>(store: &S, mut activation: Activation, now: chrono::DateTime<Utc>) -> Result<Option<String>, StoreError> {
    let authorisation_code = codes::random_string(CODE_ALPHABET, CODE_LENGTH)?;
    let current = store.credential(&activation.holder).await?.unwrap_or_else(|| Credential::none(activation.holder.clone()));
    let credential = Credential {
        open_code_key: current.open_code_key.clone().filter(|open| *open != activation.code_key),
        authorisation_hash: Some(codes::hash_secret(&authorisation_code)?),
        authorisation_expires: Some(now + Duration::days(AUTHORISATION_CODE_DAYS)),
        version: current.version + 1,
        holder: current.holder,
    };
    activation.completed = Some(now);
    activation.modified = now;
    activation.modified_by = activation.holder.id().to_owned();
    activation.version += 1;
    Ok(store.complete(&activation, &credential).await?.then_some(authorisation_code))
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
        let activation = Activation::new(codes::code_key(&code, hasher)?, Holder::Patient(patient_id.clone()), Some(codes::hash_secret(&otp)?), caller.user_id(), now);
        if open_for(&deps.activations, &activation).await? {
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

/// A validation body as connexion checks it (an object whose `otp`, if set, is a string), or
/// None when there is none (or it is JSON `null`), which connexion lets through.
fn validation_body(request: &Request) -> Result<Option<serde_json::Map<String, Value>>, PolarisError> {
    let text = String::from_utf8_lossy(crate::platform::http::body_bytes(request));
    if text.trim().is_empty() || text.trim() == "null" {
        return Ok(None);
    }
    checked_body(request, &["otp"], &[("otp", Field::NullableText)]).map(Some)
}

/// The OTP of a patient's validation body, checked then as the reference's view checks it.
fn otp_of(body: Option<serde_json::Map<String, Value>>) -> Result<String, PolarisError> {
    let Some(fields) = body else { return Err(message(400, "Request requires a json body")) };
    let Some(Value::String(otp)) = fields.get("otp") else { return Err(message(400, "'Json request is missing a required key otp'")) };
    unexpected_key(&fields, &[("otp", Field::Text)])?;
    Ok(otp.clone())
}

/// `POST /dhos/v1/activation/{activation_code}` (no token): the patient's app exchanges the
/// code and its OTP, once, for an authorisation code. 200 `{"authorisation_code", "patient_id"}`;
/// every failure the same 404.
pub async fn validate<S: ActivationStore, P: PepperSource, L: AuditLog>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let body = validation_body(&request)?;
    only_query(&request, &["type"])?;
    match request.query_string_parameters().first("type").unwrap_or_default() {
        "" | "gdm" => validate_patient(&request, otp_of(body)?, deps).await,
        // The body is ignored: a device has no OTP.
        "send_entry" => devices::validate(&request, deps).await,
        other => Err(message(400, &format!("Invalid device type: {other}"))),
    }
}

fn refused(why: NotUsable) -> PolarisError {
    tracing::info!(reason = why.as_str(), "activation refused");
    message(404, NOT_FOUND)
}

async fn validate_patient<S: ActivationStore, P: PepperSource, L: AuditLog>(request: &Request, otp: String, deps: &ActivationDeps<S, P, L>) -> Answer {
    let key = codes::code_key(&path(request, "activation_code"), deps.pepper.hasher().await?)?;
    for _ in 0..ATTEMPTS {
        let Some(mut activation) = deps.activations.activation(&key).await?.filter(|a| matches!(a.holder, Holder::Patient(_))) else {
            return Err(refused(NotUsable::Unknown));
        };
        let now = Utc::now();
        activation.usable(now).map_err(refused)?;
        // The attempt is counted before the OTP is checked, so that guesses sent at once cannot
        // outrun the lock: only a counted attempt gets its OTP checked.
        activation.attempts += 1;
        activation.version += 1;
        if !deps.activations.update(&activation).await? {
            continue;
        }
        if !activation.otp_hash.as_deref().is_some_and(|hash| codes::verify_secret(&otp, hash)) {
            return Err(refused(NotUsable::WrongOtp));
        }
        let patient_id = activation.holder.id().to_owned();
        if let Some(authorisation_code) = complete(&deps.activations, activation, now).await? {
            record_read_by(&deps.audit, request, &patient_id, "patient", &[patient_id.as_str()], 200).await?;
            return Ok(ok(&json!({"authorisation_code": authorisation_code, "patient_id": patient_id}), request));
        }
    }
    // Others kept changing it: as for any activation that cannot be used, the same 404.
    Err(message(404, NOT_FOUND))
}

/// `GET /dhos/v1/patient/{patient_id}/jwt` (no token; `x-authorisation-code`): a patient JWT
/// (HS512, 900 s) for the holder of the patient's authorisation code. 200 `{"jwt"}`.
pub async fn patient_jwt<S: ActivationStore, P: PepperSource, L: AuditLog>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    only_query(&request, &[])?;
    let code = authorisation_header(&request)?;
    let patient_id = path(&request, "patient_id");
    let credential = deps.activations.credential(&Holder::Patient(patient_id.clone())).await?;
    if !authorised(credential.as_ref(), code, Utc::now()) {
        tracing::info!("authorisation code refused");
        return Err(message(404, BAD_COMBINATION));
    }
    let jwt = mint(deps, &[("patient_id", &patient_id)], &deps.patient_scope, PATIENT_JWT_LIFETIME).await?;
    record_read_by(&deps.audit, &request, &patient_id, "patient", &[patient_id.as_str()], 200).await?;
    Ok(ok(&json!({"jwt": jwt}), &request))
}

/// `GET /.well-known/jwks.json` (no token): the public keys that verify the tokens this
/// platform issues as the Polaris issuer when it signs RS256 (none for HS512: a shared key is
/// never published). Verifiers may keep it five minutes.
pub async fn jwks<S, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    only_query(&request, &[])?;
    let keys = deps.signer.jwks().await.map_err(sign_failure)?;
    let body = serde_json::to_string(&keys).map_err(|e| unavailable(&e))?;
    let headers = [("cache-control", "public, max-age=300".to_owned()), ("x-request-id", crate::platform::http::RequestInfo::of(&request).request_id)];
    Ok(crate::platform::http::text_response(200, "application/json", body, &headers))
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::access::api_keys::KeyHasher;
    use crate::access::memory::MemoryAudit;
    use crate::access::polaris::tests::{ISSUER, KEY};
    use crate::access::polaris::PolarisVerifier;
    use crate::activation::memory::MemoryActivations;
    use crate::activation::{expiry_after, MAX_ATTEMPTS};
    use crate::platform::testing::{answered, patient, refused_token, Answered, ApiRequest};

    pub(crate) type Deps = ActivationDeps<MemoryActivations, KeyHasher, MemoryAudit>;

    pub(crate) fn deps() -> Deps {
        ActivationDeps {
            activations: MemoryActivations::default(),
            pepper: KeyHasher::new(b"unit-test-pepper-of-32-bytes-or-more".to_vec()),
            signer: PolarisSigner::with_key(ISSUER, KEY),
            audit: MemoryAudit::default(),
            patient_scope: "read:gdm_message write:gdm_message".into(),
            clinician_scope: DEFAULT_CLINICIAN_SCOPE.into(),
            device_scope: DEFAULT_DEVICE_SCOPE.into(),
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
        assert!(stored.otp_hash.as_deref().unwrap().starts_with("$argon2id$") && !stored.code_key.contains(&code), "only hashes are kept");

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
