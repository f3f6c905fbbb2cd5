//! Firmware images (admin API, role `admin`):
//!
//! | route | function |
//! |---|---|
//! | `POST /admin/firmware` | `admin-firmware-register` |
//! | `GET /admin/firmware?deviceModel=` | `admin-firmware-list` |
//!
//! Registering an image records its version, device model, SHA-256 and size, and answers a
//! presigned PUT (15 minutes) for `firmware/<model>/<version>/<file>` in the device-files
//! bucket; the device later checks the SHA-256 before applying.

use std::future::Future;

use chrono::Utc;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{json_body, query_param, require, respond, ApiError};
use crate::auth::Role;
use crate::devices::slug;
use crate::time::format_utc;
use crate::uploads::UploadSigner;
use crate::StoreError;

/// Largest firmware image accepted.
pub const MAX_FIRMWARE_BYTES: u64 = 512 * 1024 * 1024;

/// A registered firmware image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareImage {
    pub firmware_id: String,
    pub version: String,
    pub device_model: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub object_key: String,
    pub created_at: String,
}

impl FirmwareImage {
    pub fn to_json(&self) -> Value {
        json!({
            "firmwareId": self.firmware_id, "version": self.version, "deviceModel": self.device_model,
            "sha256": self.sha256, "sizeBytes": self.size_bytes, "objectKey": self.object_key, "createdAt": self.created_at,
        })
    }
}

/// Where firmware images are recorded.
pub trait FirmwareStore: Send + Sync {
    /// Records an image unless its id is taken; false when it is.
    fn create(&self, image: &FirmwareImage) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The image with this id.
    fn get(&self, firmware_id: &str) -> impl Future<Output = Result<Option<FirmwareImage>, StoreError>> + Send;
    /// Every image, or those of one device model.
    fn list(&self, device_model: Option<&str>) -> impl Future<Output = Result<Vec<FirmwareImage>, StoreError>> + Send;
}

/// What the firmware routes need.
pub struct FirmwareDeps<F, S> {
    pub images: F,
    pub signer: S,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Registration {
    version: String,
    device_model: String,
    sha256: String,
    size_bytes: u64,
}

fn version_ok(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
}

/// `POST /admin/firmware` with `{version, deviceModel, sha256, sizeBytes}`: 201 with the image
/// and its `uploadUrl`.
pub async fn register<F: FirmwareStore, S: UploadSigner>(request: Request, deps: &FirmwareDeps<F, S>) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let r: Registration = json_body(&request)?;
        if !version_ok(&r.version) {
            return Err(ApiError::bad("version", "must be 1-64 of letters, digits, '.', '-', '_' or '+'"));
        }
        let model = r.device_model.trim();
        if model.is_empty() || model.len() > 128 {
            return Err(ApiError::bad("deviceModel", "must be 1-128 characters"));
        }
        let sha256 = r.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad("sha256", "must be 64 hexadecimal characters"));
        }
        if r.size_bytes == 0 || r.size_bytes > MAX_FIRMWARE_BYTES {
            return Err(ApiError::bad("sizeBytes", format!("must be from 1 to {MAX_FIRMWARE_BYTES}")));
        }
        let model_slug = slug(model);
        let firmware_id = format!("{model_slug}-{}", r.version.to_ascii_lowercase());
        let image = FirmwareImage {
            object_key: format!("firmware/{model_slug}/{}/{firmware_id}.bin", r.version),
            firmware_id,
            version: r.version,
            device_model: model.to_owned(),
            sha256,
            size_bytes: r.size_bytes,
            created_at: format_utc(Utc::now()),
        };
        if !deps.images.create(&image).await? {
            return Err(ApiError::Conflict(format!("firmware {} {} is already registered", image.device_model, image.version)));
        }
        let upload_url = deps.signer.presign_put(&image.object_key, "application/octet-stream").await?;
        let mut body = image.to_json();
        body["uploadUrl"] = json!(upload_url);
        Ok((201, body))
    }
    .await)
}

/// `GET /admin/firmware?deviceModel=`
pub async fn list<F: FirmwareStore, S>(request: Request, deps: &FirmwareDeps<F, S>) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let mut images = deps.images.list(query_param(&request, "deviceModel").as_deref()).await?;
        images.sort_by(|a, b| (&a.device_model, &a.created_at).cmp(&(&b.device_model, &b.created_at)));
        Ok((200, json!({"firmware": images.iter().map(FirmwareImage::to_json).collect::<Vec<_>>()})))
    }
    .await)
}

/// [`FirmwareStore`] in the `FirmwareTable`.
pub struct DynamoFirmwareStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl FirmwareStore for DynamoFirmwareStore {
    async fn create(&self, i: &FirmwareImage) -> Result<bool, StoreError> {
        use crate::dynamo::s;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("firmwareId", s(&i.firmware_id))
            .item("version", s(&i.version))
            .item("deviceModel", s(&i.device_model))
            .item("sha256", s(&i.sha256))
            .item("sizeBytes", aws_sdk_dynamodb::types::AttributeValue::N(i.size_bytes.to_string()))
            .item("objectKey", s(&i.object_key))
            .item("createdAt", s(&i.created_at))
            .condition_expression("attribute_not_exists(firmwareId)");
        crate::dynamo::put_if_absent(put, "register firmware").await
    }

    async fn get(&self, firmware_id: &str) -> Result<Option<FirmwareImage>, StoreError> {
        const OP: &str = "read firmware";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("firmwareId", crate::dynamo::s(firmware_id))
            .send()
            .await
            .map_err(|e| StoreError::new(OP, crate::dynamo::describe(&e)))?;
        out.item().map(|i| image_from(i, OP)).transpose()
    }

    async fn list(&self, device_model: Option<&str>) -> Result<Vec<FirmwareImage>, StoreError> {
        use crate::dynamo::s;
        const OP: &str = "list firmware";
        let mut request = self.client.scan().table_name(&self.table);
        if let Some(m) = device_model {
            request = request.filter_expression("deviceModel = :m").expression_attribute_values(":m", s(m));
        }
        let mut pages = request.into_paginator().send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::new(OP, crate::dynamo::describe(&e)))?;
            for item in page.items() {
                images.push(image_from(item, OP)?);
            }
        }
        Ok(images)
    }
}

fn image_from(item: &crate::dynamo::Item, op: &'static str) -> Result<FirmwareImage, StoreError> {
    use crate::dynamo::req_s;
    Ok(FirmwareImage {
        firmware_id: req_s(item, "firmwareId", op)?,
        version: req_s(item, "version", op)?,
        device_model: req_s(item, "deviceModel", op)?,
        sha256: req_s(item, "sha256", op)?,
        size_bytes: item.get("sizeBytes").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0),
        object_key: req_s(item, "objectKey", op)?,
        created_at: req_s(item, "createdAt", op)?,
    })
}

/// The AWS-backed dependencies, from the function's environment.
pub async fn aws_deps() -> Result<FirmwareDeps<DynamoFirmwareStore, crate::uploads::S3UploadSigner>, crate::tables::MissingSetting> {
    let config = crate::aws::load_config().await;
    Ok(FirmwareDeps {
        images: DynamoFirmwareStore { client: crate::aws::dynamodb(&config), table: crate::tables::FIRMWARE.name_from_env()? },
        signer: crate::uploads::S3UploadSigner {
            client: crate::aws::s3(&config),
            bucket: std::env::var("DEVICE_FILES_BUCKET").map_err(|_| crate::tables::MissingSetting("DEVICE_FILES_BUCKET"))?,
        },
    })
}
