//! [`InboxObjects`] over S3: every call names the object version the event named.

use aws_sdk_s3::primitives::ByteStream;

use super::{InboxObjects, ObjectRef};
use crate::platform::aws::{copy_source, object_gone};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The inbox bucket (the bucket comes with each event).
#[derive(Debug, Clone)]
pub struct S3Inbox {
    client: aws_sdk_s3::Client,
}

impl S3Inbox {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

impl FromWiring for S3Inbox {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.s3()))
    }
}

impl InboxObjects for S3Inbox {
    async fn open(&self, object: &ObjectRef, from: u64) -> Result<Option<ByteStream>, StoreError> {
        use aws_sdk_s3::error::ProvideErrorMetadata as _;
        let request = self.client.get_object().bucket(&object.bucket).key(&object.key).set_version_id(object.version.clone());
        let request = if from > 0 { request.range(format!("bytes={from}-")) } else { request };
        match request.send().await {
            Ok(out) => Ok(Some(out.body)),
            Err(e) if object_gone(&e) => Ok(None),
            // A run that saved at the very end of the file: nothing is left to read.
            Err(e) if from > 0 && e.as_service_error().and_then(|s| s.code()) == Some("InvalidRange") => Ok(Some(ByteStream::from_static(b""))),
            Err(e) => Err(StoreError::sdk("read inbox file", &e)),
        }
    }

    async fn exists(&self, object: &ObjectRef) -> Result<bool, StoreError> {
        match self.client.head_object().bucket(&object.bucket).key(&object.key).set_version_id(object.version.clone()).send().await {
            Ok(_) => Ok(true),
            Err(e) if object_gone(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("look for inbox file", &e)),
        }
    }

    async fn copy(&self, object: &ObjectRef, to: &str) -> Result<bool, StoreError> {
        let source = copy_source(&object.bucket, &object.key, object.version.as_deref());
        match self.client.copy_object().bucket(&object.bucket).key(to).copy_source(source).send().await {
            Ok(_) => Ok(true),
            Err(e) if object_gone(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("copy inbox file", &e)),
        }
    }

    async fn put_json(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| StoreError::sdk("write inbox report", &e))?;
        Ok(())
    }

    async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version.clone())
            .send()
            .await
            .map_err(|e| StoreError::sdk("remove inbox file", &e))?;
        Ok(())
    }
}
