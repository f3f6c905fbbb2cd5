//! The Polaris messages API's routes, answering as the reference does (notes in
//! `docs/polaris/messages-reference.md`): its paths, bodies and status codes, its two error
//! formats (`{"message": ...}` from its own code, connexion's problem JSON from its schema
//! layer), and its order of checks: no bearer token 401, then query and body schema 400, then
//! a bad token or a missing scope or ownership 403 `{"message": "Forbidden"}`, then its own
//! checks.
//!
//! Callers: Polaris-compatibility tokens as they are (their ids, scopes and `X-Location-Ids`);
//! platform tokens as what they stand for: an admin reaches every message (the `_all` scopes),
//! a clinician is a Polaris clinician (their subject is their id) who may also activate
//! patients, and whose `X-Location-Ids` may name only locations of their clinician record
//! (otherwise 403, where the reference answers a bad token), a patient a Polaris patient (their patient id), without the `read:gdm_patient`
//! scope, which would show them other patients' callbacks. Device API keys are refused. Every answer that shows messages to or
//! from a patient is kept in the audit log.

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use super::access::Caller;
use super::{listings, new_message, patch, Message, MessageRefusal, MessageStore, PolarisTime, WireMessage};
use crate::access::audit::{record_read_by, AuditLog};
use crate::platform::http::{authorizer_context, body_bytes, json_text_response_for, text_response, HttpAnswer, RequestInfo};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// What the message routes need: the messages and the audit log (messages are patient data).
pub struct MessageDeps<S, L> {
    pub messages: S,
    pub audit: L,
}

impl<S: FromWiring, L: FromWiring> FromWiring for MessageDeps<S, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { messages: w.build()?, audit: w.build()? })
    }
}

/// Everything a message route answers other than success, in the reference's formats.
#[derive(Debug)]
pub enum PolarisError {
    /// Connexion's `application/problem+json` (schema, 401, 404, 405).
    Problem { status: u16, title: Option<&'static str>, detail: String },
    /// The reference's own `{"message": ...}` (its checks, 403, 503).
    Message { status: u16, message: String },
}

impl PolarisError {
    pub fn forbidden() -> Self {
        Self::Message { status: 403, message: "Forbidden".into() }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::Problem { status: 401, title: Some("Unauthorized"), detail: "No authorization token provided".into() }
    }

    pub(crate) fn not_found() -> Self {
        let detail = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";
        Self::Problem { status: 404, title: Some("Not Found"), detail: detail.into() }
    }

    pub(crate) fn schema(detail: impl Into<String>) -> Self {
        Self::Problem { status: 400, title: Some("Bad Request"), detail: detail.into() }
    }

    fn into_response(self) -> Response<Body> {
        match self {
            Self::Problem { status, title, detail } => {
                reference_json(status, &json!({"type": "about:blank", "title": title, "detail": detail, "status": status}), "application/problem+json", &[])
            }
            Self::Message { status, message } => reference_json(status, &json!({"message": message}), "application/json", &[]),
        }
    }
}

impl From<MessageRefusal> for PolarisError {
    fn from(refusal: MessageRefusal) -> Self {
        if refusal.is_schema() {
            Self::schema(refusal.to_string())
        } else {
            Self::Message { status: 400, message: refusal.reference_text() }
        }
    }
}

impl From<StoreError> for PolarisError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::Message { status: 503, message: "Database connection failed: Service unavailable".into() }
    }
}

impl HttpAnswer for Result<Response<Body>, PolarisError> {
    fn into_response(self) -> Response<Body> {
        self.unwrap_or_else(PolarisError::into_response)
    }
}

pub(crate) type Answer = Result<Response<Body>, PolarisError>;

