//! Connector control-plane routes (role `admin`):
//!
//! | route | function |
//! |---|---|
//! | `GET /connectors` | `connectors-list` |
//! | `GET /connectors/{connectorName}` | `connectors-get` |
//! | `PUT /connectors/{connectorName}` | `connectors-put` |
//! | `DELETE /connectors/{connectorName}` | `connectors-delete` |
//! | `GET /connectors/{c}/connections` | `connections-list` |
//! | `GET /connectors/{c}/connections/{connectionName}` | `connections-get` |
//! | `PUT /connectors/{c}/connections/{connectionName}` | `connections-put` |
//! | `DELETE /connectors/{c}/connections/{connectionName}` | `connections-delete` |
//! | `POST /connectors/{c}/connections/{connectionName}/listKeys` | `connections-list-keys` |
//! | `POST /connectors/{c}/connections/{connectionName}/regenerateKey` | `connections-regenerate-key` |
//! | `GET /connectors/{c}/mappings` | `mappings-list` |
//! | `GET /connectors/{c}/mappings/{mappingKind}` (`device` or `fhir`, `?version=`) | `mappings-get` |
//! | `PUT /connectors/{c}/mappings/{mappingKind}` | `mappings-put` |
//! | `DELETE /connectors/{c}/mappings/{mappingKind}` (every version) | `mappings-delete` |
//! | `POST /connectors/{c}/mappings/debug` | `mappings-debug` |
//! | `POST /connectors/{c}/messages` (a connection key, not a token) | `connector-messages-receive` |
//! | `GET /connectors/{c}/errors?limit=&next=` | `connector-errors` |
//!
//! `PUT` creates (201) or updates (200) from `{"identityResolutionType", "destination",
//! "enabled"}` (defaults `Lookup`, `vitalwire`, `true`); the read-only properties a `GET`
//! answers may be sent back and are ignored. Answers carry an `ETag`; `PUT` and `DELETE` honour
//! `If-Match` (`*`: any existing connector) and `PUT` `If-None-Match: *` (create only): a
//! mismatch is 409. `DELETE` takes the connector's connections and mappings with it.
//!
//! A connection is created (201, `PUT` with `{}`) with two fresh keys; `listKeys` shows them
//! with their connection strings, `regenerateKey` `{"keyName": "primary" | "secondary"}`
//! replaces one while the other keeps working. Keys never appear anywhere else.
//!
//! A mapping is the template file itself: `PUT` takes it as the body (validated: 400 with
//! every error's line and column), `GET` answers it as written; each write is a new version
//! (`ETag` and `X-Mapping-Version`), and `?version=N` reads an earlier one. `debug` runs sample
//! messages through the saved mappings (or mappings in the body) and answers measurements,
//! Observations and diagnostics; nothing is stored.

use chrono::Utc;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::connections::{new_key, Connection, ConnectionStore, Written};
use super::keys::{KeyCipher, KeyPlace, KeySlot};
use super::mappings::{MappingKind, MappingStore, StoredMapping, MAX_MAPPING_BYTES};
use super::{name_ok, Connector, ConnectorStore, Deleted, Destination, IdentityResolutionType};
use crate::access::secrets::PepperSource;
use crate::access::{require, Role};
use crate::mapping::templates::without_bom;
use crate::platform::http::{body_bytes, json_body, json_response, json_text_response, no_content, path_param, query_param, ApiError};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::platform::time::format_utc;

/// A `PUT` body. Read-only properties are accepted and ignored, so a `GET` answer can be edited
/// and sent back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectorProperties {
    identity_resolution_type: Option<String>,
    destination: Option<String>,
    enabled: Option<bool>,
    #[serde(rename = "name")]
    _name: Option<Value>,
    #[serde(rename = "provisioningState")]
    _provisioning_state: Option<Value>,
    #[serde(rename = "createdAt")]
    _created_at: Option<Value>,
    #[serde(rename = "updatedAt")]
    _updated_at: Option<Value>,
    #[serde(rename = "etag")]
    _etag: Option<Value>,
}

/// What `If-Match` / `If-None-Match` ask.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Precondition {
    None,
    /// `If-Match: *`
    Exists,
    /// `If-Match: "<etag>"` (one or more, comma-separated).
    Matches(Vec<String>),
    /// `If-None-Match: *`
    Absent,
}

fn precondition(request: &Request) -> Precondition {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    if header("if-none-match") == Some("*") {
        return Precondition::Absent;
    }
    match header("if-match") {
        None => Precondition::None,
        Some("*") => Precondition::Exists,
        // Weak tags compare as strong ones here: our tags are versions.
        Some(tags) => Precondition::Matches(tags.split(',').map(|t| t.trim().trim_start_matches("W/").to_owned()).collect()),
    }
}

impl Precondition {
    /// Whether the stored item (its etag, or `None` when there is none) satisfies it.
    fn holds(&self, etag: Option<&str>) -> bool {
        match (self, etag) {
            (Precondition::None, _) => true,
            (Precondition::Exists, found) => found.is_some(),
            (Precondition::Absent, found) => found.is_none(),
            (Precondition::Matches(tags), Some(tag)) => tags.iter().any(|t| t == tag),
            (Precondition::Matches(_), None) => false,
        }
    }
}

fn mismatch(name: &str, existing: Option<&Connector>) -> ApiError {
    match existing {
        Some(c) => ApiError::Conflict(format!("connector {name} has changed: its etag is now {}; read it again and retry", c.etag())),
        None => ApiError::Conflict(format!("connector {name} does not exist, and the request's If-Match needs it to")),
    }
}

fn connector_name(request: &Request) -> Result<String, ApiError> {
    let name = path_param(request, "connectorName")?;
    if !name_ok(&name) {
        return Err(ApiError::bad("connectorName", "must be 3-64 of letters, digits and '-', starting with a letter or digit"));
    }
    Ok(name)
}

/// A connector with its `ETag` header.
fn answer(status: u16, c: &Connector) -> Response<Body> {
    json_response(status, &c.to_json(), &[("etag", c.etag())])
}

fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(ApiError::into_response)
}

/// `GET /connectors`
pub async fn list<S: ConnectorStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let all = store.list().await?;
            Ok(json_response(200, &json!({"connectors": all.iter().map(Connector::to_json).collect::<Vec<_>>()}), &[]))
        }
        .await,
    )
}

/// `GET /connectors/{connectorName}`
pub async fn get<S: ConnectorStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let name = connector_name(&request)?;
            let c = store.get(&name).await?.ok_or_else(|| ApiError::NotFound(format!("no connector {name}")))?;
            Ok(answer(200, &c))
        }
        .await,
    )
}

/// `PUT /connectors/{connectorName}`: 201 created, 200 updated.
pub async fn put<S: ConnectorStore>(request: Request, store: &S) -> Response<Body> {
    respond(put_connector(&request, store).await)
}

