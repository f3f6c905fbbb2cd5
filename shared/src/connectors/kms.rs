//! [`KeyCipher`] with AWS KMS: connection keys encrypted under the template's
//! `ConnectorKeysKey`, bound by encryption context to their connector, connection and slot.

use std::collections::HashMap;

use aws_sdk_kms::primitives::Blob;

use super::keys::{KeyCipher, KeyPlace};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Connection keys encrypted with a KMS key.
#[derive(Debug, Clone)]
pub struct KmsKeyCipher {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsKeyCipher {
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }
}

impl FromWiring for KmsKeyCipher {
    /// The KMS key named by the setting `CONNECTOR_KEYS_KMS_KEY`.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.kms(), w.settings.required("CONNECTOR_KEYS_KMS_KEY")?))
    }
}

/// The encryption context a key is bound to: decrypting needs the same, so a ciphertext moved
/// to another connector, connection or slot does not decrypt.
fn context(place: KeyPlace<'_>) -> HashMap<String, String> {
    HashMap::from([
        ("connector".to_owned(), place.connector.to_owned()),
        ("connection".to_owned(), place.connection.to_owned()),
        ("slot".to_owned(), place.slot.as_str().to_owned()),
    ])
}

impl KeyCipher for KmsKeyCipher {
    async fn encrypt(&self, key: &str, place: KeyPlace<'_>) -> Result<Vec<u8>, StoreError> {
        const OP: &str = "encrypt a connection key";
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(key.as_bytes()))
            .set_encryption_context(Some(context(place)))
            .send()
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        out.ciphertext_blob().map(|b| b.as_ref().to_vec()).ok_or_else(|| StoreError::new(OP, "KMS answered no ciphertext"))
    }

    async fn decrypt(&self, ciphertext: &[u8], place: KeyPlace<'_>) -> Result<String, StoreError> {
        const OP: &str = "decrypt a connection key";
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(context(place)))
            .send()
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        let plain = out.plaintext().ok_or_else(|| StoreError::new(OP, "KMS answered no plaintext"))?;
        String::from_utf8(plain.as_ref().to_vec()).map_err(|_| StoreError::new(OP, "the decrypted key is not text"))
    }
}