/// JSON as the reference writes it (keys sorted, compact, a newline after), with the request id.
fn reference_json(status: u16, body: &Value, content_type: &str, headers: &[(&'static str, String)]) -> Response<Body> {
    text_response(status, content_type, format!("{body}\n"), headers)
}

/// 200 with the request id; a long listing compressed for clients that accept gzip.
pub(crate) fn ok(body: &impl serde::Serialize, request: &Request) -> Response<Body> {
    let mut text = serde_json::to_string(body).unwrap_or_default();
    text.push('\n');
    json_text_response_for(request, 200, "application/json", text, &[("x-request-id", RequestInfo::of(request).request_id)])
}

/// Why a request has no caller: no bearer token at all (401), or one that is refused (403,
/// answered only after the request's schema is checked, as the reference orders it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCaller {
    NoBearer,
    Refused,
}

/// Scopes of the platform's own tokens on these routes.
const ADMIN_SCOPES: &[&str] = &[
    "read:gdm_message_all",
    "write:gdm_message_all",
    "read:message_all",
    "read:gdm_patient_all",
    "read:gdm_activation",
    "write:gdm_activation",
    "read:send_device",
    "write:send_device",
    "write:send_clinician",
];
const CLINICIAN_SCOPES: &[&str] = &["read:gdm_message", "write:gdm_message", "read:gdm_activation", "write:gdm_activation"];
const PATIENT_SCOPES: &[&str] = &["read:gdm_message", "write:gdm_message"];

/// The caller, from the authorizer's context and the `X-Location-Ids` header.
pub fn caller(request: &Request) -> Result<Caller, NoCaller> {
    let context = authorizer_context(request);
    let text = |k: &str| context.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    if context.get("authenticated").and_then(Value::as_bool) != Some(true) {
        return Err(if context.get("bearer") == Some(&Value::Bool(false)) { NoCaller::NoBearer } else { NoCaller::Refused });
    }
    let location_ids = request
        .headers()
        .get("x-location-ids")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let scopes = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    if context.contains_key("polaris") {
        return Ok(Caller {
            patient_id: text("patientId"),
            clinician_id: text("clinicianId"),
            system_id: text("systemId"),
            device_id: text("deviceId"),
            scopes: text("scope").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            location_ids,
        });
    }
    let caller = match text("role").as_deref() {
        Some("admin") => Caller { system_id: text("sub"), scopes: scopes(ADMIN_SCOPES), ..Caller::default() },
        Some("clinician") => {
            // A platform clinician acts for the locations they work at (their record, which the
            // authorizer read), not for whatever the header names.
            let works_at: Vec<String> = text("locationIds").map(|l| l.split(',').map(str::to_owned).collect()).unwrap_or_default();
            if let Some(elsewhere) = location_ids.iter().find(|l| !works_at.contains(l)) {
                tracing::info!(location = %elsewhere, "X-Location-Ids names a location the clinician does not work at");
                return Err(NoCaller::Refused);
            }
            Caller { clinician_id: text("sub"), scopes: scopes(CLINICIAN_SCOPES), location_ids, ..Caller::default() }
        }
        Some("patient") => Caller { patient_id: text("patientId"), scopes: scopes(PATIENT_SCOPES), ..Caller::default() },
        // A device API key, or a token without a role.
        _ => return Err(NoCaller::Refused),
    };
    Ok(caller)
}

/// The reference's first check: a bearer token (401 without one). Whether it is good is
/// told only after the body and query are checked.
pub(crate) fn bearer(request: &Request) -> Result<Result<Caller, NoCaller>, PolarisError> {
    let caller = caller(request);
    if caller == Err(NoCaller::NoBearer) {
        return Err(PolarisError::unauthorized());
    }
    Ok(caller)
}

/// The reference's steps before its schema check: a bearer token, and no query parameter.
pub(crate) fn admitted(request: &Request) -> Result<Result<Caller, NoCaller>, PolarisError> {
    let caller = bearer(request)?;
    only_query(request, &[])?;
    Ok(caller)
}

/// Refuses query parameters other than `allowed`, as connexion's strict validation does.
pub(crate) fn only_query(request: &Request, allowed: &[&str]) -> Result<(), PolarisError> {
    use lambda_http::RequestExt;
    let mut names: Vec<&str> = request.query_string_parameters_ref().map(|q| q.iter().map(|(k, _)| k).filter(|k| !allowed.contains(k)).collect()).unwrap_or_default();
    if names.is_empty() {
        return Ok(());
    }
    names.dedup();
    Err(PolarisError::Problem { status: 400, title: None, detail: format!("Extra query parameter(s) {} not in spec", names.join(", ")) })
}

/// The JSON body, read as connexion reads it.
pub(crate) fn json_body(request: &Request) -> Result<Value, PolarisError> {
    let bytes = body_bytes(request);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PolarisError::schema("None is not of type 'object'"));
    }
    serde_json::from_slice(bytes).map_err(|_| PolarisError::schema("Request body is not valid JSON"))
}

pub(crate) fn path(request: &Request, name: &str) -> String {
    use lambda_http::RequestExt;
    request.path_parameters_ref().and_then(|p| p.first(name)).unwrap_or_default().to_owned()
}

/// The kind of caller, for the audit log.
pub(crate) fn kind(caller: &Caller) -> &'static str {
    if caller.patient_id.is_some() {
        "patient"
    } else if caller.device_id.is_some() {
        "device"
    } else if caller.clinician_id.is_some() {
        "clinician"
    } else {
        "system"
    }
}

