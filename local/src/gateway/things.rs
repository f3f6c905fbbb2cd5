//! Things, thing types and thing groups of the local IoT registry, as the control-plane
//! operations that device code, the AWS SDK samples and the AWS CLI call on a fleet answer them:
//! `CreateThing` (idempotent for the same settings), `DescribeThing`, `ListThings` (filtered by
//! type or attribute, paged), `UpdateThing` (attributes merged or replaced, `expectedVersion`),
//! `DeleteThing` (refused while principals are attached); `CreateThingType`,
//! `DescribeThingType`, `ListThingTypes`; `CreateThingGroup`, `DescribeThingGroup`,
//! `ListThingGroups`, `AddThingToThingGroup`, `RemoveThingFromThingGroup`,
//! `ListThingsInThingGroup` (job targets name groups).
//!
//! Synchronous state behind one lock, answering AWS's bodies or a [`ControlError`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::jobs::ControlError;
use super::policy::ARN_PREFIX;

#[derive(Debug, Clone, PartialEq)]
struct Thing {
    id: String,
    thing_type: Option<String>,
    attributes: BTreeMap<String, String>,
    version: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct ThingType {
    id: String,
    description: String,
    searchable: Vec<String>,
    created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct ThingGroup {
    id: String,
    description: String,
    members: BTreeSet<String>,
    created_at: i64,
    version: i64,
}

#[derive(Default)]
struct State {
    things: BTreeMap<String, Thing>,
    types: BTreeMap<String, ThingType>,
    groups: BTreeMap<String, ThingGroup>,
    next_id: u64,
}

/// The things of the local registry.
#[derive(Default)]
pub struct Things {
    state: Mutex<State>,
}

fn not_found(what: &str, name: &str) -> ControlError {
    ControlError { status: 404, kind: "ResourceNotFoundException", message: format!("{what} {name} does not exist") }
}

fn invalid(message: impl Into<String>) -> ControlError {
    ControlError { status: 400, kind: "InvalidRequestException", message: message.into() }
}

/// IoT names: 1–128 of `[a-zA-Z0-9:_-]`.
fn check_name(what: &str, name: &str) -> Result<(), ControlError> {
    if name.is_empty() || name.len() > 128 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-')) {
        return Err(invalid(format!("{what} '{name}' must be 1-128 of [a-zA-Z0-9:_-]")));
    }
    Ok(())
}

/// `attributePayload.attributes`: names to text values.
fn attributes(payload: &Value) -> Result<BTreeMap<String, String>, ControlError> {
    let mut out = BTreeMap::new();
    for (k, v) in payload["attributes"].as_object().into_iter().flatten() {
        let text = v.as_str().ok_or_else(|| invalid(format!("attribute {k} must be a string")))?;
        out.insert(k.clone(), text.to_owned());
    }
    Ok(out)
}

/// AWS IoT's quota: 50 attributes for a thing with a type, 3 without.
fn check_attribute_count(attributes: &BTreeMap<String, String>, typed: bool) -> Result<(), ControlError> {
    let limit = if typed { 50 } else { 3 };
    if attributes.len() > limit {
        return Err(invalid(format!("a thing {} a thing type has at most {limit} attributes", if typed { "with" } else { "without" })));
    }
    Ok(())
}

fn thing_arn(name: &str) -> String {
    format!("{ARN_PREFIX}:thing/{name}")
}

impl State {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        // AWS thing ids are UUIDs; the local ones are unique per run in that shape.
        format!("00000000-0000-4000-8000-{:012x}", self.next_id)
    }
}

impl Things {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the thing exists.
    pub fn exists(&self, name: &str) -> bool {
        self.lock().things.contains_key(name)
    }

    /// `CreateThing`: the same settings again answer the existing thing; other settings are a
    /// conflict.
    pub fn create_thing(&self, name: &str, request: &Value) -> Result<Value, ControlError> {
        check_name("thingName", name)?;
        let thing_type = request["thingTypeName"].as_str().map(str::to_owned);
        let attributes = attributes(&request["attributePayload"])?;
        check_attribute_count(&attributes, thing_type.is_some())?;
        let mut state = self.lock();
        if let Some(t) = &thing_type {
            if !state.types.contains_key(t) {
                return Err(not_found("thing type", t));
            }
        }
        if let Some(existing) = state.things.get(name) {
            if existing.thing_type == thing_type && existing.attributes == attributes {
                return Ok(json!({"thingName": name, "thingArn": thing_arn(name), "thingId": existing.id}));
            }
            return Err(ControlError { status: 409, kind: "ResourceAlreadyExistsException", message: format!("thing {name} exists with other settings") });
        }
        let id = state.new_id();
        state.things.insert(name.to_owned(), Thing { id: id.clone(), thing_type, attributes, version: 1 });
        Ok(json!({"thingName": name, "thingArn": thing_arn(name), "thingId": id}))
    }

