//! The ward tablets' routes (SEND Entry devices): their records (`read:send_device`,
//! `write:send_device`), their 9-digit activation codes, the activation with one
//! (`?type=send_entry`) and device JWTs for the authorisation code it gives.

use chrono::Utc;
use lambda_http::{Request, RequestExt};
use serde_json::{json, Map, Value};
use lambda_http::http::header::CONTENT_TYPE;

use super::{authorisation_header, authorised, bearer, checked_body, complete, message, mint, only_updatable, open_for, refused, unexpected_key, with_scope, ActivationDeps, Field, ATTEMPTS, NOT_FOUND};
use crate::access::audit::AuditLog;
use crate::access::secrets::PepperSource;
use crate::activation::codes::{self, DEVICE_CODE_ALPHABET, DEVICE_CODE_LENGTH};
use crate::activation::devices::{DeviceFilter, EntryDevice, EntryDeviceStore};
use crate::activation::{guess_hour, reference_expiry, Activation, ActivationStore, Holder, NotUsable, DEVICE_GUESSES_PER_HOUR, DEVICE_JWT_LIFETIME};
use crate::messages::http::{ok, only_query, path, Answer, PolarisError};
use crate::StoreError;

/// A device body's fields and their types (`DeviceRequest`, `DeviceUpdate`).
const DEVICE_FIELDS: &[(&str, Field)] = &[("location_id", Field::Text), ("description", Field::Text), ("active", Field::Bool)];

/// A tablet is listed by its location, so it must have one (DynamoDB keeps no empty key; the
/// reference would store `""`).
fn located(fields: &Map<String, Value>) -> Result<(), PolarisError> {
    if fields.get("location_id").and_then(Value::as_str).is_some_and(str::is_empty) {
        return Err(message(400, "location_id must not be empty"));
    }
    Ok(())
}

/// The reference refuses a JSON body on its device reads.
fn no_json_body(request: &Request) -> Result<(), PolarisError> {
    let json = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.trim_start().starts_with("application/json"));
    if json {
        Err(message(400, "Request should not contain a JSON body"))
    } else {
        Ok(())
    }
}

fn text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    fields.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// `POST /dhos/v1/device` (`write:send_device`): registers a ward tablet. 200 `<dev>`.
pub async fn create<S: EntryDeviceStore, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = bearer(&request)?;
    let fields = checked_body(&request, &["description", "location_id"], DEVICE_FIELDS)?;
    only_query(&request, &["type"])?;
    let caller = with_scope(caller, "write:send_device")?;
    unexpected_key(&fields, DEVICE_FIELDS)?;
    located(&fields)?;
    let now = Utc::now();
    let device = EntryDevice {
        uuid: uuid::Uuid::new_v4().to_string(),
        location_id: text(&fields, "location_id").unwrap_or_default(),
        description: text(&fields, "description").unwrap_or_default(),
        active: fields.get("active").and_then(Value::as_bool).unwrap_or(true),
        created: now,
        created_by: caller.user_id().to_owned(),
        modified: now,
        modified_by: caller.user_id().to_owned(),
        version: 1,
    };
    if !deps.activations.put_device(&device).await? {
        return Err(StoreError::new("register device", "a fresh uuid was taken").into());
    }
    Ok(ok(&device.to_json(), &request))
}

/// `GET /dhos/v1/device` (`read:send_device`): the active tablets (`?active=false`: the
/// inactive ones), optionally only at the comma-separated `?location_id=`.
pub async fn list<S: EntryDeviceStore, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = bearer(&request)?;
    only_query(&request, &["location_id", "active"])?;
    let query = request.query_string_parameters();
    let active = match query.first("active").map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(PolarisError::schema("Wrong type, expected 'boolean' for query parameter 'active'")),
    };
    with_scope(caller, "read:send_device")?;
    no_json_body(&request)?;
    // No tablet has an empty location: empty names in the list match nothing.
    let locations = query.first("location_id").map(|l| l.split(',').filter(|l| !l.is_empty()).map(str::to_owned).collect());
    let devices = deps.activations.devices(&DeviceFilter { active, locations }).await?;
    Ok(ok(&devices.iter().map(EntryDevice::to_json).collect::<Vec<_>>(), &request))
}

async fn known<S: EntryDeviceStore>(store: &S, uuid: &str) -> Result<EntryDevice, PolarisError> {
    store.device(uuid).await?.ok_or_else(PolarisError::not_found)
}

/// `GET /dhos/v1/device/{device_id}` (`read:send_device`).
pub async fn get<S: EntryDeviceStore, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = bearer(&request)?;
    only_query(&request, &[])?;
    with_scope(caller, "read:send_device")?;
    no_json_body(&request)?;
    Ok(ok(&known(&deps.activations, &path(&request, "device_id")).await?.to_json(), &request))
}