/// Records the read of each patient's messages among `shown`.
async fn audit<L: AuditLog>(log: &L, request: &Request, caller: &Caller, shown: &[&Message], status: u16) -> Result<(), PolarisError> {
    let patients: Vec<&str> = shown
        .iter()
        .flat_map(|m| [(m.sender_type == "patient").then_some(m.sender.as_str()), (m.receiver_type == "patient").then_some(m.receiver.as_str())])
        .flatten()
        .collect();
    Ok(record_read_by(log, request, caller.user_id(), kind(caller), &patients, status).await?)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Refuses a `related_message` that names no message.
async fn check_related<S: MessageStore>(store: &S, related: Option<&String>) -> Result<(), PolarisError> {
    match related {
        Some(id) if store.get(id).await?.is_none() => Err(MessageRefusal::NoRelatedMessage(id.clone()).into()),
        _ => Ok(()),
    }
}

async fn create_message<S: MessageStore, L: AuditLog>(request: &Request, deps: &MessageDeps<S, L>) -> Result<Message, PolarisError> {
    let caller = admitted(request)?;
    let new = new_message(&json_body(request)?)?;
    let caller = caller.map_err(|_| PolarisError::forbidden())?;
    if !caller.may_send(&new) {
        return Err(PolarisError::forbidden());
    }
    check_related(&deps.messages, new.changes.related_message.as_ref()).await?;
    let message = Message::from_new(new_uuid(), new, caller.user_id(), PolarisTime::utc(chrono::Utc::now()));
    if !deps.messages.create(&message).await? {
        return Err(StoreError::new("create message", "a fresh uuid was taken").into());
    }
    Ok(message)
}

/// `POST /dhos/v2/message`: a new message (200, as the reference answers).
pub async fn create<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    Ok(ok(&create_message(&request, deps).await?.wire(), &request))
}

/// `POST /dhos/v1/message`: the same, marked deprecated as the reference marks it.
pub async fn create_v1<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    let message = create_message(&request, deps).await?;
    let headers = [
        ("x-request-id", RequestInfo::of(&request).request_id),
        ("deprecation", "true".to_owned()),
        ("link", "</dhos/v2/message>; rel=\"successor-version\"".to_owned()),
    ];
    Ok(reference_json(200, &message.to_json(), "application/json", &headers))
}

/// The message, if the caller may reach it with these scopes (404 before 403 without `_all`,
/// as the reference loads it first).
async fn reachable<S: MessageStore, L: AuditLog>(
    request: &Request,
    deps: &MessageDeps<S, L>,
    caller: &Caller,
    uuid: &str,
    scopes: (&str, &str),
) -> Result<Message, PolarisError> {
    let message = deps.messages.get(uuid).await?.ok_or_else(PolarisError::not_found)?;
    if !caller.may_reach(&message, scopes.0, scopes.1) {
        audit(&deps.audit, request, caller, &[&message], 403).await?;
        return Err(PolarisError::forbidden());
    }
    Ok(message)
}

/// `GET /dhos/v1/message/{message_id}`.
pub async fn get<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    let caller = admitted(&request)?.map_err(|_| PolarisError::forbidden())?;
    if !caller.has("read:gdm_message_all") && !caller.has("read:gdm_message") {
        return Err(PolarisError::forbidden());
    }
    let message = reachable(&request, deps, &caller, &path(&request, "message_id"), ("read:gdm_message_all", "read:gdm_message")).await?;
    audit(&deps.audit, &request, &caller, &[&message], 200).await?;
    Ok(ok(&message.wire(), &request))
}

/// Tries to write a change this many times when other changes to the same message come first.
const UPDATE_ATTEMPTS: usize = 5;

/// `PATCH /dhos/v1/message/{message_id}`: sets handshake fields; nothing else is ever changed.
pub async fn update<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    let caller = admitted(&request)?;
    let uuid = path(&request, "message_id");
    let checked = patch(&uuid, &json_body(&request)?);
    if let Err(refusal) = &checked {
        if refusal.is_schema() {
            return Err(refusal.clone().into());
        }
    }
    let caller = caller.map_err(|_| PolarisError::forbidden())?;
    if !caller.has("write:gdm_message_all") && !caller.has("write:gdm_message") {
        return Err(PolarisError::forbidden());
    }
    let mut message = reachable(&request, deps, &caller, &uuid, ("write:gdm_message_all", "write:gdm_message")).await?;
    let changes = checked?;
    check_related(&deps.messages, changes.related_message.as_ref()).await?;
    for _ in 0..UPDATE_ATTEMPTS {
        changes.apply(&mut message);
        message.modified = PolarisTime::utc(chrono::Utc::now());
        message.modified_by = caller.user_id().to_owned();
        message.version += 1;
        if deps.messages.update(&message).await? {
            audit(&deps.audit, &request, &caller, &[&message], 200).await?;
            return Ok(ok(&message.wire(), &request));
        }
        message = deps.messages.get(&uuid).await?.ok_or_else(PolarisError::not_found)?;
    }
    Err(StoreError::new("update message", "the message kept changing under the update").into())
}

