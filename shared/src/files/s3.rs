//! The device-files bucket over S3: presigned PUT URLs, and streamed reads of uploaded objects.

use super::registration::{Hasher, ObjectFacts, ObjectReader};
use super::{UploadSigner, LINK_LIFETIME};
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
    async fn presign_put(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        const OP: &str = "presign upload";
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(LINK_LIFETIME).map_err(|e| StoreError::new(OP, e))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .presigned(config)
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(request.uri().to_owned())
    }
}

/// [`ObjectReader`] over S3 `GetObject`, streaming (the bucket comes with each event).
#[derive(Debug, Clone)]
pub struct S3ObjectReader {
    client: aws_sdk_s3::Client,
}

impl S3ObjectReader {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

impl FromWiring for S3ObjectReader {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.s3()))
    }
}

impl ObjectReader for S3ObjectReader {
    async fn facts(&self, bucket: &str, key: &str) -> Result<Option<ObjectFacts>, StoreError> {
        const OP: &str = "read upload";
        let out = match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(StoreError::sdk(OP, &e)),
        };
        let mut body = out.body;
        let mut hasher = Hasher::default();
        while let Some(chunk) = body.try_next().await.map_err(|e| StoreError::new(OP, e))? {
            hasher.update(&chunk);
        }
        Ok(Some(hasher.finish()))
    }
}
