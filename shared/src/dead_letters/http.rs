//! `GET /admin/dead-letters?source=&limit=&next=` (`admin-dead-letters`, role `admin`): refused
//! messages of one source, newest first.

use lambda_http::Request;
use serde_json::{json, Value};

use super::{DeadLetter, DeadLetterStore};
use crate::access::{require, Role};
use crate::platform::http::{limit_param, query_param, ApiError, Reply};

fn dead_letter_json(l: &DeadLetter) -> Value {
    json!({
        "id": l.id, "source": l.source, "thingName": l.thing_name, "reasonCode": l.reason_code,
        "reason": l.reason, "rawPayload": l.raw_payload, "receivedAt": l.received_at, "recordedAt": l.recorded_at,
    })
}

/// The source listed when none is asked for.
pub const DEFAULT_SOURCE: &str = "fhir-ingest";

/// `GET /admin/dead-letters?source=fhir-ingest&limit=&next=`
pub async fn list<L: DeadLetterStore>(request: Request, dead_letters: &L) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let source = query_param(&request, "source").unwrap_or_else(|| DEFAULT_SOURCE.to_owned());
    let limit = limit_param(&request, 25, 100)?;
    let page = dead_letters.list(&source, limit, query_param(&request, "next").as_deref()).await?;
    Ok((200, json!({"deadLetters": page.items.iter().map(dead_letter_json).collect::<Vec<_>>(), "next": page.next})))
}