/// The listings of messages by party, each its own route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Sent,
    Received,
    SentActive,
    ReceivedActive,
    ReceivedOpenCallbacks,
    SentOrReceived,
    Between,
    BetweenActive,
}

async fn list<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>, listing: Listing) -> Answer {
    let caller = admitted(&request)?.map_err(|_| PolarisError::forbidden())?;
    let (sender, receiver, unique) = (path(&request, "sender_id"), path(&request, "receiver_id"), path(&request, "unique_id"));
    let allowed = match listing {
        Listing::Sent | Listing::SentActive => caller.may_list(&[&sender]),
        Listing::Received | Listing::ReceivedActive | Listing::ReceivedOpenCallbacks => caller.may_list(&[&receiver]),
        Listing::Between | Listing::BetweenActive => caller.may_list(&[&sender, &receiver]),
        Listing::SentOrReceived => caller.may_list_either(&unique),
    };
    if !allowed {
        // A refused attempt is kept under each id asked about (those of patients are found there).
        let asked: Vec<&str> = [sender.as_str(), receiver.as_str(), unique.as_str()].into_iter().filter(|id| !id.is_empty()).collect();
        record_read_by(&deps.audit, &request, caller.user_id(), kind(&caller), &asked, 403).await?;
        return Err(PolarisError::forbidden());
    }
    let store = &deps.messages;
    let found = match listing {
        Listing::Sent => listings::sent(store, &caller, &sender).await?,
        Listing::SentActive => listings::sent_active(store, &caller, &sender).await?,
        Listing::Received => listings::received(store, &caller, &receiver).await?,
        Listing::ReceivedActive => listings::received_active(store, &caller, &receiver).await?,
        Listing::ReceivedOpenCallbacks => listings::received_open_callbacks(store, &caller, &receiver).await?,
        Listing::SentOrReceived => listings::sent_or_received(store, &caller, &unique).await?,
        Listing::Between => listings::between(store, &sender, &receiver, false).await?,
        Listing::BetweenActive => listings::between(store, &sender, &receiver, true).await?,
    };
    audit(&deps.audit, &request, &caller, &found.iter().collect::<Vec<_>>(), 200).await?;
    Ok(ok(&found.iter().map(Message::wire).collect::<Vec<_>>(), &request))
}

/// `GET /dhos/v1/sender/{sender_id}/message`.
pub async fn sent<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    list(request, deps, Listing::Sent).await
}

/// `GET /dhos/v1/receiver/{receiver_id}/message`.
pub async fn received<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    list(request, deps, Listing::Received).await
}

/// `GET /dhos/v1/sender/{sender_id}/active/message`.
pub async fn sent_active<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    list(request, deps, Listing::SentActive).await
}

/// `GET /dhos/v1/receiver/{receiver_id}/active/message`.
pub async fn received_active<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    list(request, deps, Listing::ReceivedActive).await
}

/// `GET /dhos/v1/receiver/{receiver_id}/active/callback/message`.
pub async fn received_open_callbacks<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    list(request, deps, Listing::ReceivedOpenCallbacks).await
}

/// `GET /dhos/v1/sender_or_receiver/{unique_id}/message`.
pub async fn sent_or_received<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    list(request, deps, Listing::SentOrReceived).await
}

/// `GET /dhos/v1/sender/{sender_id}/receiver/{receiver_id}/message`.
pub async fn between<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    list(request, deps, Listing::Between).await
}

/// `GET /dhos/v1/sender/{sender_id}/receiver/{receiver_id}/active/message`.
pub async fn between_active<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    list(request, deps, Listing::BetweenActive).await
}

/// `POST /dhos/v1/active/callback/message`: for a list of patient ids, each one's open callback,
/// in an object keyed by id (as the reference answers, whatever its OpenAPI document says).
pub async fn open_callbacks<S: MessageStore, L: AuditLog>(request: Request, deps: &MessageDeps<S, L>) -> Answer {
    let caller = admitted(&request)?;
    let body = json_body(&request)?;
    let Value::Array(items) = &body else { return Err(PolarisError::schema(format!("{body} is not of type 'array'"))) };
    let mut senders = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => senders.push(s.clone()),
            other => return Err(PolarisError::schema(format!("{other} is not of type 'string' - '{i}'"))),
        }
    }
    let caller = caller.map_err(|_| PolarisError::forbidden())?;
    if !caller.has("read:gdm_patient_all") && !caller.has("read:gdm_patient") {
        record_read_by(&deps.audit, &request, caller.user_id(), kind(&caller), &senders, 403).await?;
        return Err(PolarisError::forbidden());
    }
    let found = listings::open_callbacks_from(&deps.messages, &senders).await?;
    audit(&deps.audit, &request, &caller, &found.values().collect::<Vec<_>>(), 200).await?;
    let body: std::collections::BTreeMap<&str, WireMessage<'_>> = found.iter().map(|(sender, m)| (sender.as_str(), m.wire())).collect();
    Ok(ok(&body, &request))
}

