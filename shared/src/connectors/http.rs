//! Connector control-plane routes (role `admin`):
//!
//! | route | function |
//! |---|---|
//! | `GET /connectors` | `connectors-list` |
//! | `GET /connectors/{connectorName}` | `connectors-get` |
//! | `PUT /connectors/{connectorName}` | `connectors-put` |
//! | `DELETE /connectors/{connectorName}` | `connectors-delete` |
//!
//! `PUT` creates (201) or updates (200) from `{"identityResolutionType", "destination",
//! "enabled"}` (defaults `Lookup`, `vitalwire`, `true`); the read-only properties a `GET`
//! answers may be sent back and are ignored. Answers carry an `ETag`; `PUT` and `DELETE` honour
//! `If-Match` (`*`: any existing connector) and `PUT` `If-None-Match: *` (create only): a
//! mismatch is 409. `DELETE` takes the connector's connections and mappings with it.

use chrono::Utc;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{name_ok, Connector, ConnectorStore, Deleted, Destination, IdentityResolutionType, ProvisioningState};
use crate::access::{require, Role};
use crate::platform::http::{json_body, json_response, path_param, ApiError};
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
    /// Whether the stored connector (or its absence) satisfies it.
    fn holds(&self, existing: Option<&Connector>) -> bool {
        match (self, existing) {
            (Precondition::None, _) => true,
            (Precondition::Exists, found) => found.is_some(),
            (Precondition::Absent, found) => found.is_none(),
            (Precondition::Matches(tags), Some(c)) => tags.contains(&c.etag()),
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
    if !wanted.holds(existing.as_ref()) {
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
                name: name.clone(),
                identity_resolution_type: identity.unwrap_or(IdentityResolutionType::Lookup),
                destination: destination.unwrap_or(Destination::Platform),
                enabled: body.enabled.unwrap_or(true),
                provisioning_state: ProvisioningState::Succeeded,
                created_at: now.clone(),
                updated_at: now,
                version: 1,
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
                    Ok(Response::builder().status(204).body(Body::Empty).unwrap_or_else(|_| Response::new(Body::Empty)))
                }
                Deleted::NotFound => Err(ApiError::NotFound(format!("no connector {name}"))),
                Deleted::Changed => Err(mismatch(&name, store.get(&name).await?.as_ref())),
            }
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
}
