//! The FHIR R4 REST API for apps, under `/fhir`: the CapabilityStatement, reads by id and the
//! Observation search, answered as FHIR clients expect (`application/fhir+json`, `Bundle`s of
//! type `searchset` with paging links, `OperationOutcome` errors).
//!
//! Parameters are strict: an unknown or malformed one is refused with a 400 that names it,
//! rather than ignored (FHIR's lenient default would answer a wider search than the app asked
//! for, with patient data in it). Every search runs on a DynamoDB key condition:
//! [`search::plan`] says which index serves which parameters.

pub mod http;
pub mod search;

use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_http::{Body, Response};
use serde_json::json;

use crate::observations::Position;
use crate::platform::http::ApiError;
use crate::StoreError;

/// The media type of FHIR's JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The most Observations a page holds, and how many when `_count` is not given.
pub const MAX_COUNT: usize = 200;
pub const DEFAULT_COUNT: usize = 50;

/// The most codes (or categories) a search may offer as alternatives.
pub const MAX_ALTERNATIVES: usize = 10;

/// What the FHIR routes answer other than success, as an `OperationOutcome`.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A search or read parameter that is unknown, repeated, malformed or not supported.
    #[error("{parameter}: {message}")]
    BadParameter { parameter: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FhirError {
    pub fn bad(parameter: &str, message: impl Into<String>) -> Self {
        FhirError::BadParameter { parameter: parameter.to_owned(), message: message.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            FhirError::Unauthenticated(_) => 401,
            FhirError::Forbidden(_) => 403,
            FhirError::NotFound(_) => 404,
            FhirError::BadParameter { .. } => 400,
            FhirError::Store(_) => 503,
        }
    }

    /// FHIR's issue type (`IssueType` value set).
    fn issue_code(&self) -> &'static str {
        match self {
            FhirError::Unauthenticated(_) => "login",
            FhirError::Forbidden(_) => "forbidden",
            FhirError::NotFound(_) => "not-found",
            FhirError::BadParameter { .. } => "invalid",
            FhirError::Store(_) => "transient",
        }
    }

    /// The `OperationOutcome`; storage details stay in the logs.
    pub fn into_response(self) -> Response<Body> {
        let diagnostics = match &self {
            FhirError::Store(e) => crate::platform::http::unavailable(e),
            other => other.to_string(),
        };
        let outcome = json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": self.issue_code(), "diagnostics": diagnostics}],
        });
        crate::platform::http::text_response(self.status(), FHIR_JSON, outcome.to_string(), &[])
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthenticated(m) => FhirError::Unauthenticated(m),
            ApiError::Forbidden(m) => FhirError::Forbidden(m),
            ApiError::NotFound(m) => FhirError::NotFound(m),
            ApiError::BadRequest { field, message } => FhirError::BadParameter { parameter: field, message },
            ApiError::Store(e) => FhirError::Store(e),
            other => FhirError::Store(StoreError::new("answer", other.to_string())),
        }
    }
}

/// A comparison of a date search value (FHIR's prefixes; `eq` when none is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One `date` or `_lastUpdated` value: a prefix and the instants its precision covers,
/// `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateCondition {
    pub prefix: Prefix,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl DateCondition {
    /// Parses `[prefix]value`: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or a time with a zone
    /// (`YYYY-MM-DDThh:mm[:ss[.fff]](Z|±hh:mm)`). A value without a zone is a UTC one.
    pub fn parse(parameter: &str, text: &str) -> Result<Self, FhirError> {
        let (prefix, value) = match text.get(..2) {
            Some("eq") => (Prefix::Eq, &text[2..]),
            Some("lt") => (Prefix::Lt, &text[2..]),
            Some("le") => (Prefix::Le, &text[2..]),
            Some("gt") => (Prefix::Gt, &text[2..]),
            Some("ge") => (Prefix::Ge, &text[2..]),
            Some(p @ ("ne" | "sa" | "eb" | "ap")) => {
                return Err(FhirError::bad(parameter, format!("the prefix {p:?} is not supported (eq, lt, le, gt and ge are)")))
            }
            _ => (Prefix::Eq, text),
        };
        let (start, end) = instants_of(value).ok_or_else(|| {
            FhirError::bad(parameter, format!("{value:?} is not a FHIR date: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]] with Z or an offset"))
        })?;
        Ok(Self { prefix, start, end })
    }

    /// Whether an instant meets the condition, as FHIR compares a point with a search value's
    /// range: `ge`/`lt` against its start, `gt`/`le` against its end, `eq` within it.
    pub fn admits(&self, at: DateTime<Utc>) -> bool {
        match self.prefix {
            Prefix::Eq => self.start <= at && at < self.end,
            Prefix::Lt => at < self.start,
            Prefix::Le => at < self.end,
            Prefix::Gt => at >= self.end,
            Prefix::Ge => at >= self.start,
        }
    }

    /// The condition as inclusive bounds on instants: (from, to), either open.
    fn bounds(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let last = |t: DateTime<Utc>| t - Duration::milliseconds(1);
        match self.prefix {
            Prefix::Eq => (Some(self.start), Some(last(self.end))),
            Prefix::Lt => (None, Some(last(self.start))),
            Prefix::Le => (None, Some(last(self.end))),
            Prefix::Gt => (Some(self.end), None),
            Prefix::Ge => (Some(self.start), None),
        }
    }
}

