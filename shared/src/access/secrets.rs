//! The API key pepper: a server-side secret in AWS Secrets Manager, read once per cold start on
//! first use and kept for the life of the process.

use std::future::Future;

use super::api_keys::KeyHasher;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Where the key hasher's pepper comes from.
pub trait PepperSource: Send + Sync {
    fn hasher(&self) -> impl Future<Output = Result<&KeyHasher, StoreError>> + Send;
}

/// A fixed pepper (unit tests).
impl PepperSource for KeyHasher {
    async fn hasher(&self) -> Result<&KeyHasher, StoreError> {
        Ok(self)
    }
}

/// The pepper in Secrets Manager, fetched on first use.
pub struct SecretsManagerPepper {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    hasher: tokio::sync::OnceCell<KeyHasher>,
}

impl SecretsManagerPepper {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self { client, secret_id: secret_id.into(), hasher: tokio::sync::OnceCell::new() }
    }
}

impl FromWiring for SecretsManagerPepper {
    /// The secret named by the setting `API_KEY_PEPPER_SECRET`.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.secrets_manager(), w.settings.required("API_KEY_PEPPER_SECRET")?))
    }
}

impl PepperSource for SecretsManagerPepper {
    async fn hasher(&self) -> Result<&KeyHasher, StoreError> {
        self.hasher
            .get_or_try_init(|| async {
                const OP: &str = "read the API key pepper";
                let out = self.client.get_secret_value().secret_id(&self.secret_id).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
                let pepper = out
                    .secret_string()
                    .filter(|s| s.len() >= 32)
                    .ok_or_else(|| StoreError::new(OP, "the secret is missing or shorter than 32 characters"))?;
                Ok(KeyHasher::new(pepper.as_bytes()))
            })
            .await
    }
}
