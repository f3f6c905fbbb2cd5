//! Clinicians' login records (`write:send_clinician`) and the clinician JWT a ward tablet
//! gets, with its device JWT, for a clinician who signs in on it by SEND Entry identifier.

use chrono::{NaiveDate, Utc};
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value};

use super::{bearer, checked_body, message, mint, only_updatable, unexpected_key, with_scope, ActivationDeps, Field, ATTEMPTS};
use crate::activation::clinicians::{ClinicianLogin, ClinicianLoginStore};
use crate::activation::CLINICIAN_JWT_LIFETIME;
use crate::messages::http::{ok, only_query, path, Answer, PolarisError};
use crate::platform::http::text_response;
use crate::platform::http::RequestInfo;
use crate::StoreError;

const CLINICIAN_FIELDS: &[(&str, Field)] = &[
    ("clinician_id", Field::Text),
    ("send_entry_identifier", Field::NullableText),
    ("login_active", Field::Bool),
    ("products", Field::TextList),
    ("groups", Field::TextList),
    ("contract_expiry_eod_date", Field::NullableText),
];
/// What a PATCH may change: every field but the id.
const CHANGEABLE: &[(&str, Field)] = CLINICIAN_FIELDS.split_at(1).1;

/// The reference answers writes with an empty body.
fn empty(status: u16, request: &Request) -> lambda_http::Response<lambda_http::Body> {
    text_response(status, "text/html; charset=utf-8", String::new(), &[("x-request-id", RequestInfo::of(request).request_id)])
}

fn names(fields: &Map<String, Value>, name: &str) -> Vec<String> {
    fields.get(name).and_then(Value::as_array).map(|l| l.iter().filter_map(Value::as_str).map(str::to_lowercase).collect()).unwrap_or_default()
}

fn identifier(fields: &Map<String, Value>) -> Option<String> {
    fields.get("send_entry_identifier").and_then(Value::as_str).map(str::to_owned)
}

/// `contract_expiry_eod_date` (`YYYY-MM-DD`; empty or null: none).
fn contract_date(fields: &Map<String, Value>) -> Result<Option<NaiveDate>, PolarisError> {
    match fields.get("contract_expiry_eod_date").and_then(Value::as_str).filter(|d| !d.is_empty()) {
        None => Ok(None),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map(Some).map_err(|_| message(400, &format!("{d} does not match expected ISO8601 format"))),
    }
}

/// `POST /dhos/v1/clinician` (`write:send_clinician`): a clinician's login record. 201, no body;
/// 409 if the clinician has one.
pub async fn create<S: ClinicianLoginStore, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = bearer(&request)?;
    let fields = checked_body(&request, &["clinician_id", "login_active", "products"], CLINICIAN_FIELDS)?;
    only_query(&request, &[])?;
    let caller = with_scope(caller, "write:send_clinician")?;
    unexpected_key(&fields, CLINICIAN_FIELDS)?;
    let now = Utc::now();
    let login = ClinicianLogin {
        clinician_id: fields.get("clinician_id").and_then(Value::as_str).unwrap_or_default().to_owned(),
        uuid: uuid::Uuid::new_v4().to_string(),
        login_active: fields.get("login_active").and_then(Value::as_bool).unwrap_or(false),
        send_entry_identifier: identifier(&fields),
        products: names(&fields, "products"),
        groups: names(&fields, "groups"),
        contract_expiry_eod_date: contract_date(&fields)?,
        created: now,
        created_by: caller.user_id().to_owned(),
        modified: now,
        modified_by: caller.user_id().to_owned(),
        version: 1,
    };
    if !deps.activations.put_clinician(&login).await? {
        return Err(message(409, "Clinician with that clinician_id already present"));
    }
    Ok(empty(201, &request))
}

/// `PATCH /dhos/v1/clinician/{clinician_id}` (`write:send_clinician`): replaces the products,
/// groups, identifier and contract date (the last two null when left out); `login_active` only
/// if given. 200, no body.
pub async fn update<S: ClinicianLoginStore, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = bearer(&request)?;
    let fields = checked_body(&request, &["groups", "products"], CHANGEABLE)?;
    only_query(&request, &[])?;
    let caller = with_scope(caller, "write:send_clinician")?;
    only_updatable(&fields, CHANGEABLE)?;
    let contract = contract_date(&fields)?;
    let clinician_id = path(&request, "clinician_id");
    for _ in 0..ATTEMPTS {
        let mut login = deps.activations.clinician(&clinician_id).await?.ok_or_else(PolarisError::not_found)?;
        login.login_active = fields.get("login_active").and_then(Value::as_bool).unwrap_or(login.login_active);
        login.send_entry_identifier = identifier(&fields);
        login.contract_expiry_eod_date = contract;
        login.products = names(&fields, "products");
        login.groups = names(&fields, "groups");
        login.modified = Utc::now();
        login.modified_by = caller.user_id().to_owned();
        login.version += 1;
        if deps.activations.put_clinician(&login).await? {
            return Ok(empty(200, &request));
        }
    }
    Err(StoreError::new("update clinician", "the clinician kept changing").into())
}