/// `GET /running` (no token): the reference's liveness answer.
pub async fn running(request: Request, _: &()) -> Response<Body> {
    ok(&json!({"running": true}), &request)
}

/// `GET /version` (no token): the build number and the commit, as the reference answers them
/// (`VITALWIRE_BUILD` and `VITALWIRE_COMMIT` at build time, `unknown` otherwise).
pub async fn version(request: Request, _: &()) -> Response<Body> {
    let circle = option_env!("VITALWIRE_BUILD").unwrap_or("unknown");
    let hash = option_env!("VITALWIRE_COMMIT").unwrap_or("unknown");
    ok(&json!({"circle": circle, "hash": hash}), &request)
}

/// What the development routes need: the messages, and whether they are on at all.
pub struct DevelopmentDeps<S> {
    pub messages: S,
    /// `DEVELOPMENT_ROUTES=true`: only on the local platform, or a stack deployed with the
    /// parameter `PolarisDevelopmentRoutes=true` (off by default).
    pub enabled: bool,
}

impl<S: FromWiring> FromWiring for DevelopmentDeps<S> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { messages: w.build()?, enabled: w.settings.optional("DEVELOPMENT_ROUTES").as_deref() == Some("true") })
    }
}

/// The development routes' gate: switched on, and a system caller (the reference asks for a
/// `system_id` and no scope). Switched off, they do not exist (404).
fn development_caller<S>(request: &Request, deps: &DevelopmentDeps<S>) -> Result<Caller, PolarisError> {
    if !deps.enabled {
        return Err(PolarisError::not_found());
    }
    match caller(request) {
        Ok(c) if c.system_id.is_some() => Ok(c),
        _ => Err(PolarisError::forbidden()),
    }
}

/// What `/drop_data` needs: the development routes' and the activation records, which the
/// reference's activation service drops at the same path.
pub struct DropDataDeps<S, A> {
    pub development: DevelopmentDeps<S>,
    pub activations: A,
}

impl<S: FromWiring, A: FromWiring> FromWiring for DropDataDeps<S, A> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { development: w.build()?, activations: w.build()? })
    }
}

/// `POST /drop_data`: deletes every message and every activation record (the reference's
/// `TRUNCATE` in both services, which share this path here).
pub async fn drop_data<S: MessageStore, A: crate::activation::ActivationStore>(request: Request, deps: &DropDataDeps<S, A>) -> Answer {
    development_caller(&request, &deps.development)?;
    let started = std::time::Instant::now();
    let dropped = deps.development.messages.drop_all().await?;
    let records = deps.activations.drop_all().await?;
    tracing::info!(dropped, records, "messages and activation records dropped");
    Ok(ok(&json!({"complete": true, "time_taken": format!("{:.4}s", started.elapsed().as_secs_f64())}), &request))
}

/// `POST /create_messages`: writes a list of messages as given (the reference's seeding route
/// for its performance test), 201 with an empty body. Unlike the reference, an unknown type or
/// field is refused before anything is written.
pub async fn create_batch<S: MessageStore>(request: Request, deps: &DevelopmentDeps<S>) -> Answer {
    let caller = development_caller(&request, deps)?;
    let body = json_body(&request)?;
    let Value::Array(items) = body else { return Err(PolarisError::schema("the body is not a list of messages")) };
    let now = PolarisTime::utc(chrono::Utc::now());
    let mut messages = Vec::with_capacity(items.len());
    for item in &items {
        let new = new_message(item)?;
        messages.push(Message::from_new(new_uuid(), new, caller.user_id(), now));
    }
    deps.messages.create_many(&messages).await?;
    Ok(Response::builder().status(201).body(Body::Empty).unwrap_or_else(|_| Response::new(Body::Empty)))
}


