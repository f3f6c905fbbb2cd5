//! Connection keys: what devices and gateways send data to a connector with.
//!
//! A key reads `vwc_<connectionName>_<secret>` (the secret: 32 random bytes, base64url), so the
//! data plane finds the connection from the key alone; a connection name has no `_`, so the
//! first one ends it. Each connection has a primary and a secondary key, both valid, so one
//! can be regenerated while devices still use the other.
//!
//! A key is kept twice, never in clear: `HMAC-SHA-256(pepper, secret)` to verify it (in constant
//! time, as device API keys are verified), and encrypted with KMS under an encryption context
//! naming its connector, connection and slot, because `listKeys` must show it again and a
//! ciphertext copied to another connection must not decrypt there.

use std::future::Future;

use base64::Engine;

use crate::StoreError;

/// The start of every connection key.
pub const KEY_MARKER: &str = "vwc_";

/// Which of a connection's two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    Primary,
    Secondary,
}

impl KeySlot {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        [Self::Primary, Self::Secondary].into_iter().find(|s| s.as_str() == name)
    }
}

/// A fresh key for a connection.
pub fn generate(connection: &str) -> Result<String, StoreError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| StoreError::new("generate a connection key", e))?;
    Ok(format!("{KEY_MARKER}{connection}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)))
}

/// A presented key's connection name and secret; `None` if it is not shaped like a key.
pub fn split(key: &str) -> Option<(&str, &str)> {
    let (connection, secret) = key.strip_prefix(KEY_MARKER)?.split_once('_')?;
    let secret_ok = secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (super::name_ok(connection) && secret_ok).then_some((connection, secret))
}

/// Where a key is: the encryption context its ciphertext is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPlace<'a> {
    pub connector: &'a str,
    pub connection: &'a str,
    pub slot: KeySlot,
}

/// Encrypts keys for keeping and decrypts them for `listKeys`.
pub trait KeyCipher: Send + Sync {
    fn encrypt(&self, key: &str, place: KeyPlace<'_>) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
    /// Fails for a ciphertext made for another place.
    fn decrypt(&self, ciphertext: &[u8], place: KeyPlace<'_>) -> impl Future<Output = Result<String, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_connection_and_split_back() {
        let key = generate("gateway-1").unwrap();
        assert!(key.starts_with("vwc_gateway-1_"));
        let (connection, secret) = split(&key).unwrap();
        assert_eq!((connection, secret.len()), ("gateway-1", 43));
        assert_ne!(generate("gateway-1").unwrap(), key, "random");
        for bad in ["", "vwc_", "vwc_gateway-1", "vwk_gateway-1_x", "vwc_g_short", "vwc_a b_0123456789012345678901234567890123456789012"] {
            assert_eq!(split(bad), None, "{bad}");
        }
        assert_eq!(KeySlot::named("secondary"), Some(KeySlot::Secondary));
        assert_eq!(KeySlot::named("Primary"), None);
    }
}
