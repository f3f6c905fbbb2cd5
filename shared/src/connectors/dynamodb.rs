//! Connectors in the `ConnectorsTable`: one partition per connector (`connectorName`), the
//! connector itself at `item = CONNECTOR` and everything under it (connections, mappings) at
//! other `item` values, so a delete finds it all with one query.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, DeleteRequest, Put, TransactWriteItem, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::connections::{Connection, ConnectionStore, StoredKey, Written};
use super::mappings::{MappingKind, MappingStore, StoredMapping};
use super::{Connector, ConnectorStore, Deleted, Destination, IdentityResolutionType, ProvisioningState};
use crate::platform::dynamodb::{batch_write, is_condition_failed, n, only_conditions_failed, opt_bool, opt_u64, query_all, req_s, s, Item};
use crate::platform::tables::CONNECTORS;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The sort key of the connector's own item.
const CONNECTOR_ITEM: &str = "CONNECTOR";

/// The sort key of a mapping version's item: versions sort as numbers.
fn mapping_item(kind: MappingKind, version: u64) -> String {
    format!("MAPPING#{}#{version:010}", kind.as_str())
}

/// The sort key of a connection's item.
fn connection_item(name: &str) -> String {
    format!("CONNECTION#{name}")
}

/// [`ConnectorStore`] in the `ConnectorsTable`.
#[derive(Debug, Clone)]
pub struct DynamoConnectorStore {
    client: Client,
    table: String,
}

impl DynamoConnectorStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Deletes the items of a connector's partition whose `item` starts with `prefix` (all but
    /// the connector's own when `None`), 25 per batch (the most DynamoDB takes); how many
    /// there were.
    async fn delete_items(&self, name: &str, prefix: Option<&str>) -> Result<usize, StoreError> {
        const OP: &str = "delete a connector's connections and mappings";
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":c", s(name))
            .projection_expression("connectorName, #i")
            .expression_attribute_names("#i", "item");
        query = match prefix {
            Some(p) => query.key_condition_expression("connectorName = :c AND begins_with(#i, :p)").expression_attribute_values(":p", s(p)),
            None => query.key_condition_expression("connectorName = :c"),
        };
        let mut keys = query_all(query, OP, |item| req_s(item, "item", OP)).await?;
        keys.retain(|sort| sort != CONNECTOR_ITEM);
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(keys.len());
        for sort in &keys {
            let delete = DeleteRequest::builder().key("connectorName", s(name)).key("item", s(sort)).build().map_err(|e| StoreError::new(OP, e))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        batch_write(&self.client, &self.table, requests, OP).await?;
        Ok(keys.len())
    }
}

impl DynamoConnectorStore {
    /// One item of a connector's partition, read consistently.
    async fn item(&self, connector: &str, sort: String, op: &'static str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connectorName", s(connector))
            .key("item", s(sort))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(op, &e))?;
        Ok(out.item)
    }

    /// Writes an item of a connector's partition in one transaction with a check that the
    /// connector exists, so nothing is ever written under a deleted connector.
    async fn put_under_connector(&self, connector: &str, put: Put, op: &'static str) -> Result<Written, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("connectorName", s(connector))
            .key("item", s(CONNECTOR_ITEM))
            .condition_expression("attribute_exists(connectorName)")
            .build()
            .map_err(|e| StoreError::new(op, e))?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Written::Done),
            Err(e) if only_conditions_failed(&e) => Ok(if self.get(connector).await?.is_none() { Written::NoConnector } else { Written::Changed }),
            Err(e) => Err(StoreError::sdk(op, &e)),
        }
    }
}

impl FromWiring for DynamoConnectorStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&CONNECTORS)?))
    }
}

