//! `GET /admin/dead-letters?source=&thingName=&limit=&next=` (`admin-dead-letters`, role
//! `admin`): refused messages of one source, or of one device across sources, newest first.

use lambda_http::Request;
use serde_json::{json, Value};

use super::{DeadLetter, DeadLetterStore};
use crate::access::{require, Role};
use crate::platform::http::{limit_param, query_param, ApiError, Reply};

fn dead_letter_json(l: &DeadLetter) -> Value {
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