    /// The thing `RegisterThing` creates (fleet provisioning), unless it exists.
    pub fn ensure_thing(&self, name: &str, attributes: BTreeMap<String, String>) {
        let mut state = self.lock();
        if !state.things.contains_key(name) {
            let id = state.new_id();
            state.things.insert(name.to_owned(), Thing { id, thing_type: None, attributes, version: 1 });
        }
    }

    pub fn describe_thing(&self, name: &str) -> Result<Value, ControlError> {
        let state = self.lock();
        let t = state.things.get(name).ok_or_else(|| not_found("thing", name))?;
        let mut body = json!({
            "defaultClientId": name, "thingName": name, "thingId": t.id, "thingArn": thing_arn(name),
            "attributes": t.attributes, "version": t.version,
        });
        if let Some(ty) = &t.thing_type {
            body["thingTypeName"] = json!(ty);
        }
        Ok(body)
    }

    /// `ListThings` with its filters, `maxResults` (1–250, default 50) and `nextToken` (the
    /// name to start after).
    pub fn list_things(&self, query: &std::collections::HashMap<String, String>) -> Result<Value, ControlError> {
        let max = page_size(query)?;
        let state = self.lock();
        let after = query.get("nextToken");
        let matching = state.things.iter().filter(|(name, t)| {
            after.is_none_or(|a| name.as_str() > a.as_str())
                && query.get("thingTypeName").is_none_or(|ty| t.thing_type.as_deref() == Some(ty.as_str()))
                && query.get("attributeName").is_none_or(|k| {
                    t.attributes.get(k).is_some_and(|v| query.get("attributeValue").is_none_or(|want| v == want))
                })
        });
        let page: Vec<(&String, &Thing)> = matching.take(max + 1).collect();
        let more = page.len() > max;
        let things: Vec<Value> = page
            .iter()
            .take(max)
            .map(|(name, t)| {
                let mut v = json!({"thingName": name, "thingArn": thing_arn(name), "attributes": t.attributes, "version": t.version});
                if let Some(ty) = &t.thing_type {
                    v["thingTypeName"] = json!(ty);
                }
                v
            })
            .collect();
        let mut body = json!({"things": things});
        if more {
            body["nextToken"] = json!(page[max - 1].0);
        }
        Ok(body)
    }

    /// `UpdateThing`: `expectedVersion` must match; attributes merged (`merge`) or replaced, an
    /// empty value removing an attribute; `removeThingType`.
    pub fn update_thing(&self, name: &str, request: &Value) -> Result<Value, ControlError> {
        let mut state = self.lock();
        if let Some(ty) = request["thingTypeName"].as_str() {
            if !state.types.contains_key(ty) {
                return Err(not_found("thing type", ty));
            }
        }
        let t = state.things.get_mut(name).ok_or_else(|| not_found("thing", name))?;
        if let Some(expected) = request["expectedVersion"].as_i64() {
            if expected != t.version {
                return Err(ControlError { status: 409, kind: "VersionConflictException", message: format!("thing {name} is at version {}, not {expected}", t.version) });
            }
        }
        let payload = &request["attributePayload"];
        let mut updated = t.attributes.clone();
        if payload.is_object() {
            let given = attributes(payload)?;
            if !payload["merge"].as_bool().unwrap_or(false) {
                updated.clear();
            }
            for (k, v) in given {
                if v.is_empty() {
                    updated.remove(&k);
                } else {
                    updated.insert(k, v);
                }
            }
        }
        let thing_type = if request["removeThingType"].as_bool() == Some(true) {
            None
        } else {
            request["thingTypeName"].as_str().map(str::to_owned).or_else(|| t.thing_type.clone())
        };
        check_attribute_count(&updated, thing_type.is_some())?;
        t.attributes = updated;
        t.thing_type = thing_type;
        t.version += 1;
        Ok(json!({}))
    }

    /// `DeleteThing` (`has_principals`: whether certificates are attached, which AWS refuses).
    pub fn delete_thing(&self, name: &str, expected_version: Option<i64>, has_principals: bool) -> Result<Value, ControlError> {
        let mut state = self.lock();
        let Some(t) = state.things.get(name) else { return Ok(json!({})) };
        if expected_version.is_some_and(|v| v != t.version) {
            return Err(ControlError { status: 409, kind: "VersionConflictException", message: format!("thing {name} is at version {}", t.version) });
        }
        if has_principals {
            return Err(invalid(format!("thing {name} has principals attached: detach them first")));
        }
        state.things.remove(name);
        for group in state.groups.values_mut() {
            group.members.remove(name);
        }
        Ok(json!({}))
    }