/// Several conditions (repeated parameters: all must hold) as inclusive bounds on
/// `effectiveAt` (`time::format_utc`, millisecond precision, which sorts as it compares).
pub fn effective_bounds(conditions: &[DateCondition]) -> (Option<String>, Option<String>) {
    let mut from: Option<DateTime<Utc>> = None;
    let mut to: Option<DateTime<Utc>> = None;
    for (f, t) in conditions.iter().map(DateCondition::bounds) {
        from = from.max(f);
        to = match (to, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let format = crate::platform::time::format_utc;
    (from.map(format), to.map(format))
}

/// The instants a date value covers at its precision, `[start, end)`.
fn instants_of(value: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let (date, time) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let ok = match parts.as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && digits(m, 2),
        [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2),
        _ => false,
    };
    if !ok {
        return None;
    }
    let year: i32 = parts[0].parse().ok()?;
    let month: u32 = parts.get(1).map_or(Some(1), |m| m.parse().ok())?;
    let day: u32 = parts.get(2).map_or(Some(1), |d| d.parse().ok())?;
    let Some(time) = time else {
        let start = Utc.with_ymd_and_hms(year, month, day, 0, 0, 0).single()?;
        let end = match parts.len() {
            1 => Utc.with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0).single()?,
            2 => {
                let (y, m) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?
            }
            _ => start + Duration::days(1),
        };
        return Some((start, end));
    };
    if parts.len() != 3 {
        return None;
    }
    // A time needs its zone: `Z` or `±hh:mm` after the clock.
    let zone_at = time.find(['Z', '+', '-'])?;
    let (clock, zone) = time.split_at(zone_at);
    let fields: Vec<&str> = clock.split(':').collect();
    let (precision, seconds) = match fields.as_slice() {
        [h, m] if digits(h, 2) && digits(m, 2) => (Duration::minutes(1), "00".to_owned()),
        [h, m, s] if digits(h, 2) && digits(m, 2) => match s.split_once('.') {
            None if digits(s, 2) => (Duration::seconds(1), (*s).to_owned()),
            // Stored times are to the millisecond: a finer value has that precision.
            Some((whole, fraction)) if digits(whole, 2) && (1..=9).contains(&fraction.len()) && fraction.bytes().all(|b| b.is_ascii_digit()) => {
                let unit = 10_i64.pow(9 - u32::try_from(fraction.len()).ok()?);
                (Duration::nanoseconds(unit.max(1_000_000)), (*s).to_owned())
            }
            _ => return None,
        },
        _ => return None,
    };
    let text = format!("{date}T{}:{}:{seconds}{zone}", fields[0], fields[1]);
    let start = DateTime::parse_from_rfc3339(&text).ok()?.with_timezone(&Utc);
    // Round a finer-than-millisecond start down to the stored precision.
    let start = Utc.timestamp_millis_opt(start.timestamp_millis()).single()?;
    Some((start, start + precision))
}