/// `PATCH /dhos/v1/device/{device_id}` (`write:send_device`): moves, renames, deactivates or
/// reactivates a tablet. 200 `<dev>` as it is now.
pub async fn update<S: EntryDeviceStore, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = bearer(&request)?;
    let fields = checked_body(&request, &[], DEVICE_FIELDS)?;
    only_query(&request, &[])?;
    let caller = with_scope(caller, "write:send_device")?;
    only_updatable(&fields, DEVICE_FIELDS)?;
    located(&fields)?;
    let uuid = path(&request, "device_id");
    for _ in 0..ATTEMPTS {
        let mut device = known(&deps.activations, &uuid).await?;
        device.location_id = text(&fields, "location_id").unwrap_or(device.location_id);
        device.description = text(&fields, "description").unwrap_or(device.description);
        device.active = fields.get("active").and_then(Value::as_bool).unwrap_or(device.active);
        device.modified = Utc::now();
        device.modified_by = caller.user_id().to_owned();
        device.version += 1;
        if deps.activations.put_device(&device).await? {
            let updated: Vec<&String> = fields.keys().collect();
            tracing::info!(event = "SEND entry device update", device_id = %uuid, clinician_id = caller.user_id(), ?updated, "device updated");
            return Ok(ok(&device.to_json(), &request));
        }
    }
    Err(StoreError::new("update device", "the device kept changing").into())
}

/// `POST /dhos/v1/device/{device_id}/activation` (`write:send_device`): a 9-digit code the
/// tablet activates with, replacing the one still open. 200 `{"code", "expires_at"}`.
pub async fn create_activation<S: EntryDeviceStore + ActivationStore, P: PepperSource, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let caller = bearer(&request)?;
    only_query(&request, &[])?;
    let caller = with_scope(caller, "write:send_device")?;
    let device = known(&deps.activations, &path(&request, "device_id")).await?;
    let hasher = deps.pepper.hasher().await?;
    for _ in 0..ATTEMPTS {
        let code = codes::random_string(DEVICE_CODE_ALPHABET, DEVICE_CODE_LENGTH)?;
        let now = Utc::now();
        let activation = Activation::new(codes::code_key(&code, hasher)?, Holder::Device(device.uuid.clone()), None, caller.user_id(), now);
        // False also when another device's open activation has drawn the same code: draw again.
        if open_for(&deps.activations, &activation).await? {
            tracing::info!(device_id = %device.uuid, "device activation opened");
            return Ok(ok(&json!({"code": code, "expires_at": reference_expiry(activation.expires)}), &request));
        }
    }
    Err(StoreError::new("open device activation", "the device's activation kept changing").into())
}

/// `POST /dhos/v1/activation/{code}?type=send_entry`: the tablet exchanges its code, once, for
/// an authorisation code. Wrong codes are counted deployment-wide; past
/// [`DEVICE_GUESSES_PER_HOUR`] every code is refused until the hour ends.
pub(super) async fn validate<S: ActivationStore, P: PepperSource, L: AuditLog>(request: &Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    let hour = guess_hour(Utc::now());
    if deps.activations.device_guesses(&hour).await? >= DEVICE_GUESSES_PER_HOUR {
        tracing::warn!(hour, "device activation closed for the hour: too many wrong codes");
        return Err(message(404, NOT_FOUND));
    }
    let key = codes::code_key(&path(request, "activation_code"), deps.pepper.hasher().await?)?;
    for _ in 0..ATTEMPTS {
        let now = Utc::now();
        let found = deps.activations.activation(&key).await?.filter(|a| matches!(a.holder, Holder::Device(_)));
        let usable = found.ok_or(NotUsable::Unknown).and_then(|a| a.usable(now).map(|()| a));
        let activation = match usable {
            Ok(a) => a,
            Err(why) => {
                deps.activations.count_device_guess(&hour).await?;
                return Err(refused(why));
            }
        };
        let device_id = activation.holder.id().to_owned();
        if let Some(authorisation_code) = complete(&deps.activations, activation, now).await? {
            tracing::info!(device_id = %device_id, "device activated");
            return Ok(ok(&json!({"authorisation_code": authorisation_code, "device_id": device_id}), request));
        }
    }
    Err(message(404, NOT_FOUND))
}