async fn put_connector<S: ConnectorStore>(request: &Request, store: &S) -> Result<Response<Body>, ApiError> {
    require(request, &[Role::Admin])?;
    let name = connector_name(request)?;
    let body: ConnectorProperties = json_body(request)?;
    let identity = match body.identity_resolution_type.as_deref() {
        None => None,
        Some(t) => Some(IdentityResolutionType::named(t).ok_or_else(|| ApiError::bad("identityResolutionType", "must be Lookup, Create or LookupWithEncounter"))?),
    };
    let destination = match body.destination.as_deref() {
        None => None,
        Some(d) => Some(Destination::named(d).ok_or_else(|| {
            ApiError::bad("destination", format!("no such FHIR destination: {d}; the one destination is \"{}\" (this platform's FHIR store)", Destination::PLATFORM))
        })?),
    };
    let wanted = precondition(request);
    let existing = store.get(&name).await?;
    if !wanted.holds(existing.as_ref().map(Connector::etag).as_deref()) {
        return Err(mismatch(&name, existing.as_ref()));
    }
    let now = format_utc(Utc::now());
    let (next, status) = match &existing {
        Some(c) => (
            Connector {
                identity_resolution_type: identity.unwrap_or(c.identity_resolution_type),
                destination: destination.unwrap_or(c.destination),
                enabled: body.enabled.unwrap_or(c.enabled),
                updated_at: now,
                version: c.version + 1,
                ..c.clone()
            },
            200,
        ),
        None => (
            Connector {
                destination: destination.unwrap_or(Destination::Platform),
                enabled: body.enabled.unwrap_or(true),
                ..Connector::created(&name, identity.unwrap_or(IdentityResolutionType::Lookup), &now)
            },
            201,
        ),
    };
    // Conditional on what was read: a concurrent write in between is a conflict, never lost.
    if !store.put(&next, existing.as_ref().map(|c| c.version)).await? {
        let now = store.get(&name).await?;
        return Err(mismatch(&name, now.as_ref()));
    }
    Ok(answer(status, &next))
}

/// `DELETE /connectors/{connectorName}`: 204, with the connector's connections and mappings.
pub async fn delete<S: ConnectorStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let name = connector_name(&request)?;
            let expected = match precondition(&request) {
                Precondition::Matches(tags) => {
                    let found = store.get(&name).await?;
                    match found.as_ref().filter(|c| tags.contains(&c.etag())) {
                        Some(c) => Some(c.version),
                        None if found.is_none() => return Err(ApiError::NotFound(format!("no connector {name}"))),
                        None => return Err(mismatch(&name, found.as_ref())),
                    }
                }
                _ => None,
            };
            match store.delete(&name, expected).await? {
                Deleted::Removed { with } => {
                    tracing::info!(connector = %name, items = with, "connector deleted");
                    Ok(no_content())
                }
                Deleted::NotFound => Err(ApiError::NotFound(format!("no connector {name}"))),
                Deleted::Changed => Err(mismatch(&name, store.get(&name).await?.as_ref())),
            }
        }
        .await,
    )
}

// ---------------------------------------------------------------- connections

/// What making and showing connection keys needs.
pub struct KeyDeps<S, P, C> {
    pub store: S,
    pub pepper: P,
    pub cipher: C,
}

impl<S: FromWiring, P: FromWiring, C: FromWiring> FromWiring for KeyDeps<S, P, C> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { store: w.build()?, pepper: w.build()?, cipher: w.build()? })
    }
}

/// What showing connection keys needs (no pepper: nothing is hashed).
pub struct ShowKeyDeps<S, C> {
    pub store: S,
    pub cipher: C,
}

impl<S: FromWiring, C: FromWiring> FromWiring for ShowKeyDeps<S, C> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { store: w.build()?, cipher: w.build()? })
    }
}

fn connection_name(request: &Request) -> Result<String, ApiError> {
    let name = path_param(request, "connectionName")?;
    if !name_ok(&name) {
        return Err(ApiError::bad("connectionName", "must be 3-64 of letters, digits and '-', starting with a letter or digit"));
    }
    Ok(name)
}

/// The connection named by the path, or 404 naming what is missing.
async fn existing_connection<S: ConnectorStore + ConnectionStore>(request: &Request, store: &S) -> Result<Connection, ApiError> {
    let connector = connector_name(request)?;
    let name = connection_name(request)?;
    match store.connection(&connector, &name).await? {
        Some(c) => Ok(c),
        None if store.get(&connector).await?.is_none() => Err(ApiError::NotFound(format!("no connector {connector}"))),
        None => Err(ApiError::NotFound(format!("no connection {name} in connector {connector}"))),
    }
}

fn connection_answer(status: u16, c: &Connection) -> Response<Body> {
    json_response(status, &c.to_json(), &[("etag", c.etag())])
}

/// `GET /connectors/{c}/connections`
pub async fn list_connections<S: ConnectorStore + ConnectionStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let connector = connector_name(&request)?;
            if store.get(&connector).await?.is_none() {
                return Err(ApiError::NotFound(format!("no connector {connector}")));
            }
            let all = store.connections(&connector).await?;
            Ok(json_response(200, &json!({"connections": all.iter().map(Connection::to_json).collect::<Vec<_>>()}), &[]))
        }
        .await,
    )
}

/// `GET /connectors/{c}/connections/{connectionName}`
pub async fn get_connection<S: ConnectorStore + ConnectionStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            Ok(connection_answer(200, &existing_connection(&request, store).await?))
        }
        .await,
    )
}

/// `PUT /connectors/{c}/connections/{connectionName}`: 201 with two fresh keys, or 200 for an
/// existing connection (which keeps its keys).
pub async fn put_connection<S: ConnectorStore + ConnectionStore, P: PepperSource, C: KeyCipher>(request: Request, deps: &KeyDeps<S, P, C>) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let connector = connector_name(&request)?;
            let name = connection_name(&request)?;
            // A connection has no settable properties yet: an empty body or `{}`, or a GET
            // answer sent back.
            if !body_bytes(&request).is_empty() {
                let _: ConnectionProperties = json_body(&request)?;
            }
            existing_connector(&request, &deps.store).await?;
            let wanted = precondition(&request);
            let existing = deps.store.connection(&connector, &name).await?;
            if !wanted.holds(existing.as_ref().map(Connection::etag).as_deref()) {
                return Err(ApiError::Conflict(format!("connection {name} does not match the request's If-Match / If-None-Match")));
            }
            let now = format_utc(Utc::now());
            let (next, status) = match &existing {
                Some(c) => (Connection { updated_at: now, version: c.version + 1, ..c.clone() }, 200),
                None => {
                    let hasher = deps.pepper.hasher().await?;
                    let (_, primary) = new_key(&connector, &name, KeySlot::Primary, hasher, &deps.cipher).await?;
                    let (_, secondary) = new_key(&connector, &name, KeySlot::Secondary, hasher, &deps.cipher).await?;
                    (Connection { connector: connector.clone(), name: name.clone(), created_at: now.clone(), updated_at: now, version: 1, primary, secondary }, 201)
                }
            };
            match deps.store.put_connection(&next, existing.as_ref().map(|c| c.version)).await? {
                Written::Done => Ok(connection_answer(status, &next)),
                Written::NoConnector => Err(ApiError::NotFound(format!("no connector {connector}"))),
                Written::Changed => Err(ApiError::Conflict(format!("connection {name} changed meanwhile; read it again and retry"))),
            }
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectionProperties {
    #[serde(rename = "name")]
    _name: Option<Value>,
    #[serde(rename = "connectorName")]
    _connector_name: Option<Value>,
    #[serde(rename = "createdAt")]
    _created_at: Option<Value>,
    #[serde(rename = "updatedAt")]
    _updated_at: Option<Value>,
    #[serde(rename = "etag")]
    _etag: Option<Value>,
}