/// `GET /dhos/v1/clinician/jwt?send_entry_identifier=` (a device JWT with
/// `read:send_entry_identifier`): a clinician JWT (900 s) naming the clinician and the tablet.
/// 404 for an unknown identifier; 403 for an inactive login, an ended contract (which turns the
/// login off) or no SEND clinician group.
pub async fn clinician_jwt<S: ClinicianLoginStore, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = bearer(&request)?;
    only_query(&request, &["send_entry_identifier"])?;
    let Some(identifier) = request.query_string_parameters().first("send_entry_identifier").map(str::to_owned) else {
        return Err(PolarisError::schema("Missing query parameter 'send_entry_identifier'"));
    };
    let caller = with_scope(caller, "read:send_entry_identifier")?;
    let Some(device_id) = caller.device_id.clone() else { return Err(PolarisError::forbidden()) };
    // An empty identifier is nobody's (the index keeps none).
    let found = if identifier.is_empty() { None } else { deps.activations.by_identifier(&identifier).await? };
    let Some(mut login) = found else {
        tracing::info!(event = "SEND entry login failure", device_id = %device_id, reason = "Clinician with provided SEND Entry identifier not found", "clinician JWT refused");
        return Err(message(404, "Invalid clinician identifier"));
    };
    let today = Utc::now().date_naive();
    if login.login_active && login.contract_ended(today) {
        login.login_active = false;
        login.modified = Utc::now();
        login.modified_by = device_id.clone();
        login.version += 1;
        // Lost to another write: that one decides next time; this sign-in is refused anyway.
        deps.activations.put_clinician(&login).await?;
    }
    if let Err(why) = login.may_sign_in(today) {
        tracing::info!(event = "SEND entry login failure", device_id = %device_id, clinician_id = %login.clinician_id, reason = why.as_str(), "clinician JWT refused");
        return Err(PolarisError::forbidden());
    }
    tracing::info!(event = "SEND entry login success", device_id = %device_id, clinician_id = %login.clinician_id, "clinician JWT issued");
    let metadata = [("clinician_id", login.clinician_id.as_str()), ("referring_device_id", device_id.as_str())];
    let jwt = mint(deps, &metadata, &deps.clinician_scope, CLINICIAN_JWT_LIFETIME).await?;
    Ok(ok(&serde_json::json!({"jwt": jwt}), &request))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::access::polaris::tests::{ISSUER, KEY};
    use crate::access::polaris::PolarisVerifier;
    use crate::activation::http::tests::{deps, Deps};
    use crate::platform::testing::{answered, Answered, ApiRequest};

    fn system() -> Value {
        json!({"authenticated": true, "polaris": true, "systemId": "s-1", "scope": "write:send_clinician"})
    }

    fn tablet(scope: &str) -> Value {
        json!({"authenticated": true, "polaris": true, "deviceId": "d-1", "scope": scope})
    }

    async fn post(deps: &Deps, body: Value) -> Answered {
        answered(create(ApiRequest::new("POST /dhos/v1/clinician").caller(system()).json(body).build(), deps).await)
    }

    async fn patch(deps: &Deps, id: &str, body: Value) -> Answered {
        answered(update(ApiRequest::new("PATCH /dhos/v1/clinician/{clinician_id}").path("clinician_id", id).caller(system()).json(body).build(), deps).await)
    }

    async fn sign_in(deps: &Deps, caller: Value, identifier: &str) -> Answered {
        answered(clinician_jwt(ApiRequest::new("GET /dhos/v1/clinician/jwt").query("send_entry_identifier", identifier).caller(caller).build(), deps).await)
    }

    #[tokio::test]
    async fn a_clinician_signs_in_on_a_tablet_until_their_login_is_turned_off() {
        let deps = deps();
        let body = json!({"clinician_id": "c-1", "login_active": true, "products": ["SEND"], "groups": ["SEND Clinician"], "send_entry_identifier": "666123", "contract_expiry_eod_date": "2999-01-01"});
        let made = post(&deps, body.clone()).await;
        assert_eq!((made.status, made.body), (201, Value::Null), "201 with an empty body");
        assert_eq!(post(&deps, body).await.body, json!({"message": "Clinician with that clinician_id already present"}));
        assert_eq!(deps.activations.clinicians.lock().unwrap()["c-1"].groups, ["send clinician"], "kept lowercased");

        let token = sign_in(&deps, tablet("read:send_entry_identifier"), "666123").await;
        assert_eq!(token.status, 200, "{}", token.body);
        let claims = PolarisVerifier::with_key(ISSUER, ISSUER, KEY).verify(token.body["jwt"].as_str().unwrap()).await.unwrap();
        assert_eq!(claims.clinician_id.as_deref(), Some("c-1"));
        assert!(claims.scopes.contains(&"read:send_patient".to_owned()));
        let raw: Value = {
            use base64::Engine;
            let payload = token.body["jwt"].as_str().unwrap().split('.').nth(1).unwrap();
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
        };
        assert_eq!(raw["metadata"], json!({"clinician_id": "c-1", "referring_device_id": "d-1"}));

        assert_eq!(sign_in(&deps, tablet("read:send_entry_identifier"), "999").await.body, json!({"message": "Invalid clinician identifier"}));
        assert_eq!(sign_in(&deps, tablet("read:send_entry_identifier"), "").await.status, 404);
        let person = json!({"authenticated": true, "polaris": true, "clinicianId": "c-2", "scope": "read:send_entry_identifier"});
        assert_eq!(sign_in(&deps, person, "666123").await.status, 403, "only a tablet signs clinicians in");
        assert_eq!(sign_in(&deps, tablet("read:send_device"), "666123").await.status, 403);

        let off = patch(&deps, "c-1", json!({"login_active": false, "products": ["send"], "groups": ["send clinician"], "send_entry_identifier": "666123"})).await;
        assert_eq!(off.status, 200);
        assert_eq!(sign_in(&deps, tablet("read:send_entry_identifier"), "666123").await.body, json!({"message": "Forbidden"}));
        let kept = deps.activations.clinicians.lock().unwrap()["c-1"].clone();
        assert_eq!(kept.contract_expiry_eod_date, None, "left out of a PATCH: cleared, as the reference does");
        assert_eq!(patch(&deps, "c-1", json!({"clinician_id": "x", "products": [], "groups": []})).await.body, json!({"message": "clinician_id can not be updated"}));
        assert_eq!(patch(&deps, "c-9", json!({"products": [], "groups": []})).await.status, 404);
        assert_eq!(patch(&deps, "c-1", json!({"products": []})).await.body["detail"], "'groups' is a required property");
    }

    #[tokio::test]
    async fn an_ended_contract_turns_the_login_off_and_only_send_groups_sign_in() {
        let deps = deps();
        post(&deps, json!({"clinician_id": "c-1", "login_active": true, "products": ["send"], "groups": ["send clinician"], "send_entry_identifier": "1", "contract_expiry_eod_date": "2020-01-01"})).await;
        post(&deps, json!({"clinician_id": "c-2", "login_active": true, "products": ["send"], "groups": ["SEND Administrator"], "send_entry_identifier": "2"})).await;
        assert_eq!(sign_in(&deps, tablet("read:send_entry_identifier"), "1").await.status, 403);
        assert!(!deps.activations.clinicians.lock().unwrap()["c-1"].login_active, "the ended contract turned the login off");
        assert_eq!(sign_in(&deps, tablet("read:send_entry_identifier"), "2").await.status, 403, "an administrator does not sign in");
        assert_eq!(post(&deps, json!({"clinician_id": "c-3", "login_active": true, "products": [], "contract_expiry_eod_date": "01/02/2020"})).await.body, json!({"message": "01/02/2020 does not match expected ISO8601 format"}));
        assert_eq!(post(&deps, json!({"clinician_id": "c-3", "login_active": true, "products": [5]})).await.body["detail"], "5 is not of type 'string' - 'products/0'");
        let missing = answered(clinician_jwt(ApiRequest::new("GET /dhos/v1/clinician/jwt").caller(tablet("read:send_entry_identifier")).build(), &deps).await);
        assert_eq!(missing.status, 400);
    }
}