fn connector_from(item: &Item, op: &'static str) -> Result<Connector, StoreError> {
    let bad = |what: &str| StoreError::new(op, format!("stored connector has no valid {what}"));
    Ok(Connector {
        name: req_s(item, "connectorName", op)?,
        identity_resolution_type: IdentityResolutionType::named(&req_s(item, "identityResolutionType", op)?).ok_or_else(|| bad("identityResolutionType"))?,
        destination: Destination::named(&req_s(item, "destination", op)?).ok_or_else(|| bad("destination"))?,
        enabled: opt_bool(item, "enabled").ok_or_else(|| bad("enabled"))?,
        provisioning_state: ProvisioningState::Succeeded,
        created_at: req_s(item, "createdAt", op)?,
        updated_at: req_s(item, "updatedAt", op)?,
        version: opt_u64(item, "version").ok_or_else(|| bad("version"))?,
    })
}

impl ConnectorStore for DynamoConnectorStore {
    async fn list(&self) -> Result<Vec<Connector>, StoreError> {
        const OP: &str = "list connectors";
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("#i = :c")
            .expression_attribute_names("#i", "item")
            .expression_attribute_values(":c", s(CONNECTOR_ITEM))
            .into_paginator()
            .send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk(OP, &e))?;
            for item in page.items() {
                all.push(connector_from(item, OP)?);
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn get(&self, name: &str) -> Result<Option<Connector>, StoreError> {
        const OP: &str = "read a connector";
        self.item(name, CONNECTOR_ITEM.to_owned(), OP).await?.map(|i| connector_from(&i, OP)).transpose()
    }

    async fn put(&self, c: &Connector, expected: Option<u64>) -> Result<bool, StoreError> {
        const OP: &str = "write a connector";
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("connectorName", s(&c.name))
            .item("item", s(CONNECTOR_ITEM))
            .item("identityResolutionType", s(c.identity_resolution_type.as_str()))
            .item("destination", s(c.destination.as_str()))
            .item("enabled", AttributeValue::Bool(c.enabled))
            .item("createdAt", s(&c.created_at))
            .item("updatedAt", s(&c.updated_at))
            .item("version", n(c.version));
        put = match expected {
            None => put.condition_expression("attribute_not_exists(connectorName)"),
            Some(v) => put.condition_expression("version = :v").expression_attribute_values(":v", n(v)),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(OP, &e)),
        }
    }

    async fn delete(&self, name: &str, expected: Option<u64>) -> Result<Deleted, StoreError> {
        const OP: &str = "delete a connector";
        // The connector goes first: its connections' keys stop working with it, whatever
        // happens to the rest.
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("connectorName", s(name))
            .key("item", s(CONNECTOR_ITEM))
            .condition_expression(match expected {
                None => "attribute_exists(connectorName)",
                Some(_) => "version = :v",
            });
        if let Some(v) = expected {
            delete = delete.expression_attribute_values(":v", n(v));
        }
        let outcome = match delete.send().await {
            Ok(_) => Deleted::Removed { with: 0 },
            Err(e) if is_condition_failed(&e) => match self.get(name).await? {
                None => Deleted::NotFound,
                Some(_) => return Ok(Deleted::Changed),
            },
            Err(e) => return Err(StoreError::sdk(OP, &e)),
        };
        // Also after NotFound: a delete that stopped half-way is finished by the next one.
        let with = self.delete_items(name, None).await?;
        Ok(match outcome {
            Deleted::Removed { .. } => Deleted::Removed { with },
            other => other,
        })
    }
}

fn key_from(item: &Item, slot: &str, op: &'static str) -> Result<StoredKey, StoreError> {
    let ciphertext = item
        .get(&format!("{slot}Ciphertext"))
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| StoreError::new(op, format!("stored connection has no {slot} key")))?;
    Ok(StoredKey { hash: req_s(item, &format!("{slot}Hash"), op)?, ciphertext })
}

fn connection_from(item: &Item, op: &'static str) -> Result<Connection, StoreError> {
    Ok(Connection {
        connector: req_s(item, "connectorName", op)?,
        name: req_s(item, "connectionName", op)?,
        created_at: req_s(item, "createdAt", op)?,
        updated_at: req_s(item, "updatedAt", op)?,
        version: opt_u64(item, "version").ok_or_else(|| StoreError::new(op, "stored connection has no version"))?,
        primary: key_from(item, "primary", op)?,
        secondary: key_from(item, "secondary", op)?,
    })
}

