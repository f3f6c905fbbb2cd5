//! The activation's secrets: how they are drawn (the reference's alphabets and lengths) and how
//! they are kept (only as Argon2id hashes).
//!
//! - The OTP: 4 characters of `abcdefghjkmnpqrstuvwxyz23456789` (no `i`, `l`, `o`, `0`, `1`,
//!   which people misread), checked case-sensitively as the reference checks it.
//! - Activation and authorisation codes: 30 characters of `A-Z0-9` (155 bits); a ward
//!   tablet's activation code: 9 digits.
//!
//! OTPs and authorisation codes are kept as Argon2id PHC strings with their own random salt.
//! An activation code is what the activation is found by, so it is kept as an Argon2id hash with
//! one salt per deployment, derived from the server-side pepper: the same code always gives the
//! same key, and a copy of the table without the pepper tells nothing.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::access::api_keys::KeyHasher;
use crate::StoreError;

pub const OTP_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const OTP_LENGTH: usize = 4;
pub const CODE_LENGTH: usize = 30;
/// A ward tablet's activation code: 9 digits, which a person types on the tablet.
pub const DEVICE_CODE_ALPHABET: &[u8] = b"0123456789";
pub const DEVICE_CODE_LENGTH: usize = 9;

/// `length` characters of `alphabet`, each drawn uniformly from the operating system's CSPRNG
/// (bytes beyond the largest multiple of the alphabet's size are drawn again, so no character
/// is likelier than another).
pub fn random_string(alphabet: &[u8], length: usize) -> Result<String, StoreError> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(length);
    let mut byte = [0u8; 1];
    while out.len() < length {
        getrandom::fill(&mut byte).map_err(|e| StoreError::new("draw a code", e))?;
        if usize::from(byte[0]) < limit {
            out.push(char::from(alphabet[usize::from(byte[0]) % alphabet.len()]));
        }
    }
    Ok(out)
}

/// An Argon2id PHC string of `secret` with a fresh salt.
pub fn hash_secret(secret: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| StoreError::new("salt a secret", e))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::new("salt a secret", e))?;
    Ok(Argon2::default().hash_password(secret.as_bytes(), &salt).map_err(|e| StoreError::new("hash a secret", e))?.to_string())
}

/// Whether `secret` is the one `phc` was made from (constant time, inside argon2).
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok())
}

/// The key an activation code is found by: Argon2id of the code with the deployment's salt.
pub fn code_key(code: &str, pepper: &KeyHasher) -> Result<String, StoreError> {
    let derived = pepper.hash("vitalwire activation code salt");
    let salt = derived.as_bytes().get(..16).ok_or_else(|| StoreError::new("hash an activation code", "short pepper hash"))?;
    let mut key = [0u8; 32];
    Argon2::default().hash_password_into(code.as_bytes(), salt, &mut key).map_err(|e| StoreError::new("hash an activation code", e))?;
    Ok(hex::encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_references_alphabets_and_lengths() {
        for _ in 0..200 {
            let otp = random_string(OTP_ALPHABET, OTP_LENGTH).unwrap();
            assert_eq!(otp.len(), 4);
            assert!(otp.bytes().all(|b| OTP_ALPHABET.contains(&b)), "{otp}");
            assert!(!otp.contains(['i', 'l', 'o', '0', '1']));
            let code = random_string(CODE_ALPHABET, CODE_LENGTH).unwrap();
            assert!(code.len() == 30 && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{code}");
        }
        // Every character of the OTP alphabet turns up: the draw is not biased to a part of it.
        let drawn: String = (0..300).map(|_| random_string(OTP_ALPHABET, OTP_LENGTH).unwrap()).collect();
        assert!(OTP_ALPHABET.iter().all(|c| drawn.as_bytes().contains(c)));
    }

    #[test]
    fn secrets_are_kept_only_as_salted_argon2id_hashes() {
        let phc = hash_secret("ab3d").unwrap();
        assert!(phc.starts_with("$argon2id$") && !phc.contains("ab3d"));
        assert_ne!(phc, hash_secret("ab3d").unwrap(), "a fresh salt each time");
        assert!(verify_secret("ab3d", &phc));
        assert!(!verify_secret("AB3D", &phc), "case-sensitive, as the reference");
        assert!(!verify_secret("ab3d", "not a hash"));
        let pepper = KeyHasher::new(b"unit-test-pepper-of-32-bytes-or-more".to_vec());
        let key = code_key("ABCDEFGHJKMNPQRSTUVWXYZ2345678", &pepper).unwrap();
        assert_eq!(key, code_key("ABCDEFGHJKMNPQRSTUVWXYZ2345678", &pepper).unwrap(), "found by its key");
        assert_ne!(key, code_key("ABCDEFGHJKMNPQRSTUVWXYZ2345679", &pepper).unwrap());
        assert_ne!(key, code_key("ABCDEFGHJKMNPQRSTUVWXYZ2345678", &KeyHasher::new(b"another-pepper-of-32-bytes-or-more!!".to_vec())).unwrap());
    }
}
