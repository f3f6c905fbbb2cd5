//! Activation, compatible with the Polaris activation API (notes on the reference in
//! `docs/polaris/activation-reference.md`):
//! - a clinician asks for an activation of a patient and gets a one-time code and OTP to hand
//!   over; the patient's app exchanges them once for an authorisation code, which it then
//!   exchanges for 15-minute patient JWTs;
//! - an administrator registers a ward tablet (a SEND Entry device, [`devices`]) and asks for
//!   its 9-digit activation code; the tablet exchanges it once for an authorisation code, which
//!   gives 24-hour device JWTs;
//! - with a device JWT, the tablet signs clinicians in by their SEND Entry identifier (their
//!   login records, [`clinicians`]) and gets 15-minute clinician JWTs.
//!
//! Decided where the reference is weaker than this platform's rules: activation codes are kept
//! hashed (the reference keeps them in clear), so asking again for a patient's activation gives
//! a new code as well as a new OTP (the old pair stops working); an activation expires at the
//! end of the fifth UTC day after it was asked for, and failed attempts do not move that (in
//! the reference each one does); an authorisation code lasts [`AUTHORISATION_CODE_DAYS`]
//! unless a new activation replaces it (the reference's never expire).
//!
//! A device's 9-digit code is the only secret it is activated with (10^9 codes, no OTP), so
//! wrong device codes are counted per hour across the deployment and, past
//! [`DEVICE_GUESSES_PER_HOUR`], device activation answers as if every code were unknown until
//! the hour ends: a guesser then has at most 120 × 100 tries against a code's five days, one
//! chance in 800 000 per open code (the reference has no limit).

pub mod clinicians;
pub mod codes;
pub mod devices;
mod dynamodb;
pub mod http;
#[cfg(any(test, feature = "memory"))]
pub mod memory;

use std::future::Future;

use chrono::{DateTime, Duration, NaiveTime, Utc};

pub use dynamodb::DynamoActivationStore;

use crate::StoreError;

/// Wrong OTPs an activation takes; from then on it answers as if unknown.
pub const MAX_ATTEMPTS: u32 = 10;
/// An activation runs to the end of this UTC day after it was asked for.
pub const EXPIRY_DAYS: i64 = 5;
/// How long a patient JWT lasts.
pub const PATIENT_JWT_LIFETIME: Duration = Duration::seconds(900);
/// How long a device JWT lasts.
pub const DEVICE_JWT_LIFETIME: Duration = Duration::seconds(86_400);
/// How long a clinician JWT lasts.
pub const CLINICIAN_JWT_LIFETIME: Duration = Duration::seconds(900);
/// How long an authorisation code lasts, unless a new activation replaces it first.
pub const AUTHORISATION_CODE_DAYS: i64 = 365;
/// Wrong device activation codes taken per hour, deployment-wide, before device activation
/// closes for the rest of the hour.
pub const DEVICE_GUESSES_PER_HOUR: u64 = 100;

/// Whom an activation lets in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Holder {
    Patient(String),
    /// A SEND Entry device (ward tablet), by its uuid.
    Device(String),
}

impl Holder {
    pub fn id(&self) -> &str {
        match self {
            Self::Patient(id) | Self::Device(id) => id,
        }
    }

    /// The claim its JWTs name it by, and the kind of caller it is.
    pub fn claim(&self) -> &'static str {
        match self {
            Self::Patient(_) => "patient_id",
            Self::Device(_) => "device_id",
        }
    }
}

/// One activation of a patient or device, found by its code's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The hash its code is found by ([`codes::code_key`]).
    pub code_key: String,
    pub uuid: String,
    pub holder: Holder,
    /// The OTP, as an Argon2id PHC string (patients only: a device has none).
    pub otp_hash: Option<String>,
    pub attempts: u32,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub modified: DateTime<Utc>,
    pub modified_by: String,
    pub expires: DateTime<Utc>,
    /// When the patient's app used it (then it is used up).
    pub completed: Option<DateTime<Utc>>,
    /// Counts writes from 1: a change is written only over the version it was made from.
    pub version: u64,
}

/// A patient's or device's activation state: the activation still open, and the authorisation
/// code the last completed one gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub holder: Holder,
    /// The key of the activation not yet used, if any.
    pub open_code_key: Option<String>,
    /// The authorisation code, as an Argon2id PHC string, and until when it is good.
    pub authorisation_hash: Option<String>,
    pub authorisation_expires: Option<DateTime<Utc>>,
    pub version: u64,
}

impl Credential {
    /// What a holder without one has: nothing open, no authorisation code.
    pub fn none(holder: Holder) -> Self {
        Self { holder, open_code_key: None, authorisation_hash: None, authorisation_expires: None, version: 0 }
    }
}