#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::access::memory::MemoryAudit;
    use crate::messages::memory::MemoryMessages;
    use crate::platform::testing::{answered, patient, refused_token, Answered, ApiRequest};

    type Deps = MessageDeps<MemoryMessages, MemoryAudit>;

    fn deps() -> Deps {
        MessageDeps { messages: MemoryMessages::default(), audit: MemoryAudit::default() }
    }

    /// A Polaris token's caller, as the authorizer hands it on.
    fn polaris(ids: Value, scope: &str) -> Value {
        let mut context = json!({"authenticated": true, "polaris": true, "scope": scope});
        context.as_object_mut().unwrap().extend(ids.as_object().unwrap().clone());
        context
    }

    const CLINICIAN_SCOPES: &str = "read:gdm_message read:gdm_patient write:gdm_message";

    fn clinician(id: &str) -> Value {
        polaris(json!({"clinicianId": id}), CLINICIAN_SCOPES)
    }

    fn body(sender: (&str, &str), receiver: (&str, &str), value: i64) -> Value {
        json!({"sender": sender.0, "sender_type": sender.1, "receiver": receiver.0, "receiver_type": receiver.1, "content": "Please call me.", "message_type": {"value": value}})
    }

    async fn post(deps: &Deps, caller: Value, body: Value) -> Answered {
        answered(create(ApiRequest::new("POST /dhos/v2/message").caller(caller).json(body).build(), deps).await)
    }

    async fn by_id(deps: &Deps, route: &str, caller: Value, id: &str, body: Option<Value>) -> Answered {
        let mut request = ApiRequest::new(route);
        request = request.path("message_id", id).caller(caller);
        if let Some(b) = body {
            request = request.json(b);
        }
        let request = request.build();
        answered(if route.starts_with("PATCH") { update(request, deps).await } else { get(request, deps).await })
    }

    #[tokio::test]
    async fn posting_checks_the_token_the_schema_then_the_scopes_in_the_references_order() {
        let deps = deps();
        let sent = post(&deps, clinician("c-1"), body(("c-1", "clinician"), ("p-1", "patient"), 1)).await;
        assert_eq!(sent.status, 200, "{:?}", sent.body);
        assert_eq!((sent.body["created_by"].as_str(), sent.body["message_type"]["uuid"].as_str()), (Some("c-1"), Some("DHOS-MESSAGES-DOSAGE")));
        assert_eq!(sent.body["confirmed"], Value::Null);

        let no_bearer = post(&deps, json!({"authenticated": false, "error": "no bearer token", "bearer": false}), body(("c-1", "clinician"), ("p-1", "patient"), 1)).await;
        assert_eq!((no_bearer.status, no_bearer.header("content-type")), (401, Some("application/problem+json")));
        // A refused token with a bad body: the schema answers first, as in the reference.
        let bad_type = post(&deps, refused_token("the token has expired"), body(("c-1", "clinician"), ("p-1", "patient"), 4)).await;
        assert_eq!(bad_type.status, 400);
        assert_eq!(bad_type.body["detail"], "4 is not one of [0, 1, 2, 3, 5, 6, 7, 8, 9, 10] - 'message_type.value'");
        let expired = post(&deps, refused_token("the token has expired"), body(("c-1", "clinician"), ("p-1", "patient"), 1)).await;
        assert_eq!((expired.status, &expired.body), (403, &json!({"message": "Forbidden"})));
        let as_other = post(&deps, clinician("c-2"), body(("c-1", "clinician"), ("p-1", "patient"), 1)).await;
        assert_eq!(as_other.status, 403, "a clinician sends only as themselves");
        let patient_to_clinician = post(&deps, polaris(json!({"patientId": "p-1"}), "write:gdm_message"), body(("p-1", "patient"), ("c-1", "clinician"), 0)).await;
        assert_eq!(patient_to_clinician.status, 403, "with write:gdm_message a patient writes only to locations");

        let mut rubbish = body(("c-1", "clinician"), ("p-1", "patient"), 1);
        rubbish["rubbish"] = json!("x");
        let refused = post(&deps, clinician("c-1"), rubbish).await;
        assert_eq!((refused.status, &refused.body), (400, &json!({"message": "\"Property 'rubbish' not found in schema\""})));
        let mut related = body(("c-1", "clinician"), ("p-1", "patient"), 1);
        related["related_message"] = json!("nope");
        assert_eq!(post(&deps, clinician("c-1"), related).await.body["message"], "\"Cannot set 'related_message' as 'nope' is an invalid value.\"");
        let query = answered(create(ApiRequest::new("POST /dhos/v2/message").caller(clinician("c-1")).query("x", "1").json(body(("c-1", "clinician"), ("p-1", "patient"), 1)).build(), &deps).await);
        assert_eq!((query.status, query.body["detail"].as_str()), (400, Some("Extra query parameter(s) x not in spec")));
        let empty = answered(create(ApiRequest::new("POST /dhos/v2/message").caller(clinician("c-1")).build(), &deps).await);
        assert_eq!(empty.body["detail"], "None is not of type 'object'");

        let v1 = answered(create_v1(ApiRequest::new("POST /dhos/v1/message").caller(clinician("c-1")).json(body(("c-1", "clinician"), ("p-1", "patient"), 10)).build(), &deps).await);
        assert_eq!((v1.status, v1.header("deprecation"), v1.header("link")), (200, Some("true"), Some("</dhos/v2/message>; rel=\"successor-version\"")));
        assert_eq!(deps.messages.0.lock().unwrap().len(), 2, "only the accepted messages are kept");
    }

    #[tokio::test]
    async fn reading_and_patching_by_id_reach_only_the_parties_and_audit_the_patient() {
        let deps = deps();
        let sent = post(&deps, clinician("c-1"), body(("c-1", "clinician"), ("p-1", "patient"), 0)).await;
        let id = sent.body["uuid"].as_str().unwrap().to_owned();
        let own = polaris(json!({"patientId": "p-1"}), "read:gdm_message write:gdm_message");
        let read = by_id(&deps, "GET /dhos/v1/message/{message_id}", own.clone(), &id, None).await;
        assert_eq!(read.body, sent.body, "the same serialization everywhere");
        let other = by_id(&deps, "GET /dhos/v1/message/{message_id}", polaris(json!({"patientId": "p-2"}), "read:gdm_message"), &id, None).await;
        assert_eq!(other.status, 403);
        assert_eq!(by_id(&deps, "GET /dhos/v1/message/{message_id}", own.clone(), "missing", None).await.status, 404);
        let audit: Vec<(String, String, u16)> = deps.audit.0.lock().unwrap().iter().map(|r| (r.patient_id.clone(), r.subject.clone(), r.status)).collect();
        assert_eq!(audit, [("p-1".to_owned(), "p-1".to_owned(), 200), ("p-1".to_owned(), "p-2".to_owned(), 403)], "the read and the refused attempt");

        let route = "PATCH /dhos/v1/message/{message_id}";
        let confirmed = by_id(&deps, route, own.clone(), &id, Some(json!({"confirmed": "2018-02-11T11:59:50.123+03:00", "confirmed_by": "1234"}))).await;
        assert_eq!((confirmed.status, confirmed.body["confirmed"].as_str()), (200, Some("2018-02-11T11:59:50.123+03:00")));
        assert_eq!(confirmed.body["modified_by"], "p-1");
        let content = by_id(&deps, route, own.clone(), &id, Some(json!({"content": "edited"}))).await;
        assert_eq!((content.status, &content.body), (400, &json!({"message": "{'content': ['Unknown field.']}"})));
        assert_eq!(by_id(&deps, route, own.clone(), &id, Some(json!({}))).await.body, json!({"message": "'valid update parameters not found.'"}));
        let circular = by_id(&deps, route, own.clone(), &id, Some(json!({"related_message": id}))).await;
        assert_eq!(circular.body["message"], "'Cannot set property related_message, circular reference to parent.'");
        let schema = by_id(&deps, route, refused_token("bad signature"), &id, Some(json!({"retrieved": ""}))).await;
        assert_eq!((schema.status, schema.body["detail"].as_str()), (400, Some("'' is too short - 'retrieved'")));
        assert_eq!(by_id(&deps, route, polaris(json!({"patientId": "p-2"}), "write:gdm_message"), &id, Some(json!({"retrieved": "2022-01-01T10:00:00.000Z"}))).await.status, 403);
        assert_eq!(by_id(&deps, route, own, "missing", Some(json!({"retrieved": "2022-01-01T10:00:00.000Z"}))).await.status, 404);
    }

    async fn listing(deps: &Deps, route: &str, params: &[(&str, &str)], caller: Value) -> Answered {
        let mut request = ApiRequest::new(route).caller(caller);
        for (k, v) in params {
            request = request.path(k, v);
        }
        let request = request.build();
        let answer = match route {
            "GET /dhos/v1/receiver/{receiver_id}/active/message" => received_active(request, deps).await,
            "GET /dhos/v1/receiver/{receiver_id}/active/callback/message" => received_open_callbacks(request, deps).await,
            "GET /dhos/v1/sender_or_receiver/{unique_id}/message" => sent_or_received(request, deps).await,
            _ => received(request, deps).await,
        };
        answered(answer)
    }

    #[tokio::test]
    async fn the_callback_handshake_through_the_routes() {
        let deps = deps();
        let patient_token = polaris(json!({"patientId": "p-1"}), "read:gdm_message read:gdm_patient write:gdm_message write:gdm_message_all");
        let callback = post(&deps, patient_token.clone(), body(("p-1", "patient"), ("c-1", "clinician"), 5)).await;
        let id = callback.body["uuid"].as_str().unwrap().to_owned();
        let red = post(&deps, clinician("c-1"), body(("c-1", "clinician"), ("p-1", "patient"), 7)).await;
        assert_eq!(red.status, 200);

        let open = answered(open_callbacks(ApiRequest::new("POST /dhos/v1/active/callback/message").caller(clinician("c-1")).json(json!(["p-1", "p-9"])).build(), &deps).await);
        assert_eq!(open.body.as_object().unwrap().keys().collect::<Vec<_>>(), ["p-1"], "an object keyed by sender");
        assert_eq!(open.body["p-1"]["uuid"], json!(id));
        let receiver = [("receiver_id", "c-1")];
        assert_eq!(listing(&deps, "GET /dhos/v1/receiver/{receiver_id}/active/callback/message", &receiver, clinician("c-1")).await.body.as_array().unwrap().len(), 1);
        by_id(&deps, "PATCH /dhos/v1/message/{message_id}", clinician("c-1"), &id, Some(json!({"confirmed": "2022-01-01T11:00:00.000Z"}))).await;
        let open = answered(open_callbacks(ApiRequest::new("POST /dhos/v1/active/callback/message").caller(clinician("c-1")).json(json!(["p-1"])).build(), &deps).await);
        assert_eq!(open.body, json!({}), "a confirmed callback leaves the active-callback list");
        let active = listing(&deps, "GET /dhos/v1/receiver/{receiver_id}/active/message", &receiver, clinician("c-1")).await;
        assert_eq!(active.body[0]["uuid"], json!(id), "but stays active");
        assert!(listing(&deps, "GET /dhos/v1/receiver/{receiver_id}/active/callback/message", &receiver, clinician("c-1")).await.body.as_array().unwrap().is_empty());

        let mine = listing(&deps, "GET /dhos/v1/sender_or_receiver/{unique_id}/message", &[("unique_id", "p-1")], patient_token).await;
        assert_eq!(mine.body.as_array().unwrap().iter().map(|m| m["message_type"]["value"].as_i64().unwrap()).collect::<Vec<_>>(), [5], "a patient never sees the red alert");
        let theirs = listing(&deps, "GET /dhos/v1/sender_or_receiver/{unique_id}/message", &[("unique_id", "p-1")], polaris(json!({"patientId": "p-2"}), "read:gdm_message")).await;
        assert_eq!(theirs.status, 403, "patients are isolated");
        let no_scope = listing(&deps, "GET /dhos/v1/receiver/{receiver_id}/message", &receiver, polaris(json!({"clinicianId": "c-1"}), "write:gdm_message")).await;
        assert_eq!(no_scope.status, 403);
        let platform_patient = listing(&deps, "GET /dhos/v1/receiver/{receiver_id}/message", &[("receiver_id", "p-1")], patient("p-1")).await;
        assert_eq!(platform_patient.body.as_array().unwrap().len(), 1, "a platform patient token is that Polaris patient");
        let no_callbacks_for_patients = answered(open_callbacks(ApiRequest::new("POST /dhos/v1/active/callback/message").caller(patient("p-1")).json(json!(["p-2"])).build(), &deps).await);
        assert_eq!(no_callbacks_for_patients.status, 403, "a platform patient does not get read:gdm_patient");
    }

    #[tokio::test]
    async fn the_development_routes_are_off_unless_switched_on_and_only_for_systems() {
        use crate::activation::memory::MemoryActivations;
        let off = DropDataDeps { development: DevelopmentDeps { messages: MemoryMessages::default(), enabled: false }, activations: MemoryActivations::default() };
        let system = polaris(json!({"systemId": "dhos-robot"}), "");
        assert_eq!(answered(drop_data(ApiRequest::new("POST /drop_data").caller(system.clone()).build(), &off).await).status, 404);
        let on = DevelopmentDeps { messages: MemoryMessages::default(), enabled: true };
        let seed = json!([body(("c-1", "clinician"), ("p-1", "patient"), 0), body(("c-1", "clinician"), ("p-2", "patient"), 0)]);
        let request = |caller: Value| ApiRequest::new("POST /create_messages").caller(caller).json(seed.clone()).build();
        assert_eq!(answered(create_batch(request(clinician("c-1")), &on).await).status, 403, "a system caller only");
        let created = create_batch(request(system.clone()), &on).await.unwrap();
        assert_eq!(created.status(), 201);
        assert_eq!(on.messages.0.lock().unwrap().len(), 2);
        let bad = json!([body(("c-1", "clinician"), ("p-1", "patient"), 0), body(("c-1", "clinician"), ("p-1", "patient"), 4)]);
        let refused = answered(create_batch(ApiRequest::new("POST /create_messages").caller(system.clone()).json(bad).build(), &on).await);
        assert_eq!(refused.status, 400);
        assert_eq!(on.messages.0.lock().unwrap().len(), 2, "nothing of a refused batch is written");
        let activations = MemoryActivations::default();
        activations.guesses.lock().unwrap().insert("2024-03-01T10".into(), 3);
        let on = DropDataDeps { development: on, activations };
        let dropped = answered(drop_data(ApiRequest::new("POST /drop_data").caller(system).build(), &on).await);
        assert_eq!(dropped.body["complete"], true);
        assert!(dropped.body["time_taken"].as_str().unwrap().ends_with('s'));
        assert!(on.development.messages.0.lock().unwrap().is_empty());
        assert!(on.activations.guesses.lock().unwrap().is_empty(), "the activation records go too");
    }
}
