use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::{Message, MessageStore, MessageType, PolarisTime};
use crate::platform::dynamodb::{batch_write, conditional_put, delete_all, put_over_version, n, opt_s, opt_u64, query_all, req_s, s, Item};
use crate::platform::tables::{MESSAGES, MESSAGES_BY_RECEIVER, MESSAGES_BY_SENDER};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Messages in the `MessagesTable`.
#[derive(Debug, Clone)]
pub struct DynamoMessageStore {
    client: Client,
    table: String,
}

impl DynamoMessageStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Every message of one index partition, newest first, following DynamoDB's pages.
    async fn all_of(&self, index: &str, key: &str, value: &str) -> Result<Vec<Message>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", s(value))
            .scan_index_forward(false);
        query_all(query, "list messages", from_item).await
    }
}

impl FromWiring for DynamoMessageStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&MESSAGES)?))
    }
}

fn to_item(m: &Message) -> Item {
    let mut item = Item::from([
        ("uuid".to_owned(), s(&m.uuid)),
        ("createdAt".to_owned(), s(format_utc(m.created.at.to_utc()))),
        ("created".to_owned(), s(m.created.format())),
        ("createdBy".to_owned(), s(&m.created_by)),
        ("modified".to_owned(), s(m.modified.format())),
        ("modifiedBy".to_owned(), s(&m.modified_by)),
        ("sender".to_owned(), s(&m.sender)),
        ("senderType".to_owned(), s(&m.sender_type)),
        ("receiver".to_owned(), s(&m.receiver)),
        ("receiverType".to_owned(), s(&m.receiver_type)),
        ("messageType".to_owned(), n(m.message_type.value())),
        ("version".to_owned(), n(m.version)),
    ]);
    match compressed(&m.content) {
        Some(gz) => item.insert("contentDeflate".to_owned(), AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(gz))),
        None => item.insert("content".to_owned(), s(&m.content)),
    };
    for (k, v) in [("retrieved", m.retrieved), ("confirmed", m.confirmed), ("cancelled", m.cancelled)] {
        if let Some(t) = v {
            item.insert(k.to_owned(), s(t.format()));
        }
    }
    for (k, v) in [("confirmedBy", &m.confirmed_by), ("relatedMessage", &m.related_message), ("cancelledBy", &m.cancelled_by), ("internal", &m.internal)] {
        if let Some(v) = v {
            item.insert(k.to_owned(), s(v));
        }
    }
    item
}

/// Contents longer than this are kept deflated (AWS's advice for large attributes): a long
/// message then costs fewer read units, and a party's listing fewer 1 MB pages.
const COMPRESS_CONTENT_ABOVE: usize = 1024;

/// The deflated content, if it is long and deflating makes it shorter.
fn compressed(content: &str) -> Option<Vec<u8>> {
    use std::io::Write;
    if content.len() <= COMPRESS_CONTENT_ABOVE {
        return None;
    }
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(content.as_bytes()).ok()?;
    encoder.finish().ok().filter(|gz| gz.len() < content.len())
}

/// The content, exactly as sent, from `content` or inflated from `contentDeflate`.
fn content(item: &Item) -> Result<String, StoreError> {
    use std::io::Read;
    const OP: &str = "read message content";
    if let Some(text) = opt_s(item, "content") {
        return Ok(text);
    }
    let deflated = item.get("contentDeflate").and_then(|v| v.as_b().ok()).ok_or_else(|| StoreError::new(OP, "item has no `content`"))?;
    let mut text = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_ref()).read_to_string(&mut text).map_err(|e| StoreError::new(OP, e))?;
    Ok(text)
}

fn from_item(item: &Item) -> Result<Message, StoreError> {
    const OP: &str = "read message";
    let time = |k: &str| -> Result<Option<PolarisTime>, StoreError> {
        opt_s(item, k).map(|t| PolarisTime::parse(&t).map_err(|e| StoreError::new(OP, e))).transpose()
    };
    let required_time = |k: &'static str| time(k)?.ok_or_else(|| StoreError::new(OP, format!("item has no `{k}`")));
    let value = item.get("messageType").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| StoreError::new(OP, "item has no `messageType`"))?;
    Ok(Message {
        uuid: req_s(item, "uuid", OP)?,
        created: required_time("created")?,
        created_by: req_s(item, "createdBy", OP)?,
        modified: required_time("modified")?,
        modified_by: req_s(item, "modifiedBy", OP)?,
        sender: req_s(item, "sender", OP)?,
        sender_type: req_s(item, "senderType", OP)?,
        receiver: req_s(item, "receiver", OP)?,
        receiver_type: req_s(item, "receiverType", OP)?,
        content: content(item)?,
        message_type: MessageType::from_value(value).ok_or_else(|| StoreError::new(OP, format!("unknown message type {value}")))?,
        retrieved: time("retrieved")?,
        confirmed: time("confirmed")?,
        confirmed_by: opt_s(item, "confirmedBy"),
        related_message: opt_s(item, "relatedMessage"),
        cancelled: time("cancelled")?,
        cancelled_by: opt_s(item, "cancelledBy"),
        internal: opt_s(item, "internal"),
        version: opt_u64(item, "version").unwrap_or(1),
    })
}

impl MessageStore for DynamoMessageStore {
    async fn create(&self, message: &Message) -> Result<bool, StoreError> {
        let put = self.client.put_item().table_name(&self.table).set_item(Some(to_item(message))).condition_expression("attribute_not_exists(#u)").expression_attribute_names("#u", "uuid");
        conditional_put(put, "create message").await
    }

    async fn get(&self, uuid: &str) -> Result<Option<Message>, StoreError> {
        let out = self.client.get_item().table_name(&self.table).key("uuid", s(uuid)).consistent_read(true).send().await.map_err(|e| StoreError::sdk("get message", &e))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn update(&self, message: &Message) -> Result<bool, StoreError> {
        put_over_version(&self.client, &self.table, to_item(message), message.version, "uuid", "update message").await
    }

    async fn sent_by(&self, sender: &str) -> Result<Vec<Message>, StoreError> {
        self.all_of(MESSAGES_BY_SENDER.name, MESSAGES_BY_SENDER.partition_key, sender).await
    }

    async fn received_by(&self, receiver: &str) -> Result<Vec<Message>, StoreError> {
        self.all_of(MESSAGES_BY_RECEIVER.name, MESSAGES_BY_RECEIVER.partition_key, receiver).await
    }

    async fn create_many(&self, messages: &[Message]) -> Result<(), StoreError> {
        const OP: &str = "create messages";
        let requests = messages
            .iter()
            .map(|m| PutRequest::builder().set_item(Some(to_item(m))).build().map(|p| WriteRequest::builder().put_request(p).build()).map_err(|e| StoreError::new(OP, e)))
            .collect::<Result<Vec<_>, _>>()?;
        batch_write(&self.client, &self.table, requests, OP).await
    }

    async fn drop_all(&self) -> Result<usize, StoreError> {
        delete_all(&self.client, &self.table, "uuid", "drop messages").await
    }
}