/// `DELETE /connectors/{c}/connections/{connectionName}`: 204; its keys stop working at once.
pub async fn delete_connection<S: ConnectorStore + ConnectionStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let c = existing_connection(&request, store).await?;
            if !store.delete_connection(&c.connector, &c.name).await? {
                return Err(ApiError::NotFound(format!("no connection {} in connector {}", c.name, c.connector)));
            }
            tracing::info!(connector = %c.connector, connection = %c.name, "connection deleted");
            Ok(no_content())
        }
        .await,
    )
}

/// The keys of a connection and their connection strings.
async fn keys_answer<C: KeyCipher>(request: &Request, c: &Connection, cipher: &C) -> Result<Response<Body>, ApiError> {
    let endpoint = endpoint(request, &c.connector);
    let mut body = json!({});
    for slot in [KeySlot::Primary, KeySlot::Secondary] {
        let key = cipher.decrypt(&c.key(slot).ciphertext, KeyPlace { connector: &c.connector, connection: &c.name, slot }).await?;
        body[format!("{}Key", slot.as_str())] = json!(key);
        body[format!("{}ConnectionString", slot.as_str())] =
            json!(format!("Endpoint={endpoint};ConnectorName={};ConnectionName={};SharedAccessKey={key}", c.connector, c.name));
    }
    // Secrets: never cached by a client or a proxy.
    Ok(json_response(200, &body, &[("cache-control", "no-store".to_owned())]))
}

/// Where the connector's messages go: this API's `POST /connectors/{c}/messages`.
fn endpoint(request: &Request, connector: &str) -> String {
    use lambda_http::RequestExt;
    let host = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
        _ => None,
    }
    .or_else(|| request.headers().get("host").and_then(|h| h.to_str().ok()).map(str::to_owned))
    .unwrap_or_default();
    let scheme = if host.starts_with("127.0.0.1") || host.starts_with("localhost") { "http" } else { "https" };
    format!("{scheme}://{host}/connectors/{connector}/messages")
}

/// `POST /connectors/{c}/connections/{connectionName}/listKeys`
pub async fn list_keys<S: ConnectorStore + ConnectionStore, C: KeyCipher>(request: Request, deps: &ShowKeyDeps<S, C>) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let c = existing_connection(&request, &deps.store).await?;
            tracing::info!(connector = %c.connector, connection = %c.name, "connection keys listed");
            keys_answer(&request, &c, &deps.cipher).await
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Regenerate {
    key_name: String,
}

/// `POST /connectors/{c}/connections/{connectionName}/regenerateKey` with `{"keyName"}`: the
/// named key is replaced (the old one stops working), the other is kept; answers both keys.
pub async fn regenerate_key<S: ConnectorStore + ConnectionStore, P: PepperSource, C: KeyCipher>(request: Request, deps: &KeyDeps<S, P, C>) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let body: Regenerate = json_body(&request)?;
            let slot = KeySlot::named(&body.key_name).ok_or_else(|| ApiError::bad("keyName", "must be primary or secondary"))?;
            let c = existing_connection(&request, &deps.store).await?;
            let (_, fresh) = new_key(&c.connector, &c.name, slot, deps.pepper.hasher().await?, &deps.cipher).await?;
            let mut next = Connection { updated_at: format_utc(Utc::now()), version: c.version + 1, ..c.clone() };
            match slot {
                KeySlot::Primary => next.primary = fresh,
                KeySlot::Secondary => next.secondary = fresh,
            }
            match deps.store.put_connection(&next, Some(c.version)).await? {
                Written::Done => {
                    tracing::info!(connector = %c.connector, connection = %c.name, key = slot.as_str(), "connection key regenerated");
                    keys_answer(&request, &next, &deps.cipher).await
                }
                Written::NoConnector => Err(ApiError::NotFound(format!("no connector {}", c.connector))),
                Written::Changed => Err(ApiError::Conflict(format!("connection {} changed meanwhile; retry", c.name))),
            }
        }
        .await,
    )
}

// ---------------------------------------------------------------- mappings

fn mapping_kind(request: &Request) -> Result<MappingKind, ApiError> {
    let kind = path_param(request, "mappingKind")?;
    MappingKind::named(&kind).ok_or_else(|| ApiError::bad("mappingKind", "must be device or fhir"))
}

async fn existing_connector<S: ConnectorStore>(request: &Request, store: &S) -> Result<String, ApiError> {
    let name = connector_name(request)?;
    match store.get(&name).await? {
        Some(_) => Ok(name),
        None => Err(ApiError::NotFound(format!("no connector {name}"))),
    }
}

fn mapping_summary(m: &StoredMapping) -> Value {
    json!({"kind": m.kind.as_str(), "version": m.version, "updatedAt": m.updated_at, "etag": m.etag()})
}

/// `GET /connectors/{c}/mappings`: the latest version of each mapping the connector has.
pub async fn list_mappings<S: ConnectorStore + MappingStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let connector = existing_connector(&request, store).await?;
            let mut all = Vec::new();
            for kind in MappingKind::ALL {
                all.extend(store.mapping(&connector, kind, None).await?.as_ref().map(mapping_summary));
            }
            Ok(json_response(200, &json!({"mappings": all}), &[]))
        }
        .await,
    )
}

/// `GET /connectors/{c}/mappings/{mappingKind}[?version=N]`: the template file as written.
pub async fn get_mapping<S: ConnectorStore + MappingStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let kind = mapping_kind(&request)?;
            let version = match query_param(&request, "version") {
                None => None,
                Some(v) => Some(v.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| ApiError::bad("version", "must be a version number from 1"))?),
            };
            let connector = existing_connector(&request, store).await?;
            let m = store.mapping(&connector, kind, version).await?.ok_or_else(|| match version {
                Some(v) => ApiError::NotFound(format!("connector {connector} has no {} mapping version {v}", kind.as_str())),
                None => ApiError::NotFound(format!("connector {connector} has no {} mapping yet", kind.as_str())),
            })?;
            let headers = [("etag", m.etag()), ("x-mapping-version", m.version.to_string())];
            Ok(json_text_response(200, m.text, &headers))
        }
        .await,
    )
}