    /// `CreateThingType`.
    pub fn create_thing_type(&self, name: &str, request: &Value, now: i64) -> Result<Value, ControlError> {
        check_name("thingTypeName", name)?;
        let mut state = self.lock();
        let id = match state.types.get(name) {
            Some(existing) => existing.id.clone(),
            None => {
                let props = &request["thingTypeProperties"];
                let id = state.new_id();
                let searchable = props["searchableAttributes"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
                let description = props["thingTypeDescription"].as_str().unwrap_or_default().to_owned();
                state.types.insert(name.to_owned(), ThingType { id: id.clone(), description, searchable, created_at: now });
                id
            }
        };
        Ok(json!({"thingTypeName": name, "thingTypeArn": format!("{ARN_PREFIX}:thingtype/{name}"), "thingTypeId": id}))
    }

    fn type_json(name: &str, t: &ThingType) -> Value {
        json!({
            "thingTypeName": name, "thingTypeId": t.id, "thingTypeArn": format!("{ARN_PREFIX}:thingtype/{name}"),
            "thingTypeProperties": {"thingTypeDescription": t.description, "searchableAttributes": t.searchable},
            "thingTypeMetadata": {"deprecated": false, "creationDate": t.created_at},
        })
    }

    pub fn describe_thing_type(&self, name: &str) -> Result<Value, ControlError> {
        let state = self.lock();
        state.types.get(name).map(|t| Self::type_json(name, t)).ok_or_else(|| not_found("thing type", name))
    }

    pub fn list_thing_types(&self) -> Value {
        let state = self.lock();
        json!({"thingTypes": state.types.iter().map(|(n, t)| Self::type_json(n, t)).collect::<Vec<_>>()})
    }

    /// `CreateThingGroup` (static groups; the same name again answers the existing group).
    pub fn create_thing_group(&self, name: &str, request: &Value, now: i64) -> Result<Value, ControlError> {
        check_name("thingGroupName", name)?;
        let mut state = self.lock();
        if !state.groups.contains_key(name) {
            let id = state.new_id();
            let description = request["thingGroupProperties"]["thingGroupDescription"].as_str().unwrap_or_default().to_owned();
            state.groups.insert(name.to_owned(), ThingGroup { id, description, members: BTreeSet::new(), created_at: now, version: 1 });
        }
        let id = state.groups.get(name).map(|g| g.id.clone()).unwrap_or_default();
        Ok(json!({"thingGroupName": name, "thingGroupArn": format!("{ARN_PREFIX}:thinggroup/{name}"), "thingGroupId": id}))
    }

    pub fn describe_thing_group(&self, name: &str) -> Result<Value, ControlError> {
        let state = self.lock();
        let g = state.groups.get(name).ok_or_else(|| not_found("thing group", name))?;
        Ok(json!({
            "thingGroupName": name, "thingGroupId": g.id, "thingGroupArn": format!("{ARN_PREFIX}:thinggroup/{name}"),
            "version": g.version, "thingGroupProperties": {"thingGroupDescription": g.description},
            "thingGroupMetadata": {"creationDate": g.created_at}, "status": "ACTIVE",
        }))
    }

    pub fn list_thing_groups(&self) -> Value {
        let state = self.lock();
        json!({"thingGroups": state.groups.keys().map(|n| json!({"groupName": n, "groupArn": format!("{ARN_PREFIX}:thinggroup/{n}")})).collect::<Vec<_>>()})
    }

    /// `AddThingToThingGroup` / `RemoveThingFromThingGroup` (by name or ARN).
    pub fn set_membership(&self, request: &Value, member: bool) -> Result<Value, ControlError> {
        let name_or_arn = |name: &str, arn: &str, marker: &str| {
            request[name].as_str().map(str::to_owned).or_else(|| request[arn].as_str().and_then(|a| a.rsplit_once(marker)).map(|(_, n)| n.to_owned()))
        };
        let group = name_or_arn("thingGroupName", "thingGroupArn", ":thinggroup/").ok_or_else(|| invalid("thingGroupName or thingGroupArn is required"))?;
        let thing = name_or_arn("thingName", "thingArn", ":thing/").ok_or_else(|| invalid("thingName or thingArn is required"))?;
        let mut state = self.lock();
        if !state.things.contains_key(&thing) {
            return Err(not_found("thing", &thing));
        }
        let g = state.groups.get_mut(&group).ok_or_else(|| not_found("thing group", &group))?;
        if member {
            g.members.insert(thing);
        } else {
            g.members.remove(&thing);
        }
        Ok(json!({}))
    }

    /// The things of a group, by name (`ListThingsInThingGroup`, and a job's group target).
    pub fn members(&self, group: &str) -> Result<Vec<String>, ControlError> {
        let state = self.lock();
        state.groups.get(group).map(|g| g.members.iter().cloned().collect()).ok_or_else(|| not_found("thing group", group))
    }
}

fn page_size(query: &std::collections::HashMap<String, String>) -> Result<usize, ControlError> {
    match query.get("maxResults") {
        None => Ok(50),
        Some(m) => m.parse::<usize>().ok().filter(|m| (1..=250).contains(m)).ok_or_else(|| invalid("maxResults must be 1 to 250")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn things_are_created_once_described_listed_updated_and_deleted_as_aws_does() {
        let things = Things::default();
        assert_eq!(things.create_thing("cuff-1", &json!({"thingTypeName": "BP"})).unwrap_err().kind, "ResourceNotFoundException");
        things.create_thing_type("BP", &json!({}), 0).unwrap();
        let made = things.create_thing("cuff-1", &json!({"thingTypeName": "BP", "attributePayload": {"attributes": {"model": "BP-200"}}})).unwrap();
        let again = things.create_thing("cuff-1", &json!({"thingTypeName": "BP", "attributePayload": {"attributes": {"model": "BP-200"}}})).unwrap();
        assert_eq!(made, again, "the same settings answer the same thing");
        assert_eq!(things.create_thing("cuff-1", &json!({})).unwrap_err().kind, "ResourceAlreadyExistsException");
        things.create_thing("cuff-2", &json!({"attributePayload": {"attributes": {"model": "BP-300"}}})).unwrap();
        things.create_thing("oximeter", &json!({})).unwrap();
        let query = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>();
        let names = |body: Value| body["things"].as_array().unwrap().iter().map(|t| t["thingName"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(things.list_things(&query(&[("thingTypeName", "BP")])).unwrap()), ["cuff-1"]);
        assert_eq!(names(things.list_things(&query(&[("attributeName", "model"), ("attributeValue", "BP-300")])).unwrap()), ["cuff-2"]);
        let first = things.list_things(&query(&[("maxResults", "2")])).unwrap();
        assert_eq!((names(first.clone()), first["nextToken"].as_str()), (vec!["cuff-1".to_owned(), "cuff-2".to_owned()], Some("cuff-2")));
        assert_eq!(names(things.list_things(&query(&[("maxResults", "2"), ("nextToken", "cuff-2")])).unwrap()), ["oximeter"]);

        assert_eq!(things.update_thing("cuff-1", &json!({"expectedVersion": 7})).unwrap_err().kind, "VersionConflictException");
        things.update_thing("cuff-1", &json!({"expectedVersion": 1, "attributePayload": {"attributes": {"ward": "7"}, "merge": true}})).unwrap();
        let described = things.describe_thing("cuff-1").unwrap();
        assert_eq!((described["attributes"].clone(), described["version"].clone()), (json!({"model": "BP-200", "ward": "7"}), json!(2)));
        things.update_thing("cuff-1", &json!({"attributePayload": {"attributes": {"ward": ""}, "merge": true}, "removeThingType": true})).unwrap();
        let described = things.describe_thing("cuff-1").unwrap();
        assert_eq!(described["attributes"], json!({"model": "BP-200"}), "an empty value removes the attribute");
        assert!(described.get("thingTypeName").is_none());

        assert_eq!(things.delete_thing("cuff-1", None, true).unwrap_err().kind, "InvalidRequestException", "principals attached");
        things.delete_thing("cuff-1", None, false).unwrap();
        assert_eq!(things.describe_thing("cuff-1").unwrap_err().status, 404);
    }

    #[test]
    fn groups_gather_existing_things_for_job_targets() {
        let things = Things::default();
        things.create_thing("cuff-1", &json!({})).unwrap();
        things.create_thing_group("ward-7", &json!({}), 0).unwrap();
        assert_eq!(things.set_membership(&json!({"thingGroupName": "ward-7", "thingName": "nobody"}), true).unwrap_err().status, 404);
        things.set_membership(&json!({"thingGroupArn": "arn:aws:iot:us-east-1:000000000000:thinggroup/ward-7", "thingName": "cuff-1"}), true).unwrap();
        assert_eq!(things.members("ward-7").unwrap(), ["cuff-1"]);
        things.delete_thing("cuff-1", None, false).unwrap();
        assert!(things.members("ward-7").unwrap().is_empty(), "a deleted thing leaves its groups");
        assert_eq!(things.members("ward-9").unwrap_err().kind, "ResourceNotFoundException");
    }
}
