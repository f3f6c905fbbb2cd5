//! `GET /admin/dead-letters?source=&thingName=&limit=&next=` (`admin-dead-letters`, role
//! `admin`): refused messages of one source, or of one device across sources, newest first.

use lambda_http::Request;
use serde_json::{json, Value};

use super::{DeadLetter, DeadLetterStore};
use crate::access::{require, Role};
use crate::platform::http::{limit_param, query_param, ApiError, Reply};

/// A dead letter as the API shows it.
pub fn dead_letter_json(l: &DeadLetter) -> Value {
    json!({
        "id": l.id, "source": l.source, "thingName": l.thing_name, "reasonCode": l.reason_code,
        "reason": l.reason, "rawPayload": l.raw_payload, "rawPayloadBytes": l.raw_bytes, "rawPayloadTruncated": l.is_truncated(),
        "receivedAt": l.received_at, "recordedAt": l.recorded_at,
    })
}

/// The source listed when none is asked for.
pub const DEFAULT_SOURCE: &str = "fhir-ingest";

/// `GET /admin/dead-letters?source=fhir-ingest&limit=&next=`, or `?thingName=` for one device.
pub async fn list<L: DeadLetterStore>(request: Request, dead_letters: &L) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let limit = limit_param(&request, 25, 100)?;
    let next = query_param(&request, "next");
    let page = match (query_param(&request, "thingName"), query_param(&request, "source")) {
        (Some(_), Some(_)) => return Err(ApiError::bad("thingName", "give either thingName or source")),
        (Some(thing), None) => dead_letters.for_thing(&thing, limit, next.as_deref()).await?,
        (None, source) => dead_letters.list(source.as_deref().unwrap_or(DEFAULT_SOURCE), limit, next.as_deref()).await?,
    };
    Ok((200, json!({"deadLetters": page.items.iter().map(dead_letter_json).collect::<Vec<_>>(), "next": page.next})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letters::memory::MemoryDeadLetters;
    use crate::platform::testing::{self, answered, Answered, ApiRequest};

    /// Refused messages: three of `fhir-ingest` (two from acme-1), two of `iot-vitals` (one from acme-1).
    async fn store() -> MemoryDeadLetters {
        let store = MemoryDeadLetters::default();
        for (source, thing, minute) in [
            ("fhir-ingest", Some("acme-1"), 1),
            ("fhir-ingest", Some("acme-2"), 2),
            ("iot-vitals", Some("acme-1"), 3),
            ("fhir-ingest", Some("acme-1"), 4),
            ("iot-vitals", None, 5),
        ] {
            let letter = DeadLetter::refused(
                source,
                thing,
                "UNKNOWN_DEVICE",
                format!("refused at minute {minute}"),
                format!(r#"{{"minute": {minute}}}"#),
                format!("2026-11-22T10:0{minute}:00.000Z"),
            );
            store.record(&letter).await.unwrap();
        }
        store
    }

    fn listing() -> ApiRequest {
        ApiRequest::new("GET /admin/dead-letters").caller(testing::admin())
    }

    /// (source, receivedAt) of each letter listed.
    fn listed(answer: &Answered) -> Vec<(String, String)> {
        answer.body["deadLetters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["source"].as_str().unwrap().to_owned(), l["receivedAt"].as_str().unwrap().to_owned()))
            .collect()
    }

    fn letter(source: &str, minute: u8) -> (String, String) {
        (source.to_owned(), format!("2026-11-22T10:0{minute}:00.000Z"))
    }

    #[tokio::test]
    async fn a_sources_dead_letters_are_listed_newest_first_fhir_ingest_unless_told() {
        let store = store().await;
        let default = answered(list(listing().build(), &store).await);
        assert_eq!(default.status, 200);
        assert_eq!(listed(&default), [letter("fhir-ingest", 4), letter("fhir-ingest", 2), letter("fhir-ingest", 1)]);
        assert_eq!(default.body["next"], Value::Null, "a part page has no cursor");
        let first = &default.body["deadLetters"][0];
        assert_eq!((first["thingName"].as_str(), first["reasonCode"].as_str()), (Some("acme-1"), Some("UNKNOWN_DEVICE")));
        assert_eq!(
            (first["rawPayload"].as_str(), first["rawPayloadBytes"].as_u64(), first["rawPayloadTruncated"].as_bool()),
            (Some(r#"{"minute": 4}"#), Some(r#"{"minute": 4}"#.len() as u64), Some(false))
        );
        let vitals = answered(list(listing().query("source", "iot-vitals").build(), &store).await);
        assert_eq!(listed(&vitals), [letter("iot-vitals", 5), letter("iot-vitals", 3)]);
    }

    #[tokio::test]
    async fn a_source_pages_with_the_next_cursor() {
        let store = store().await;
        let first = answered(list(listing().query("limit", "2").build(), &store).await);
        assert_eq!(listed(&first), [letter("fhir-ingest", 4), letter("fhir-ingest", 2)]);
        let next = first.body["next"].as_str().unwrap();
        let second = answered(list(listing().query("limit", "2").query("next", next).build(), &store).await);
        assert_eq!(listed(&second), [letter("fhir-ingest", 1)]);
        assert_eq!(second.body["next"], Value::Null);
    }

    #[tokio::test]
    async fn a_devices_dead_letters_of_every_source_page_with_the_next_cursor() {
        let store = store().await;
        let by_thing = || listing().query("thingName", "acme-1").query("limit", "2");
        let first = answered(list(by_thing().build(), &store).await);
        assert_eq!(first.status, 200);
        assert_eq!(listed(&first), [letter("fhir-ingest", 4), letter("iot-vitals", 3)]);
        let next = first.body["next"].as_str().unwrap();
        let second = answered(list(by_thing().query("next", next).build(), &store).await);
        assert_eq!(listed(&second), [letter("fhir-ingest", 1)], "not acme-2's, nor the one without a device");
        assert_eq!(second.body["next"], Value::Null);
    }

    #[tokio::test]
    async fn the_listing_is_for_admins_with_one_filter_and_a_bounded_page() {
        let store = store().await;
        let both = answered(list(listing().query("thingName", "acme-1").query("source", "iot-vitals").build(), &store).await);
        assert_eq!((both.status, both.error_field()), (400, Some("thingName")));
        for limit in ["0", "101", "ten"] {
            let bad = answered(list(listing().query("limit", limit).build(), &store).await);
            assert_eq!((bad.status, bad.error_field()), (400, Some("limit")), "{limit}");
        }
        for (caller, status) in [(testing::clinician(), 403), (testing::patient("pat-1"), 403), (json!({}), 401)] {
            let answer = answered(list(ApiRequest::new("GET /admin/dead-letters").caller(caller.clone()).build(), &store).await);
            assert_eq!(answer.status, status, "{caller}");
        }
    }
}