impl ConnectionStore for DynamoConnectorStore {
    async fn connections(&self, connector: &str) -> Result<Vec<Connection>, StoreError> {
        const OP: &str = "list connections";
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("connectorName = :c AND begins_with(#i, :p)")
            .expression_attribute_names("#i", "item")
            .expression_attribute_values(":c", s(connector))
            .expression_attribute_values(":p", s("CONNECTION#"))
            .consistent_read(true);
        query_all(query, OP, |item| connection_from(item, OP)).await
    }

    async fn connection(&self, connector: &str, name: &str) -> Result<Option<Connection>, StoreError> {
        const OP: &str = "read a connection";
        self.item(connector, connection_item(name), OP).await?.map(|i| connection_from(&i, OP)).transpose()
    }

    async fn put_connection(&self, c: &Connection, expected: Option<u64>) -> Result<Written, StoreError> {
        const OP: &str = "write a connection";
        // The connection must be as it was read.
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("connectorName", s(&c.connector))
            .item("item", s(connection_item(&c.name)))
            .item("connectionName", s(&c.name))
            .item("createdAt", s(&c.created_at))
            .item("updatedAt", s(&c.updated_at))
            .item("version", n(c.version))
            .item("primaryHash", s(&c.primary.hash))
            .item("primaryCiphertext", AttributeValue::B(Blob::new(c.primary.ciphertext.clone())))
            .item("secondaryHash", s(&c.secondary.hash))
            .item("secondaryCiphertext", AttributeValue::B(Blob::new(c.secondary.ciphertext.clone())));
        put = match expected {
            None => put.condition_expression("attribute_not_exists(connectorName)"),
            Some(v) => put.condition_expression("version = :v").expression_attribute_values(":v", n(v)),
        };
        let put = put.build().map_err(|e| StoreError::new(OP, e))?;
        self.put_under_connector(&c.connector, put, OP).await
    }

    async fn delete_connection(&self, connector: &str, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete a connection";
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("connectorName", s(connector))
            .key("item", s(connection_item(name)))
            .condition_expression("attribute_exists(connectorName)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(OP, &e)),
        }
    }
}

fn mapping_from(item: &Item, kind: MappingKind, op: &'static str) -> Result<StoredMapping, StoreError> {
    Ok(StoredMapping {
        connector: req_s(item, "connectorName", op)?,
        kind,
        version: opt_u64(item, "version").ok_or_else(|| StoreError::new(op, "stored mapping has no version"))?,
        text: req_s(item, "text", op)?,
        updated_at: req_s(item, "updatedAt", op)?,
    })
}

impl MappingStore for DynamoConnectorStore {
    async fn mapping(&self, connector: &str, kind: MappingKind, version: Option<u64>) -> Result<Option<StoredMapping>, StoreError> {
        const OP: &str = "read a mapping";
        if let Some(v) = version {
            return self.item(connector, mapping_item(kind, v), OP).await?.map(|i| mapping_from(&i, kind, OP)).transpose();
        }
        // The latest: the highest version of the kind.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("connectorName = :c AND begins_with(#i, :p)")
            .expression_attribute_names("#i", "item")
            .expression_attribute_values(":c", s(connector))
            .expression_attribute_values(":p", s(format!("MAPPING#{}#", kind.as_str())))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        out.items().first().map(|i| mapping_from(i, kind, OP)).transpose()
    }

    async fn delete_mapping(&self, connector: &str, kind: MappingKind) -> Result<usize, StoreError> {
        self.delete_items(connector, Some(&format!("MAPPING#{}#", kind.as_str()))).await
    }

    async fn put_mapping(&self, m: &StoredMapping) -> Result<Written, StoreError> {
        const OP: &str = "write a mapping";
        let put = Put::builder()
            .table_name(&self.table)
            .item("connectorName", s(&m.connector))
            .item("item", s(mapping_item(m.kind, m.version)))
            .item("version", n(m.version))
            .item("text", s(&m.text))
            .item("updatedAt", s(&m.updated_at))
            .condition_expression("attribute_not_exists(connectorName)")
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        self.put_under_connector(&m.connector, put, OP).await
    }
}