/// `GET /dhos/v1/device/{device_id}/jwt` (no token; `x-authorisation-code`): a device JWT
/// (24 h) for an active tablet holding its authorisation code; every refusal 403.
pub async fn device_jwt<S: EntryDeviceStore + ActivationStore, P, L>(request: Request, deps: &ActivationDeps<S, P, L>) -> Answer {
    only_query(&request, &[])?;
    let code = authorisation_header(&request)?;
    let uuid = path(&request, "device_id");
    let refuse = |reason: &str| {
        tracing::info!(event = "SEND entry device auth failed", device_id = %uuid, reason, "device JWT refused");
        PolarisError::forbidden()
    };
    let Some(device) = deps.activations.device(&uuid).await? else { return Err(PolarisError::forbidden()) };
    let credential = deps.activations.credential(&Holder::Device(uuid.clone())).await?;
    if credential.as_ref().is_none_or(|c| c.authorisation_hash.is_none()) {
        return Err(refuse("Device has not been activated"));
    }
    if !authorised(credential.as_ref(), code, Utc::now()) || !device.active {
        return Err(refuse("Device auth code validation failed"));
    }
    tracing::info!(event = "SEND entry device auth success", device_id = %uuid, "device JWT issued");
    let jwt = mint(deps, &[("device_id", &uuid)], &deps.device_scope, DEVICE_JWT_LIFETIME).await?;
    Ok(ok(&json!({"jwt": jwt}), &request))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::access::polaris::tests::{ISSUER, KEY};
    use crate::access::polaris::PolarisVerifier;
    use crate::activation::http::tests::{deps, Deps};
    use crate::platform::testing::{answered, Answered, ApiRequest};

    fn admin() -> Value {
        json!({"authenticated": true, "polaris": true, "systemId": "s-1", "scope": "read:send_device write:send_device"})
    }

    async fn register(deps: &Deps, location: &str) -> String {
        let made = answered(create(ApiRequest::new("POST /dhos/v1/device").caller(admin()).json(json!({"location_id": location, "description": "Ward 7 tablet"})).build(), deps).await);
        assert_eq!(made.status, 200, "{}", made.body);
        made.body["uuid"].as_str().unwrap().to_owned()
    }

    async fn activation_code(deps: &Deps, device: &str) -> Answered {
        answered(create_activation(ApiRequest::new("POST /dhos/v1/device/{device_id}/activation").path("device_id", device).caller(admin()).build(), deps).await)
    }

    async fn activate(deps: &Deps, code: &str) -> Answered {
        let request = ApiRequest::new("POST /dhos/v1/activation/{activation_code}").path("activation_code", code).query("type", "send_entry").build();
        answered(super::super::validate(request, deps).await)
    }

    async fn jwt(deps: &Deps, device: &str, code: &str) -> Answered {
        answered(device_jwt(ApiRequest::new("GET /dhos/v1/device/{device_id}/jwt").path("device_id", device).header("x-authorisation-code", code).build(), deps).await)
    }

    #[tokio::test]
    async fn a_tablet_is_registered_activated_once_and_gets_device_jwts_while_active() {
        let deps = deps();
        let device = register(&deps, "L1").await;
        let issued = activation_code(&deps, &device).await;
        let code = issued.body["code"].as_str().unwrap().to_owned();
        assert!(code.len() == 9 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        assert!(!deps.activations.activations.lock().unwrap().keys().any(|k| k.contains(&code)), "kept hashed");
        assert_eq!(jwt(&deps, &device, "ANYTHING").await.status, 403, "never activated");

        let activated = activate(&deps, &code).await;
        assert_eq!(activated.status, 200, "{}", activated.body);
        assert_eq!(activated.body["device_id"], device.as_str());
        let authorisation = activated.body["authorisation_code"].as_str().unwrap().to_owned();
        assert_eq!(activate(&deps, &code).await.body, json!({"message": NOT_FOUND}), "single use");

        let token = jwt(&deps, &device, &authorisation).await;
        assert_eq!(token.status, 200);
        let claims = PolarisVerifier::with_key(ISSUER, ISSUER, KEY).verify(token.body["jwt"].as_str().unwrap()).await.unwrap();
        assert_eq!((claims.device_id.as_deref(), claims.scopes), (Some(device.as_str()), vec!["read:send_entry_identifier".to_owned()]));
        assert_eq!(jwt(&deps, &device, "WRONG").await.body, json!({"message": "Forbidden"}));
        assert_eq!(jwt(&deps, "no-such-device", &authorisation).await.status, 403);

        let patch = ApiRequest::new("PATCH /dhos/v1/device/{device_id}").path("device_id", &device).caller(admin()).json(json!({"active": false})).build();
        let patched = answered(update(patch, &deps).await);
        assert_eq!((patched.body["active"].clone(), patched.body["location_id"].clone()), (json!(false), json!("L1")));
        assert_eq!(jwt(&deps, &device, &authorisation).await.status, 403, "an inactive tablet gets no JWT");
    }

    #[tokio::test]
    async fn asking_again_replaces_the_code_and_wrong_codes_close_device_activation_for_the_hour() {
        // Wrong codes are counted per UTC hour of the wall clock: run again if the hour turned
        // during the attempt (a CI run at 00:59:59 once saw the count start over).
        for _ in 0..3 {
            let hour = guess_hour(Utc::now());
            let deps = deps();
            let device = register(&deps, "L1").await;
            let first = activation_code(&deps, &device).await.body["code"].as_str().unwrap().to_owned();
            let second = activation_code(&deps, &device).await.body["code"].as_str().unwrap().to_owned();
            assert_eq!(activate(&deps, &first).await.status, 404, "the replaced code no longer works (a wrong code: one)");
            for _ in 2..DEVICE_GUESSES_PER_HOUR {
                assert_eq!(activate(&deps, "000000000").await.body, json!({"message": NOT_FOUND}));
            }
            let under_the_limit = activate(&deps, &second).await.status;
            let third = activation_code(&deps, &device).await.body["code"].as_str().unwrap().to_owned();
            let past_it = (activate(&deps, "000000000").await.status, activate(&deps, &third).await.status);
            if guess_hour(Utc::now()) != hour {
                continue;
            }
            assert_eq!(under_the_limit, 200, "the right code still works under the limit");
            assert_eq!(past_it, (404, 404), "past the limit even a right code is refused this hour");
            deps.activations.guesses.lock().unwrap().clear();
            assert_eq!(activate(&deps, &third).await.status, 200, "and works again the next hour");
            return;
        }
        panic!("the hour turned during every attempt");
    }

    #[tokio::test]
    async fn devices_are_listed_by_activity_and_location_and_bodies_checked_as_the_reference() {
        let deps = deps();
        for location in ["L1", "L1", "L2", "L3"] {
            register(&deps, location).await;
        }
        let off = register(&deps, "L1").await;
        answered(update(ApiRequest::new("PATCH /dhos/v1/device/{device_id}").path("device_id", &off).caller(admin()).json(json!({"active": false})).build(), &deps).await);
        let listed = |query: &[(&str, &str)]| {
            let mut r = ApiRequest::new("GET /dhos/v1/device").caller(admin());
            for (k, v) in query {
                r = r.query(k, v);
            }
            answered_list(r.build(), &deps)
        };
        assert_eq!(listed(&[]).await.body.as_array().unwrap().len(), 4, "active by default");
        assert_eq!(listed(&[("active", "FALSE")]).await.body.as_array().unwrap().len(), 1);
        assert_eq!(listed(&[("location_id", "L1")]).await.body.as_array().unwrap().len(), 2);
        assert_eq!(listed(&[("location_id", "L1,L2")]).await.body.as_array().unwrap().len(), 3);
        assert_eq!(listed(&[("active", "yes")]).await.body["detail"], "Wrong type, expected 'boolean' for query parameter 'active'");
        assert_eq!(listed(&[("type", "send_entry")]).await.body["detail"], "Extra query parameter(s) type not in spec");

        let post = |body: Value| answered_create(ApiRequest::new("POST /dhos/v1/device").caller(admin()).json(body).build(), &deps);
        assert_eq!(post(json!({"location_id": "L1"})).await.body["detail"], "'description' is a required property");
        assert_eq!(post(json!({"location_id": 5, "description": "d"})).await.body["detail"], "5 is not of type 'string' - 'location_id'");
        assert_eq!(post(json!({"location_id": "L1", "description": "d", "colour": "red"})).await.status, 400);
        assert_eq!(post(json!({"location_id": "", "description": "d"})).await.body, json!({"message": "location_id must not be empty"}));
        assert_eq!(listed(&[("location_id", ",")]).await.body, json!([]), "empty location names match nothing");
        let patient = json!({"authenticated": true, "polaris": true, "patientId": "p-1", "scope": "read:gdm_message"});
        let refused = answered(create(ApiRequest::new("POST /dhos/v1/device").caller(patient).json(json!({"location_id": "L1", "description": "d"})).build(), &deps).await);
        assert_eq!(refused.body, json!({"message": "Forbidden"}));
        let renamed = ApiRequest::new("PATCH /dhos/v1/device/{device_id}").path("device_id", &off).caller(admin()).json(json!({"uuid": "x"})).build();
        assert_eq!(answered(update(renamed, &deps).await).body, json!({"message": "uuid can not be updated"}));
        let unknown = ApiRequest::new("GET /dhos/v1/device/{device_id}").path("device_id", "nope").caller(admin()).build();
        assert_eq!(answered(get(unknown, &deps).await).status, 404);
        let with_body = ApiRequest::new("GET /dhos/v1/device/{device_id}").path("device_id", &off).caller(admin()).json(json!({})).build();
        assert_eq!(answered(get(with_body, &deps).await).body, json!({"message": "Request should not contain a JSON body"}));
    }

    async fn answered_list(request: Request, deps: &Deps) -> Answered {
        answered(list(request, deps).await)
    }

    async fn answered_create(request: Request, deps: &Deps) -> Answered {
        answered(create(request, deps).await)
    }
}
