//! The device-files bucket over S3: presigned PUT URLs, streamed reads of uploaded object
//! versions, and setting aside versions that are refused.

use super::registration::{Hasher, ObjectRead, UploadedObjects, REFUSED_PREFIX};
use super::{UploadSigner, LINK_LIFETIME};
use crate::platform::aws::{copy_source, object_gone};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// [`UploadSigner`] with the AWS SDK's S3 presigning, for the bucket of `DEVICE_FILES_BUCKET`.
#[derive(Debug, Clone)]
pub struct S3UploadSigner {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3UploadSigner {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    /// The bucket signed for.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl FromWiring for S3UploadSigner {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.s3(), w.settings.required("DEVICE_FILES_BUCKET")?))
    }
}

impl UploadSigner for S3UploadSigner {
    async fn presign_put(&self, key: &str, content_type: &str, content_length: Option<u64>) -> Result<String, StoreError> {
        const OP: &str = "presign upload";
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(LINK_LIFETIME).map_err(|e| StoreError::new(OP, e))?;
        let length = content_length.map(i64::try_from).transpose().map_err(|e| StoreError::new(OP, e))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_content_length(length)
            .presigned(config)
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(request.uri().to_owned())
    }
}

/// [`UploadedObjects`] over S3 `GetObject` (streamed), `CopyObject` and `DeleteObject` on
/// versions (the bucket comes with each event).
#[derive(Debug, Clone)]
pub struct S3UploadedObjects {
    client: aws_sdk_s3::Client,
}

impl S3UploadedObjects {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

impl FromWiring for S3UploadedObjects {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.s3()))
    }
}

impl UploadedObjects for S3UploadedObjects {
    async fn read(&self, bucket: &str, key: &str, version_id: Option<&str>, max_bytes: u64) -> Result<ObjectRead, StoreError> {
        const OP: &str = "read upload";
        let get = self.client.get_object().bucket(bucket).key(key).set_version_id(version_id.map(str::to_owned));
        let out = match get.send().await {
            Ok(out) => out,
            Err(e) if object_gone(&e) => return Ok(ObjectRead::Missing),
            Err(e) => return Err(StoreError::sdk(OP, &e)),
        };
        let length = out.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0);
        if length > max_bytes {
            return Ok(ObjectRead::TooLarge(length));
        }
        let mut body = out.body;
        let mut hasher = Hasher::default();
        while let Some(chunk) = body.try_next().await.map_err(|e| StoreError::new(OP, e))? {
            hasher.update(&chunk);
            if hasher.size() > max_bytes {
                return Ok(ObjectRead::TooLarge(hasher.size()));
            }
        }
        Ok(ObjectRead::Facts(hasher.finish()))
    }

    async fn set_aside(&self, bucket: &str, key: &str, version_id: &str) -> Result<String, StoreError> {
        let kept = format!("{REFUSED_PREFIX}{key}/{version_id}");
        let source = copy_source(bucket, key, Some(version_id));
        match self.client.copy_object().bucket(bucket).key(&kept).copy_source(source).send().await {
            Ok(_) => {}
            // Set aside and deleted by an earlier delivery of the same event.
            Err(e) if object_gone(&e) => return Ok(kept),
            Err(e) => return Err(StoreError::sdk("set refused upload aside", &e)),
        }
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| StoreError::sdk("delete refused upload version", &e))?;
        Ok(kept)
    }
}