/// A token parameter's value: `system|code`, `code` (any system), `|code` (no system) or
/// `system|` (any code of the system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// None: any system; `Some("")`: none.
    pub system: Option<String>,
    /// None: any code of the system.
    pub code: Option<String>,
}

impl Token {
    pub fn parse(parameter: &str, text: &str) -> Result<Self, FhirError> {
        if text.contains('\\') {
            return Err(FhirError::bad(parameter, "escaped characters (\\) are not supported"));
        }
        let token = match text.split_once('|') {
            Some((system, code)) => Token { system: Some(system.to_owned()), code: (!code.is_empty()).then(|| code.to_owned()) },
            None => Token { system: None, code: Some(text.to_owned()) },
        };
        if token.code.as_deref().is_some_and(str::is_empty) || (token.code.is_none() && token.system.as_deref().is_none_or(str::is_empty)) || text.contains("||") {
            return Err(FhirError::bad(parameter, format!("{text:?} is not a token: system|code, code, |code or system|")));
        }
        Ok(token)
    }

    /// The `system|code` key stored with an Observation (its primary coding), when the token
    /// names exactly one.
    pub fn code_key(&self) -> Option<String> {
        Some(format!("{}|{}", self.system.as_deref()?, self.code.as_deref()?))
    }

    /// Whether a coding's system and code match.
    pub fn matches(&self, system: Option<&str>, code: Option<&str>) -> bool {
        self.system.as_deref().is_none_or(|s| s == system.unwrap_or(""))
            && self.code.as_deref().is_none_or(|c| Some(c) == code)
    }

    /// Whether a stored `system|code` key matches.
    pub fn matches_key(&self, code_key: &str) -> bool {
        let (system, code) = code_key.split_once('|').unwrap_or(("", code_key));
        self.matches(Some(system), Some(code))
    }
}

/// Where each index a search runs along stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StreamState {
    #[serde(rename = "s")]
    Start,
    #[serde(rename = "a")]
    After(Position),
    #[serde(rename = "d")]
    Done,
}

/// The opaque `_cursor` of a `next` link: the search it belongs to (a digest of its
/// parameters) and where each of its indexes stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    #[serde(rename = "q")]
    pub search: String,
    #[serde(rename = "p")]
    pub streams: Vec<StreamState>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        // A cursor of plain data always serializes.
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The cursor of a `next` link of this search; a 400 for one that is not (altered, or of
    /// another search).
    pub fn decode(text: &str, search: &str, streams: usize) -> Result<Self, FhirError> {
        let refused = || FhirError::bad("_cursor", "not a cursor of this search: follow the next link as given");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| refused())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| refused())?;
        if cursor.search != search || cursor.streams.len() != streams {
            return Err(refused());
        }
        Ok(cursor)
    }
}

/// The version of a stored resource, for `meta.versionId` and the `ETag`: from its
/// fingerprint, so a repeat of the same reading keeps it and a connector's merge changes it.
pub fn version_id(content_hash: &str) -> String {
    let hex = content_hash.rsplit(':').next().unwrap_or(content_hash);
    hex.chars().filter(char::is_ascii_alphanumeric).take(16).collect()
}

/// The stored resource with `meta.versionId` and `meta.lastUpdated` set, everything else
/// exactly as kept (decimals keep their text: the other members are carried as raw JSON).
pub fn with_version(resource: &str, version: &str, last_updated: Option<&str>) -> Result<String, serde_json::Error> {
    let members: RawMembers = serde_json::from_str(resource)?;
    let mut meta = serde_json::Map::new();
    let mut out = String::with_capacity(resource.len() + 80);
    out.push('{');
    let mut first = true;
    let mut write = |out: &mut String, name: &str, value: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&serde_json::to_string(name).unwrap_or_default());
        out.push(':');
        out.push_str(value);
    };
    let has_meta = members.0.iter().any(|(name, _)| name == "meta");
    for (name, value) in &members.0 {
        if name == "meta" {
            meta = serde_json::from_str(value.get())?;
            continue;
        }
        write(&mut out, name, value.get());
        // Without a meta of its own, the resource gets one after its id, where FHIR puts it.
        if name == "id" && !has_meta {
            write(&mut out, "meta", &versioned_meta(serde_json::Map::new(), version, last_updated));
        }
    }
    if has_meta {
        // Appended after the other members: JSON objects have no order, and this keeps each
        // stored member's text untouched.
        write(&mut out, "meta", &versioned_meta(meta, version, last_updated));
    }
    out.push('}');
    Ok(out)
}