/// `PUT /connectors/{c}/mappings/{mappingKind}` with the template file: 201 for the first
/// version, 200 for a later one; 400 with every error's line and column.
pub async fn put_mapping<S: ConnectorStore + MappingStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let kind = mapping_kind(&request)?;
            let bytes = body_bytes(&request);
            if bytes.is_empty() {
                return Err(ApiError::bad("body", "the body is the mapping's template file"));
            }
            if bytes.len() > MAX_MAPPING_BYTES {
                return Err(ApiError::bad("body", format!("a mapping file may have at most {MAX_MAPPING_BYTES} bytes")));
            }
            let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad("body", "a mapping file is UTF-8 text"))?;
            let text = without_bom(text);
            let problems = kind.problems(text);
            if !problems.is_empty() {
                return Ok(refused_mapping(kind, &problems));
            }
            let connector = existing_connector(&request, store).await?;
            let latest = store.mapping(&connector, kind, None).await?;
            let wanted = precondition(&request);
            if !wanted.holds(latest.as_ref().map(StoredMapping::etag).as_deref()) {
                return Err(ApiError::Conflict(format!(
                    "the {} mapping does not match the request's If-Match / If-None-Match (its etag is {})",
                    kind.as_str(),
                    latest.as_ref().map_or("none".to_owned(), StoredMapping::etag)
                )));
            }
            let next = StoredMapping {
                connector: connector.clone(),
                kind,
                version: latest.as_ref().map_or(1, |m| m.version + 1),
                text: text.to_owned(),
                updated_at: format_utc(Utc::now()),
            };
            match store.put_mapping(&next).await? {
                Written::Done => {
                    let status = if next.version == 1 { 201 } else { 200 };
                    Ok(json_response(status, &mapping_summary(&next), &[("etag", next.etag()), ("x-mapping-version", next.version.to_string())]))
                }
                Written::NoConnector => Err(ApiError::NotFound(format!("no connector {connector}"))),
                Written::Changed => Err(ApiError::Conflict(format!("another write made version {} of the {} mapping first; read it and retry", next.version, kind.as_str()))),
            }
        }
        .await,
    )
}

/// At most this many sample messages per debugging run.
pub const MAX_DEBUG_MESSAGES: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DebugRequest {
    messages: Vec<Value>,
    #[serde(default)]
    wrap: bool,
    device_mapping: Option<Value>,
    fhir_mapping: Option<Value>,
    patient_id: Option<String>,
}

/// A mapping for a debugging run: the one in the body (positions refer to it pretty-printed),
/// else the connector's latest.
async fn debug_mapping<S: MappingStore>(store: &S, connector: &str, kind: MappingKind, given: Option<&Value>) -> Result<Option<String>, ApiError> {
    match given {
        Some(v) => Ok(Some(serde_json::to_string_pretty(v).map_err(|e| ApiError::bad("body", e.to_string()))?)),
        None => Ok(store.mapping(connector, kind, None).await?.map(|m| m.text)),
    }
}

/// `POST /connectors/{c}/mappings/debug` with `{"messages": [...], "wrap"?, "deviceMapping"?,
/// "fhirMapping"?, "patientId"?}`: `{"measurements", "bundle", "diagnostics", "failed"}`.
pub async fn debug_mappings<S: ConnectorStore + MappingStore>(request: Request, store: &S) -> Response<Body> {
    use crate::mapping::content::DeviceMapping;
    use crate::mapping::debugger::{self, ConvertOptions, Message};
    use crate::mapping::fhir_templates::FhirMapping;
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let body: DebugRequest = json_body(&request)?;
            if body.messages.is_empty() || body.messages.len() > MAX_DEBUG_MESSAGES {
                return Err(ApiError::bad("messages", format!("give 1 to {MAX_DEBUG_MESSAGES} sample messages")));
            }
            let connector = existing_connector(&request, store).await?;
            let device_text = debug_mapping(store, &connector, MappingKind::Device, body.device_mapping.as_ref())
                .await?
                .ok_or_else(|| ApiError::bad("deviceMapping", format!("connector {connector} has no device mapping: give one as deviceMapping")))?;
            let device = match DeviceMapping::parse(&device_text) {
                Ok(m) => m,
                Err(problems) => return Ok(refused_mapping(MappingKind::Device, &problems)),
            };
            let fhir = match debug_mapping(store, &connector, MappingKind::Fhir, body.fhir_mapping.as_ref()).await? {
                None => None,
                Some(text) => match FhirMapping::parse(&text) {
                    Ok(m) => Some(m),
                    Err(problems) => return Ok(refused_mapping(MappingKind::Fhir, &problems)),
                },
            };
            let messages: Vec<Message> = body
                .messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| Message { label: format!("message#{}", i + 1), message: if body.wrap { crate::mapping::measurement::wrap(m) } else { m } })
                .collect();
            let options = ConvertOptions { patient_id: body.patient_id, device_system: None, issued: Utc::now() };
            let answer = debugger::run(&device, fhir.as_ref(), &messages, &options).await;
            Ok(json_text_response(200, answer, &[]))
        }
        .await,
    )
}

/// `DELETE /connectors/{c}/mappings/{mappingKind}`: 204; the mapping goes with all its versions.
pub async fn delete_mapping<S: ConnectorStore + MappingStore>(request: Request, store: &S) -> Response<Body> {
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let kind = mapping_kind(&request)?;
            let connector = existing_connector(&request, store).await?;
            match store.delete_mapping(&connector, kind).await? {
                0 => Err(ApiError::NotFound(format!("connector {connector} has no {} mapping", kind.as_str()))),
                versions => {
                    tracing::info!(connector = %connector, kind = kind.as_str(), versions, "mapping deleted");
                    Ok(no_content())
                }
            }
        }
        .await,
    )
}

/// 400 with every problem of a refused mapping, each with line and column.
fn refused_mapping(kind: MappingKind, problems: &[crate::mapping::templates::TemplateError]) -> Response<Body> {
    let errors: Vec<Value> = problems
        .iter()
        .map(|e| json!({"line": e.position.map(|p| p.line), "column": e.position.map(|p| p.column), "pointer": e.pointer, "message": e.message.trim_end()}))
        .collect();
    let body = json!({
        "error": {"code": "BAD_REQUEST", "field": "body", "message": format!("the {} mapping has {} error(s); nothing was saved", kind.as_str(), errors.len())},
        "errors": errors,
    });
    json_response(400, &body, &[])
}

// ---------------------------------------------------------------- messages (data plane)

/// What receiving messages needs.
pub struct ReceiveDeps<S, P, Q, D> {
    pub store: S,
    pub pepper: P,
    pub queue: Q,
    pub dead_letters: D,
}

impl<S: FromWiring, P: FromWiring, Q: FromWiring, D: FromWiring> FromWiring for ReceiveDeps<S, P, Q, D> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { store: w.build()?, pepper: w.build()?, queue: w.build()?, dead_letters: w.build()? })
    }
}

/// The dead-letter source of a connector's refused messages.
pub fn dead_letter_source(connector: &str) -> String {
    format!("connector/{connector}")
}