/// Where activations are kept. Each change is conditional on the version it was made from,
/// so two requests racing on one activation cannot both use it, nor lose an attempt.
pub trait ActivationStore: Send + Sync {
    fn activation(&self, code_key: &str) -> impl Future<Output = Result<Option<Activation>, StoreError>> + Send;
    fn credential(&self, holder: &Holder) -> impl Future<Output = Result<Option<Credential>, StoreError>> + Send;
    /// Opens `activation` for its patient, replacing the open one (`replaced`, deleted if still
    /// unused); `credential` is written over its version. False if either changed meanwhile.
    fn open(&self, activation: &Activation, replaced: Option<&str>, credential: &Credential) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Writes a changed activation over its previous version (a failed attempt).
    fn update(&self, activation: &Activation) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Marks `activation` used and gives the patient `credential`, both over their versions.
    fn complete(&self, activation: &Activation, credential: &Credential) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// A patient's completed activations, last completed first.
    fn completed_of(&self, patient_id: &str) -> impl Future<Output = Result<Vec<Activation>, StoreError>> + Send;
    /// Wrong device codes counted in the hour `hour` (`2024-03-01T10`).
    fn device_guesses(&self, hour: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Counts one more wrong device code in `hour`.
    fn count_device_guess(&self, hour: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes every record: activations, credentials, ward tablets, clinicians' login records
    /// (the development route `/drop_data`). The number deleted.
    fn drop_all(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// The hour wrong device codes are counted in.
pub fn guess_hour(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// The end of the fifth UTC day after `at` (23:59:59.000).
pub fn expiry_after(at: DateTime<Utc>) -> DateTime<Utc> {
    let day = (at + Duration::days(EXPIRY_DAYS)).date_naive();
    day.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default()).and_utc()
}

/// `expires_at` as the reference writes it: no zone (`2024-03-06T23:59:59.000`).
pub fn reference_expiry(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// Why an activation answers "Could not find relevant activation": every reason the same to
/// the caller (so codes cannot be probed), told apart in the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotUsable {
    Unknown,
    Used,
    Locked,
    Expired,
    WrongOtp,
}

impl NotUsable {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown code",
            Self::Used => "already used",
            Self::Locked => "too many wrong OTPs",
            Self::Expired => "expired",
            Self::WrongOtp => "wrong OTP",
        }
    }
}

impl Activation {
    /// A new activation for `holder`, asked for by `by` at `now`, good to the end of the fifth
    /// UTC day after.
    pub fn new(code_key: String, holder: Holder, otp_hash: Option<String>, by: &str, now: DateTime<Utc>) -> Self {
        Self {
            code_key,
            uuid: uuid::Uuid::new_v4().to_string(),
            holder,
            otp_hash,
            attempts: 0,
            created: now,
            created_by: by.to_owned(),
            modified: now,
            modified_by: by.to_owned(),
            expires: expiry_after(now),
            completed: None,
            version: 1,
        }
    }

    /// Whether it can still be used at `now` (the OTP aside).
    pub fn usable(&self, now: DateTime<Utc>) -> Result<(), NotUsable> {
        if self.completed.is_some() {
            Err(NotUsable::Used)
        } else if self.attempts >= MAX_ATTEMPTS {
            Err(NotUsable::Locked)
        } else if now > self.expires {
            Err(NotUsable::Expired)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_activation_runs_to_the_end_of_the_fifth_utc_day() {
        let at = DateTime::parse_from_rfc3339("2024-03-01T06:03:05Z").unwrap().to_utc();
        let expires = expiry_after(at);
        assert_eq!(reference_expiry(expires), "2024-03-06T23:59:59.000");
        let late = DateTime::parse_from_rfc3339("2024-03-01T23:59:00Z").unwrap().to_utc();
        assert_eq!(reference_expiry(expiry_after(late)), "2024-03-06T23:59:59.000");
        let a = Activation {
            code_key: "k".into(),
            uuid: "u".into(),
            holder: Holder::Patient("p".into()),
            otp_hash: None,
            attempts: 0,
            created: at,
            created_by: "c".into(),
            modified: at,
            modified_by: "c".into(),
            expires,
            completed: None,
            version: 1,
        };
        assert_eq!(a.usable(expires), Ok(()), "23:59:59.000 itself is still good");
        assert_eq!(a.usable(expires + Duration::milliseconds(500)), Err(NotUsable::Expired));
        assert_eq!(Activation { attempts: MAX_ATTEMPTS, ..a.clone() }.usable(at), Err(NotUsable::Locked));
        assert_eq!(Activation { completed: Some(at), ..a }.usable(at), Err(NotUsable::Used));
    }
}