fn versioned_meta(mut meta: serde_json::Map<String, serde_json::Value>, version: &str, last_updated: Option<&str>) -> String {
    meta.insert("versionId".into(), json!(version));
    if let Some(at) = last_updated {
        meta.insert("lastUpdated".into(), json!(at));
    }
    serde_json::Value::Object(meta).to_string()
}

/// A JSON object's members in their order, each value as its raw text.
struct RawMembers(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for RawMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawMembers, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(RawMembers(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The version of a resource the platform builds on each read (a Device, a Patient): from its
/// content, so it changes exactly when the resource does.
pub fn content_version(json: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json.as_bytes());
    hex::encode(&digest.as_ref()[..8])
}

/// A registered device as a FHIR R4 `Device` (its id is its thing name).
pub fn device_resource(d: &crate::devices::Device) -> serde_json::Value {
    use crate::devices::DeviceStatus;
    let status = match d.status {
        DeviceStatus::Active => "active",
        DeviceStatus::Registered | DeviceStatus::Inactive | DeviceStatus::Blocked => "inactive",
    };
    let mut names = vec![json!({"name": d.thing_name, "type": "other"})];
    if !d.display_name.is_empty() {
        names.insert(0, json!({"name": d.display_name, "type": "user-friendly-name"}));
    }
    let mut device = json!({
        "resourceType": "Device",
        "id": d.thing_name,
        "identifier": [{"system": "urn:vitalwire:thing-name", "value": d.thing_name}],
        "status": status,
        "manufacturer": d.manufacturer,
        "serialNumber": d.serial_number,
        "deviceName": names,
        // The platform's own state, which FHIR's two statuses do not tell apart.
        "note": [{"text": format!("Vitalwire status: {}", d.status.as_str())}],
    });
    if !d.model.is_empty() {
        device["modelNumber"] = json!(d.model);
    }
    if let Some(firmware) = &d.firmware {
        device["version"] = json!([{"type": {"text": "firmware"}, "value": firmware.version}]);
    }
    if let Some(patient) = &d.patient_id {
        device["patient"] = json!({"reference": format!("Patient/{patient}")});
    }
    device
}

/// A patient as a FHIR R4 `Patient`: most patients are an id only; one a connector created
/// carries the identifier it was created from.
pub fn patient_resource(id: &str, record: Option<&crate::patients::Patient>) -> serde_json::Value {
    let mut patient = json!({"resourceType": "Patient", "id": id, "active": true});
    if let Some(record) = record {
        patient["identifier"] = json!([{"use": "usual", "value": record.identifier}]);
    }
    patient
}

/// The CapabilityStatement: exactly the interactions and parameters this API serves.
pub fn capability_statement(base: &str, software_version: &str) -> serde_json::Value {
    let param = |name: &str, kind: &str, doc: &str| json!({"name": name, "type": kind, "documentation": doc});
    let observation = json!({
        "type": "Observation",
        "profile": "http://hl7.org/fhir/StructureDefinition/Observation",
        "supportedProfile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"],
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "operation": [{
            "name": "lastn",
            "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
            "documentation": "patient (or subject), code (system|code, comma for several; default: every vital sign and glucose code the platform files), category, max (1 to 100, default 1)"
        }],
        "versioning": "versioned",
        "readHistory": false,
        "updateCreate": false,
        "searchParam": [
            param("patient", "reference", "Patient/id or id"),
            param("subject", "reference", "Patient/id or id; the same as patient"),
            param("code", "token", "system|code, code, |code or system|; a comma gives alternatives. Matches the Observation's primary coding (its LOINC code when it has one)"),
            param("category", "token", "system|code or code; a comma gives alternatives"),
            param("date", "date", "effective time; prefixes eq, lt, le, gt, ge; repeat for a range; a date without a zone is UTC"),
            param("device", "reference", "Device/id or id"),
            param("_lastUpdated", "date", "when the platform filed the reading (meta.lastUpdated); prefixes as date"),
        ],
    });
    let mut resources = vec![observation];
    resources.extend(["Patient", "Device", "DocumentReference"].map(|kind| {
        json!({"type": kind, "interaction": [{"code": "read"}], "versioning": "versioned", "readHistory": false, "updateCreate": false})
    }));
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-06",
        "publisher": "Vitalwire",
        "kind": "instance",
        "software": {"name": "Vitalwire", "version": software_version},
        "implementation": {"description": "Vitalwire FHIR R4 API", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Parameters are strict: an unknown, repeated or malformed one is answered 400 with an OperationOutcome naming it. A search needs patient (or subject) or device, except a patient's, which defaults to their own.",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "description": "Bearer tokens of the platform's user pools. Scopes follow the role: a patient has patient/*.rs (their own data), a clinician user/*.rs (their care teams' patients), an admin user/*.rs (all). Every read is audited."
            },
            "resource": resources,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        crate::platform::time::parse_with_offset(text).unwrap()
    }

    #[test]
    fn partial_dates_cover_their_whole_precision() {
        let cases = [
            ("2026", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("2026-12", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("2026-02", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
            ("2026-11-22", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z"),
            ("2026-11-22T10:15+01:00", "2026-11-22T09:15:00Z", "2026-11-22T09:16:00Z"),
            ("2026-11-22T10:15:30Z", "2026-11-22T10:15:30Z", "2026-11-22T10:15:31Z"),
            ("2026-11-22T10:15:30.5Z", "2026-11-22T10:15:30.500Z", "2026-11-22T10:15:30.600Z"),
            ("2026-11-22T10:15:30.123456Z", "2026-11-22T10:15:30.123Z", "2026-11-22T10:15:30.124Z"),
        ];
        for (value, start, end) in cases {
            let c = DateCondition::parse("date", value).unwrap();
            assert_eq!((c.prefix, c.start, c.end), (Prefix::Eq, at(start), at(end)), "{value}");
        }
        for bad in ["", "26", "2026-1", "2026-13", "2026-02-30", "2026-11-22T10", "2026-11-22T10:15", "2026-11-22T25:00Z", "2026-11-22 10:15Z", "yesterday", "2026-11-22T10:15:3Z"] {
            let error = DateCondition::parse("date", bad).unwrap_err();
            assert!(matches!(&error, FhirError::BadParameter { parameter, .. } if parameter == "date"), "{bad}: {error}");
        }
        let error = DateCondition::parse("date", "ap2026").unwrap_err();
        assert!(error.to_string().contains("\"ap\" is not supported"), "{error}");
    }

    #[test]
    fn prefixes_compare_a_point_with_the_values_range_as_fhir_servers_do() {
        let day = |p: &str| DateCondition::parse("date", &format!("{p}2026-11-22")).unwrap();
        let (before, first, last, after) = (at("2026-11-21T23:59:59.999Z"), at("2026-11-22T00:00:00Z"), at("2026-11-22T23:59:59.999Z"), at("2026-11-23T00:00:00Z"));
        let admitted = |c: DateCondition| [before, first, last, after].map(|t| c.admits(t));
        assert_eq!(admitted(day("")), [false, true, true, false]);
        assert_eq!(admitted(day("eq")), [false, true, true, false]);
        assert_eq!(admitted(day("lt")), [true, false, false, false]);
        assert_eq!(admitted(day("le")), [true, true, true, false]);
        assert_eq!(admitted(day("gt")), [false, false, false, true]);
        assert_eq!(admitted(day("ge")), [false, true, true, true]);
        // The same conditions as bounds on the stored effective time, intersected when repeated.
        let bounds = |cs: &[DateCondition]| effective_bounds(cs);
        assert_eq!(bounds(&[day("ge"), day("lt")]), (Some("2026-11-22T00:00:00.000Z".into()), Some("2026-11-21T23:59:59.999Z".into())), "an empty range");
        assert_eq!(bounds(&[day("")]), (Some("2026-11-22T00:00:00.000Z".into()), Some("2026-11-22T23:59:59.999Z".into())));
        let week = [DateCondition::parse("date", "ge2026-11-16").unwrap(), DateCondition::parse("date", "le2026-11-22").unwrap()];
        assert_eq!(bounds(&week), (Some("2026-11-16T00:00:00.000Z".into()), Some("2026-11-22T23:59:59.999Z".into())));
        assert_eq!(bounds(&[day("gt")]), (Some("2026-11-23T00:00:00.000Z".into()), None));
        assert_eq!(bounds(&[]), (None, None));
    }

    #[test]
    fn tokens_name_a_system_a_code_or_both() {
        let t = |s: &str| Token::parse("code", s).unwrap();
        assert_eq!(t("http://loinc.org|8867-4").code_key().as_deref(), Some("http://loinc.org|8867-4"));
        assert_eq!(t("8867-4"), Token { system: None, code: Some("8867-4".into()) });
        assert!(t("8867-4").matches_key("http://loinc.org|8867-4"));
        assert!(!t("8867-4").matches_key("http://loinc.org|8867-40"));
        assert!(t("|local").matches_key("|local") && !t("|local").matches_key("http://x|local"));
        assert!(t("http://loinc.org|").matches_key("http://loinc.org|9279-1"));
        assert_eq!(t("http://loinc.org|").code_key(), None, "a system alone keys no index");
        for bad in ["", "|", "a||b", "a\\|b"] {
            assert!(Token::parse("code", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cursor_belongs_to_its_search() {
        let cursor = Cursor {
            search: "abc".into(),
            streams: vec![StreamState::After(Position { effective_at: "2026-11-22T10:00:00.000Z".into(), id: "o1".into() }), StreamState::Done],
        };
        let text = cursor.encode();
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "URL-safe: {text}");
        assert_eq!(Cursor::decode(&text, "abc", 2).unwrap(), cursor);
        for (text, search, streams) in [(text.as_str(), "abd", 2), (text.as_str(), "abc", 1), ("not-base64!", "abc", 2), ("e30", "abc", 2)] {
            let error = Cursor::decode(text, search, streams).unwrap_err();
            assert_eq!(error.status(), 400);
            assert!(error.to_string().starts_with("_cursor:"), "{error}");
        }
    }

    #[test]
    fn versions_are_added_to_meta_and_every_other_member_kept_as_stored() {
        let stored = r#"{"resourceType":"Observation","id":"o1","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},"valueQuantity":{"value":36.60,"unit":"C"}}"#;
        let versioned = with_version(stored, "abc123", Some("2026-11-22T10:00:01.000Z")).unwrap();
        assert!(versioned.contains(r#""valueQuantity":{"value":36.60,"unit":"C"}"#), "{versioned}");
        let value: serde_json::Value = serde_json::from_str(&versioned).unwrap();
        assert_eq!(value["meta"]["versionId"], "abc123");
        assert_eq!(value["meta"]["lastUpdated"], "2026-11-22T10:00:01.000Z");
        assert_eq!(value["meta"]["profile"][0], "http://hl7.org/fhir/StructureDefinition/vitalsigns");
        let bare = with_version(r#"{"resourceType":"Observation","id":"o2","status":"final"}"#, "v", Some("t")).unwrap();
        assert_eq!(bare, r#"{"resourceType":"Observation","id":"o2","meta":{"lastUpdated":"t","versionId":"v"},"status":"final"}"#);
        assert_eq!(version_id("2t:0123456789abcdef0123"), "0123456789abcdef");
        assert_eq!(version_id("fedcba9876543210ff"), "fedcba9876543210", "a fingerprint of the first scheme");
    }

    #[test]
    fn errors_are_operation_outcomes_with_their_status() {
        let response = FhirError::bad("date", "bad").into_response();
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["content-type"], FHIR_JSON);
        let Body::Text(text) = response.body() else { panic!("text") };
        let outcome: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "invalid");
        assert_eq!(outcome["issue"][0]["diagnostics"], "date: bad");
        let unavailable = FhirError::Store(StoreError::new("read", "table secret-name throttled")).into_response();
        let Body::Text(text) = unavailable.body() else { panic!("text") };
        assert!(!text.contains("secret-name"), "storage details stay in the logs");
        assert_eq!(unavailable.status(), 503);
    }
}