/// `POST /connectors/{c}/messages` with `Authorization: SharedAccessKey <key>`: one JSON
/// message, a JSON array or NDJSON, each queued in the connector envelope; 202 with the count
/// and ids. A body that is too large or not JSON is refused (413, 400) and kept as a dead letter
/// of the connector with the raw body.
pub async fn receive_messages<S, P, Q, D>(request: Request, deps: &ReceiveDeps<S, P, Q, D>) -> Response<Body>
where
    S: ConnectorStore + ConnectionStore,
    P: PepperSource,
    Q: super::queue::MessageQueue,
    D: crate::dead_letters::DeadLetterStore,
{
    use super::messages::{authenticate, envelope, fresh_message_id, given_message_id, presented_key, properties, KeyRefusal, Sender, DEVICE_HEADER, MAX_BODY_BYTES};
    use super::queue::Queued;
    respond(
        async {
            let connector = connector_name(&request)?;
            let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
            let key = presented_key(header("authorization")).map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
            let (_, connection) = match authenticate(&connector, key, &deps.store, &deps.pepper).await? {
                Ok(found) => found,
                Err(refusal @ KeyRefusal::Disabled) => return Err(ApiError::Forbidden(refusal.to_string())),
                Err(refusal) => return Err(ApiError::Unauthenticated(refusal.to_string())),
            };
            let received_at = format_utc(Utc::now());
            let bytes = body_bytes(&request);
            let (source, at) = (dead_letter_source(&connector), &received_at);
            let source = &source;
            let refuse = |code: &'static str, error: ApiError| async move {
                let raw = String::from_utf8_lossy(bytes).into_owned();
                let letter = crate::dead_letters::DeadLetter::refused(source, None, code, error.to_string(), raw, at.clone());
                crate::dead_letters::keep_for_operator(&deps.dead_letters, &letter, "connector message").await;
                Err(error)
            };
            if bytes.len() > MAX_BODY_BYTES {
                return refuse("BODY_TOO_LARGE", ApiError::TooLarge(format!("the body is over {MAX_BODY_BYTES} bytes: send fewer messages per request"))).await;
            }
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => return refuse("NOT_JSON", ApiError::bad("body", "the body is not UTF-8 text")).await,
            };
            let messages = match crate::mapping::measurement::split_messages(text) {
                Ok(m) if !m.is_empty() => m,
                Ok(_) => return refuse("NO_MESSAGES", ApiError::bad("body", "the body holds no message")).await,
                Err(e) => return refuse("NOT_JSON", ApiError::bad("body", e.to_string())).await,
            };
            let props = properties(request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))));
            let given = given_message_id(header("x-vitalwire-message-id"));
            let device = match header(DEVICE_HEADER).map(str::trim) {
                None => None,
                Some(d) if !d.is_empty() && d.len() <= 128 && d.bytes().all(|b| b.is_ascii_graphic()) => Some(d),
                Some(_) => return refuse("BAD_DEVICE_ID", ApiError::bad(DEVICE_HEADER, "a device id is 1 to 128 printable ASCII characters")).await,
            };
            let sender = Sender::Connection { name: &connection.name, device };
            let mut queued = Vec::with_capacity(messages.len());
            for (i, body) in messages.into_iter().enumerate() {
                // A sender's id names the request; each of its messages gets its place in it.
                let id = match given {
                    Some(g) if i == 0 => g.to_owned(),
                    Some(g) => format!("{g}#{i}"),
                    None => fresh_message_id()?,
                };
                let message = envelope(&connector, &sender, body, props.clone(), &received_at, &id);
                queued.push(Queued { group: format!("{connector}/{}", connection.name), message_id: id, body: message.to_string() });
            }
            deps.queue.send(&queued).await?;
            tracing::info!(connector = %connector, connection = %connection.name, messages = queued.len(), "messages received");
            let ids: Vec<&str> = queued.iter().map(|q| q.message_id.as_str()).collect();
            Ok(json_response(202, &json!({"accepted": queued.len(), "messageIds": ids}), &[]))
        }
        .await,
    )
}

/// What listing a connector's errors needs.
pub struct ErrorDeps<S, D> {
    pub store: S,
    pub dead_letters: D,
}

impl<S: FromWiring, D: FromWiring> FromWiring for ErrorDeps<S, D> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { store: w.build()?, dead_letters: w.build()? })
    }
}

/// Pages of dead letters read at most for one answer filtered by `type` (each a DynamoDB
/// query of up to `limit` items), so a rare type cannot make one request read the whole table.
const MAX_FILTERED_PAGES: usize = 10;

/// `GET /connectors/{c}/errors?type=&limit=&next=`: the connector's refused messages, newest
/// first, each with its type, stage, what it blocks, reason and raw message. With `type`, only
/// that error type (an answer may then hold fewer than `limit` with a `next` to go on from).
pub async fn list_errors<S: ConnectorStore, D: crate::dead_letters::DeadLetterStore>(request: Request, deps: &ErrorDeps<S, D>) -> Response<Body> {
    use super::errors::{classify, ERROR_TYPES};
    respond(
        async {
            require(&request, &[Role::Admin])?;
            let connector = existing_connector(&request, &deps.store).await?;
            let limit = crate::platform::http::limit_param(&request, 25, 100)?;
            let wanted = query_param(&request, "type");
            if let Some(t) = &wanted {
                if !ERROR_TYPES.iter().any(|(name, _, _)| name == t) {
                    let known: Vec<&str> = ERROR_TYPES.iter().map(|(name, _, _)| *name).collect();
                    return Err(ApiError::bad("type", format!("unknown error type {t:?}; the types are {}", known.join(", "))));
                }
            }
            let source = dead_letter_source(&connector);
            let mut next = query_param(&request, "next");
            let mut errors = Vec::new();
            for _ in 0..MAX_FILTERED_PAGES {
                let page = deps.dead_letters.list(&source, limit, next.as_deref()).await?;
                next = page.next;
                for l in page.items.iter().filter(|l| wanted.as_deref().is_none_or(|t| t == l.reason_code)) {
                    let (stage, blocks) = classify(&l.reason_code);
                    let mut e = crate::dead_letters::http::dead_letter_json(l);
                    e["type"] = json!(l.reason_code);
                    e["stage"] = json!(stage.as_str());
                    e["blocks"] = json!(blocks.as_str());
                    errors.push(e);
                }
                if wanted.is_none() || !errors.is_empty() || next.is_none() {
                    break;
                }
            }
            Ok(json_response(200, &json!({"errors": errors, "next": next}), &[]))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::memory::MemoryConnectors;
    use crate::platform::testing::{admin, answered, clinician, ApiRequest};

    fn at(route: &str, name: &str) -> ApiRequest {
        ApiRequest::new(route).path("connectorName", name).caller(admin())
    }

    const PUT: &str = "PUT /connectors/{connectorName}";
    const GET: &str = "GET /connectors/{connectorName}";
    const DELETE: &str = "DELETE /connectors/{connectorName}";

    #[tokio::test]
    async fn put_creates_then_updates_with_the_etag_and_refuses_stale_writes() {
        let store = MemoryConnectors::default();
        let created = answered(put(at(PUT, "hr1").json(json!({"identityResolutionType": "Create"})).build(), &store).await);
        assert_eq!(created.status, 201);
        let c = created.body.clone();
        assert_eq!((c["identityResolutionType"].as_str(), c["destination"].as_str(), c["enabled"].as_bool(), c["etag"].as_str()), (Some("Create"), Some("vitalwire"), Some(true), Some("\"1\"")));
        assert_eq!(created.header("etag"), Some("\"1\""));

        // A GET answer, edited and sent back, with its etag.
        let mut edited = c.clone();
        edited["enabled"] = json!(false);
        let updated = answered(put(at(PUT, "hr1").header("if-match", "\"1\"").json(edited).build(), &store).await);
        assert_eq!(updated.status, 200, "{:?}", updated.body);
        let u = &updated.body;
        assert_eq!((u["enabled"].as_bool(), u["identityResolutionType"].as_str(), u["etag"].as_str()), (Some(false), Some("Create"), Some("\"2\"")));
        assert_eq!(u["createdAt"], c["createdAt"]);

        let stale = answered(put(at(PUT, "hr1").header("if-match", "\"1\"").json(json!({"enabled": true})).build(), &store).await);
        assert_eq!(stale.status, 409);
        assert!(stale.body["error"]["message"].as_str().unwrap().contains("\"2\""), "the current etag is named");
        let weak = answered(put(at(PUT, "hr1").header("if-match", "W/\"2\"").json(json!({"enabled": true})).build(), &store).await);
        assert_eq!(weak.status, 200, "a weak tag of the current version matches");
        let create_only = answered(put(at(PUT, "hr1").header("if-none-match", "*").json(json!({})).build(), &store).await);
        assert_eq!(create_only.status, 409);
        let needs_existing = answered(put(at(PUT, "new-one").header("if-match", "*").json(json!({})).build(), &store).await);
        assert_eq!(needs_existing.status, 409);
        assert!(store.connectors.lock().unwrap().get("new-one").is_none());
    }

    #[tokio::test]
    async fn bad_requests_name_their_field_and_write_nothing() {
        let store = MemoryConnectors::default();
        for (name, payload, field) in [
            ("hr1", json!({"destination": "https://fhir.example.org"}), "destination"),
            ("hr1", json!({"identityResolutionType": "lookup"}), "identityResolutionType"),
            ("hr1", json!({"colour": "red"}), "body"),
            ("x", json!({}), "connectorName"),
            ("a b c", json!({}), "connectorName"),
        ] {
            let r = answered(put(at(PUT, name).json(payload.clone()).build(), &store).await);
            assert_eq!((r.status, r.error_field()), (400, Some(field)), "{payload}");
        }
        assert_eq!(answered(put(at(PUT, "hr1").build(), &store).await).status, 400, "a body is required");
        let nurse = answered(put(ApiRequest::new(PUT).path("connectorName", "hr1").caller(clinician()).json(json!({})).build(), &store).await);
        assert_eq!(nurse.status, 403);
        assert!(store.connectors.lock().unwrap().is_empty(), "nothing written");
    }

    #[tokio::test]
    async fn get_list_and_delete_with_everything_under_it() {
        let store = MemoryConnectors::default();
        for name in ["hr1", "bp1"] {
            assert_eq!(answered(put(at(PUT, name).json(json!({})).build(), &store).await).status, 201);
        }
        store.children.lock().unwrap().insert("hr1".into(), 3);
        let listed = answered(list(ApiRequest::new("GET /connectors").caller(admin()).build(), &store).await);
        let names: Vec<&str> = listed.body["connectors"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["bp1", "hr1"]);
        let got = answered(get(at(GET, "hr1").build(), &store).await);
        assert_eq!((got.status, got.header("etag")), (200, Some("\"1\"")));
        assert_eq!(answered(get(at(GET, "zzz").build(), &store).await).status, 404);

        assert_eq!(answered(delete(at(DELETE, "hr1").header("if-match", "\"7\"").build(), &store).await).status, 409);
        assert_eq!(answered(delete(at(DELETE, "hr1").header("if-match", "\"1\"").build(), &store).await).status, 204);
        assert!(!store.children.lock().unwrap().contains_key("hr1"), "connections and mappings went with it");
        assert_eq!(answered(delete(at(DELETE, "hr1").build(), &store).await).status, 404);
        assert_eq!(answered(get(at(GET, "hr1").build(), &store).await).status, 404);
    }

    fn keyed(store: MemoryConnectors) -> KeyDeps<MemoryConnectors, crate::access::api_keys::KeyHasher, crate::connectors::memory::MemoryCipher> {
        KeyDeps { store, pepper: crate::access::api_keys::KeyHasher::new(b"pepper-pepper-pepper-pepper-pepper".to_vec()), cipher: crate::connectors::memory::MemoryCipher }
    }

    const CONNECTION: &str = "PUT /connectors/{connectorName}/connections/{connectionName}";

    fn conn(route: &str, connector: &str, connection: &str) -> ApiRequest {
        ApiRequest::new(route).path("connectorName", connector).path("connectionName", connection).caller(admin())
    }

    #[tokio::test]
    async fn connections_get_two_keys_that_rotate_one_at_a_time() {
        let deps = keyed(MemoryConnectors::default());
        let no_parent = answered(put_connection(conn(CONNECTION, "ward-7", "gw-1").json(json!({})).build(), &deps).await);
        assert_eq!(no_parent.status, 404, "no connector yet");
        assert_eq!(answered(put(at(PUT, "ward-7").json(json!({})).build(), &deps.store).await).status, 201);
        let created = answered(put_connection(conn(CONNECTION, "ward-7", "gw-1").build(), &deps).await);
        assert_eq!(created.status, 201, "{:?}", created.body);
        assert_eq!((created.body["connectorName"].as_str(), created.body["etag"].as_str()), (Some("ward-7"), Some("\"1\"")));
        assert!(created.body.get("primaryKey").is_none(), "keys only through listKeys");
        let again = answered(put_connection(conn(CONNECTION, "ward-7", "gw-1").json(created.body.clone()).build(), &deps).await);
        assert_eq!(again.status, 200);

        let show = |deps: &KeyDeps<_, _, _>| ShowKeyDeps { store: clone_store(&deps.store), cipher: crate::connectors::memory::MemoryCipher };
        let keys = answered(list_keys(conn("POST /connectors/{connectorName}/connections/{connectionName}/listKeys", "ward-7", "gw-1").build(), &show(&deps)).await);
        assert_eq!(keys.status, 200, "{:?}", keys.body);
        assert_eq!(keys.header("cache-control"), Some("no-store"));
        let primary = keys.body["primaryKey"].as_str().unwrap().to_owned();
        let secondary = keys.body["secondaryKey"].as_str().unwrap().to_owned();
        assert_ne!(primary, secondary);
        assert!(keys.body["primaryConnectionString"].as_str().unwrap().ends_with(&format!(";ConnectorName=ward-7;ConnectionName=gw-1;SharedAccessKey={primary}")));
        let secret = |k: &str| crate::connectors::keys::split(k).unwrap().1.to_owned();
        let stored = || deps.store.connections.lock().unwrap().values().next().cloned().unwrap();
        let hasher = &deps.pepper;
        assert!(stored().accepts(&secret(&primary), hasher) && stored().accepts(&secret(&secondary), hasher));

        let regenerate = |name: &str| conn("POST /connectors/{connectorName}/connections/{connectionName}/regenerateKey", "ward-7", "gw-1").json(json!({"keyName": name})).build();
        let rotated = answered(regenerate_key(regenerate("primary"), &deps).await);
        assert_eq!(rotated.status, 200);
        let new_primary = rotated.body["primaryKey"].as_str().unwrap().to_owned();
        assert_ne!(new_primary, primary);
        assert_eq!(rotated.body["secondaryKey"].as_str(), Some(secondary.as_str()), "the other key is kept");
        assert!(!stored().accepts(&secret(&primary), hasher), "the old primary stops working");
        assert!(stored().accepts(&secret(&secondary), hasher) && stored().accepts(&secret(&new_primary), hasher));
        assert_eq!(answered(regenerate_key(regenerate("tertiary"), &deps).await).error_field(), Some("keyName"));

        let listed = answered(list_connections(ApiRequest::new("GET /connectors/{connectorName}/connections").path("connectorName", "ward-7").caller(admin()).build(), &deps.store).await);
        assert_eq!(listed.body["connections"].as_array().unwrap().len(), 1);
        assert!(!listed.body.to_string().contains(&secret(&secondary)), "no key in a listing");
        let gone = answered(delete_connection(conn("DELETE /connectors/{connectorName}/connections/{connectionName}", "ward-7", "gw-1").build(), &deps.store).await);
        assert_eq!(gone.status, 204);
        let missing = answered(get_connection(conn("GET /connectors/{connectorName}/connections/{connectionName}", "ward-7", "gw-1").build(), &deps.store).await);
        assert_eq!(missing.status, 404);
        assert!(missing.body["error"]["message"].as_str().unwrap().contains("no connection gw-1"));
    }

    #[tokio::test]
    async fn deleting_a_connector_takes_its_connections() {
        let deps = keyed(MemoryConnectors::default());
        answered(put(at(PUT, "ward-7").json(json!({})).build(), &deps.store).await);
        for name in ["gw-1", "gw-2"] {
            assert_eq!(answered(put_connection(conn(CONNECTION, "ward-7", name).json(json!({})).build(), &deps).await).status, 201);
        }
        assert_eq!(answered(delete(at(DELETE, "ward-7").build(), &deps.store).await).status, 204);
        assert!(deps.store.connections.lock().unwrap().is_empty());
        let after = answered(put_connection(conn(CONNECTION, "ward-7", "gw-3").json(json!({})).build(), &deps).await);
        assert_eq!(after.status, 404, "no connection under a deleted connector");
    }

    fn clone_store(store: &MemoryConnectors) -> MemoryConnectors {
        MemoryConnectors {
            connectors: std::sync::Mutex::new(store.connectors.lock().unwrap().clone()),
            children: Default::default(),
            connections: std::sync::Mutex::new(store.connections.lock().unwrap().clone()),
            mappings: Default::default(),
        }
    }

    const MAPPING: &str = "PUT /connectors/{connectorName}/mappings/{mappingKind}";

    fn mapping(route: &str, connector: &str, kind: &str) -> ApiRequest {
        ApiRequest::new(route).path("connectorName", connector).path("mappingKind", kind).caller(admin())
    }

    #[tokio::test]
    async fn mappings_are_validated_versioned_and_read_back_as_written() {
        let store = MemoryConnectors::default();
        let device = r#"{"templateType": "CollectionContent", "template": []}"#;
        assert_eq!(answered(put_mapping(mapping(MAPPING, "ward-7", "device").body_text(device).build(), &store).await).status, 404, "no connector");
        answered(put(at(PUT, "ward-7").json(json!({})).build(), &store).await);
        let first = answered(put_mapping(mapping(MAPPING, "ward-7", "device").body_text(device).build(), &store).await);
        assert_eq!((first.status, first.body["version"].as_u64(), first.header("etag")), (201, Some(1), Some("\"1\"")));
        let second_text = "\u{feff}{\r\n  \"templateType\": \"CollectionContent\",\r\n  \"template\": []\r\n}";
        let second = answered(put_mapping(mapping(MAPPING, "ward-7", "device").header("if-match", "\"1\"").body_text(second_text).build(), &store).await);
        assert_eq!((second.status, second.body["version"].as_u64()), (200, Some(2)));
        let stale = answered(put_mapping(mapping(MAPPING, "ward-7", "device").header("if-match", "\"1\"").body_text(device).build(), &store).await);
        assert_eq!(stale.status, 409);

        let bad = "{\n  \"templateType\": \"CollectionContent\",\n  \"template\": [{\"templateType\": \"JsonPathContent\", \"template\": {\"typeName\": \"hr\", \"bogus\": 1}}]\n}";
        let refused = answered(put_mapping(mapping(MAPPING, "ward-7", "device").body_text(bad).build(), &store).await);
        assert_eq!(refused.status, 400);
        let errors = refused.body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 4, "unknown member and three missing expressions: {errors:?}");
        assert!(errors.iter().all(|e| e["line"] == 3), "{errors:?}");
        assert!(errors.iter().any(|e| e["message"] == "Could not find member 'bogus' on object of type 'JsonPathContentTemplate'."));
        let wrong_kind = answered(put_mapping(mapping(MAPPING, "ward-7", "fhir").body_text(device).build(), &store).await);
        assert_eq!(wrong_kind.status, 400, "a device mapping is not a FHIR mapping");
        assert_eq!(answered(put_mapping(mapping(MAPPING, "ward-7", "other").body_text(device).build(), &store).await).error_field(), Some("mappingKind"));

        let get_route = "GET /connectors/{connectorName}/mappings/{mappingKind}";
        let latest = get_mapping(mapping(get_route, "ward-7", "device").build(), &store).await;
        assert_eq!(latest.headers()["x-mapping-version"], "2");
        match latest.body() {
            Body::Text(t) => assert_eq!(t, &second_text['\u{feff}'.len_utf8()..], "as written, without the BOM"),
            other => panic!("{other:?}"),
        }
        let earlier = get_mapping(mapping(get_route, "ward-7", "device").query("version", "1").build(), &store).await;
        assert!(matches!(earlier.body(), Body::Text(t) if t == device), "the previous version is kept");
        assert_eq!(answered(get_mapping(mapping(get_route, "ward-7", "fhir").build(), &store).await).status, 404);
        let listed = answered(list_mappings(ApiRequest::new("GET /connectors/{connectorName}/mappings").path("connectorName", "ward-7").caller(admin()).build(), &store).await);
        assert_eq!(listed.body["mappings"], json!([{"kind": "device", "version": 2, "updatedAt": second.body["updatedAt"], "etag": "\"2\""}]));
        let remove = || mapping("DELETE /connectors/{connectorName}/mappings/{mappingKind}", "ward-7", "device").build();
        assert_eq!(answered(delete_mapping(remove(), &store).await).status, 204);
        assert_eq!(answered(get_mapping(mapping(get_route, "ward-7", "device").query("version", "1").build(), &store).await).status, 404, "every version goes");
        assert_eq!(answered(delete_mapping(remove(), &store).await).status, 404);
        answered(put_mapping(mapping(MAPPING, "ward-7", "device").body_text(device).build(), &store).await);
        assert_eq!(answered(delete(at(DELETE, "ward-7").build(), &store).await).status, 204);
        assert!(store.mappings.lock().unwrap().is_empty(), "mappings go with their connector");
    }

    #[tokio::test]
    async fn the_debugger_runs_saved_or_given_mappings_and_stores_nothing() {
        let store = MemoryConnectors::default();
        answered(put(at(PUT, "ward-7").json(json!({})).build(), &store).await);
        let debug = |body: Value| ApiRequest::new("POST /connectors/{connectorName}/mappings/debug").path("connectorName", "ward-7").caller(admin()).json(body).build();
        let hr = json!({"templateType": "CollectionContent", "template": [{"templateType": "JsonPathContent", "template": {
            "typeName": "heartrate", "typeMatchExpression": "$..[?(@hr)]", "deviceIdExpression": "$.device", "timestampExpression": "$.at",
            "values": [{"valueName": "hr", "valueExpression": "$.hr", "required": true}]}}]});
        let fhir = json!({"templateType": "CollectionFhir", "template": [{"templateType": "CodeValueFhir", "template": {
            "typeName": "heartrate", "codes": [{"code": "8867-4", "system": "http://loinc.org"}],
            "value": {"valueName": "hr", "valueType": "Quantity", "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}}]});
        let none = answered(debug_mappings(debug(json!({"messages": [{}]})), &store).await);
        assert_eq!(none.error_field(), Some("deviceMapping"), "no saved mapping, none given");
        let ran = answered(debug_mappings(debug(json!({"messages": [{"hr": 72.50, "device": "band-1", "at": "2024-05-01T10:00:00Z"}, {"pulse": 1}], "wrap": true, "deviceMapping": hr, "fhirMapping": fhir, "patientId": "pat-1"})), &store).await);
        assert_eq!(ran.status, 200, "{:?}", ran.body);
        assert_eq!(ran.body["measurements"][0]["Properties"][0]["Value"], "72.5", "as Json.NET reads a JSON number");
        let o = &ran.body["bundle"]["entry"][0]["resource"];
        assert_eq!((o["valueQuantity"]["value"].as_f64(), o["subject"]["reference"].as_str()), (Some(72.5), Some("Patient/pat-1")));
        let diagnostics: Vec<&str> = ran.body["diagnostics"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
        assert!(diagnostics.iter().any(|d| d.starts_with("message#2: no measurement")), "{diagnostics:?}");
        assert_eq!(ran.body["failed"], false);

        let bad = answered(debug_mappings(debug(json!({"messages": [{}], "deviceMapping": {"templateType": "CollectionContent", "template": [{"templateType": "Nope", "template": {}}]}})), &store).await);
        assert_eq!(bad.status, 400);
        assert_eq!(bad.body["errors"][0]["pointer"], "/template/0/templateType");
        assert_eq!(answered(debug_mappings(debug(json!({"messages": []})), &store).await).error_field(), Some("messages"));
        assert!(store.mappings.lock().unwrap().is_empty(), "nothing stored");
    }

    #[tokio::test]
    async fn messages_are_received_with_a_connection_key_and_refusals_are_kept() {
        use crate::connectors::memory::MemoryQueue;
        use crate::dead_letters::memory::MemoryDeadLetters;
        let keys = keyed(MemoryConnectors::default());
        answered(put(at(PUT, "ward-7").json(json!({})).build(), &keys.store).await);
        answered(put_connection(conn(CONNECTION, "ward-7", "gw-1").json(json!({})).build(), &keys).await);
        let show = ShowKeyDeps { store: clone_store(&keys.store), cipher: crate::connectors::memory::MemoryCipher };
        let listed = answered(list_keys(conn("POST /connectors/{connectorName}/connections/{connectionName}/listKeys", "ward-7", "gw-1").build(), &show).await);
        let key = listed.body["secondaryKey"].as_str().unwrap().to_owned();
        let deps = ReceiveDeps { store: clone_store(&keys.store), pepper: keys.pepper.clone(), queue: MemoryQueue::default(), dead_letters: MemoryDeadLetters::default() };
        let post = |auth: &str, body: &str| {
            ApiRequest::new("POST /connectors/{connectorName}/messages").path("connectorName", "ward-7").header("authorization", auth).body_text(body).build()
        };
        let auth = format!("SharedAccessKey {key}");
        let ok = answered(receive_messages(post(&auth, "{\"hr\": 70}\n{\"hr\": 71}"), &deps).await);
        assert_eq!((ok.status, ok.body["accepted"].as_u64()), (202, Some(2)), "{:?}", ok.body);
        let sent = deps.queue.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].group, "ward-7/gw-1");
        let first: Value = serde_json::from_str(&sent[0].body).unwrap();
        assert_eq!((first["Body"]["hr"].as_i64(), first["SystemProperties"]["x-vitalwire-connection"].as_str()), (Some(70), Some("gw-1")));
        assert_ne!(sent[0].message_id, sent[1].message_id);

        assert_eq!(answered(receive_messages(post("Bearer x", "{}"), &deps).await).status, 401);
        let forged = crate::connectors::keys::generate("gw-1").unwrap();
        assert_eq!(answered(receive_messages(post(&format!("SharedAccessKey {forged}"), "{}"), &deps).await).status, 401);
        let not_json = answered(receive_messages(post(&auth, "{\"hr\": "), &deps).await);
        assert_eq!((not_json.status, not_json.error_field()), (400, Some("body")));
        let huge = format!("[{}0]", "0,".repeat(crate::connectors::messages::MAX_BODY_BYTES));
        assert_eq!(answered(receive_messages(post(&auth, &huge), &deps).await).status, 413);
        let kept = deps.dead_letters.all();
        assert_eq!(kept.iter().map(|l| l.reason_code.as_str()).collect::<Vec<_>>(), ["NOT_JSON", "BODY_TOO_LARGE"]);
        assert!(kept.iter().all(|l| l.source == "connector/ward-7"));
        assert_eq!(kept[0].raw_payload, "{\"hr\": ", "the raw body is kept");
        assert_eq!(deps.queue.0.lock().unwrap().len(), 2, "nothing refused was queued");

        deps.queue.fail_next();
        let unavailable = answered(receive_messages(post(&auth, "{}"), &deps).await);
        assert_eq!(unavailable.status, 503, "the sender retries: nothing was taken");
        assert_eq!(deps.queue.0.lock().unwrap().len(), 2);

        deps.store.connectors.lock().unwrap().get_mut("ward-7").unwrap().enabled = false;
        assert_eq!(answered(receive_messages(post(&auth, "{}"), &deps).await).status, 403, "a disabled connector takes nothing");

        let errors = ErrorDeps { store: clone_store(&deps.store), dead_letters: deps.dead_letters };
        let listed = answered(list_errors(ApiRequest::new("GET /connectors/{connectorName}/errors").path("connectorName", "ward-7").caller(admin()).build(), &errors).await);
        assert_eq!(listed.status, 200);
        let types: Vec<(&str, &str)> = listed.body["errors"].as_array().unwrap().iter().map(|e| (e["type"].as_str().unwrap(), e["stage"].as_str().unwrap())).collect();
        assert_eq!(types.len(), 2);
        assert!(types.contains(&("NOT_JSON", "receive")) && types.contains(&("BODY_TOO_LARGE", "receive")), "{types:?}");
        let errors_of = |t: &str| ApiRequest::new("GET /connectors/{connectorName}/errors").path("connectorName", "ward-7").query("type", t).caller(admin()).build();
        let only = answered(list_errors(errors_of("NOT_JSON"), &errors).await);
        assert_eq!(only.body["errors"].as_array().unwrap().len(), 1);
        assert_eq!((only.body["errors"][0]["type"].as_str(), only.body["errors"][0]["blocks"].as_str()), (Some("NOT_JSON"), Some("message")));
        let unknown = answered(list_errors(errors_of("NOPE"), &errors).await);
        assert_eq!((unknown.status, unknown.error_field()), (400, Some("type")));
        let other = answered(list_errors(ApiRequest::new("GET /connectors/{connectorName}/errors").path("connectorName", "ward-9").caller(admin()).build(), &errors).await);
        assert_eq!(other.status, 404);
    }
}
