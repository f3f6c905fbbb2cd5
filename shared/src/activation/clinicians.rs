//! Clinicians' login records for SEND Entry, as the Polaris activation API keeps them
//! (`models/clinician.py`): whether the clinician may sign in on a ward tablet, by which SEND
//! Entry identifier (the badge or PIN the tablet reads), in which groups, and until when
//! their contract runs.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};

use crate::StoreError;

/// The groups that may sign in on a ward tablet (lowercased, as the reference compares them).
pub const SIGN_IN_GROUPS: [&str; 2] = ["send clinician", "send superclinician"];

/// A clinician's login record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicianLogin {
    pub clinician_id: String,
    pub uuid: String,
    pub login_active: bool,
    pub send_entry_identifier: Option<String>,
    /// Lowercased, as the reference keeps them.
    pub products: Vec<String>,
    /// Lowercased, as the reference keeps them.
    pub groups: Vec<String>,
    /// The last day of the contract, if it ends.
    pub contract_expiry_eod_date: Option<NaiveDate>,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub modified: DateTime<Utc>,
    pub modified_by: String,
    pub version: u64,
}

/// Why a clinician may not sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInRefused {
    /// Their login is off, or their contract ended (which turns it off).
    Inactive,
    /// They are in no SEND clinician group.
    NotSendClinician,
}

impl SignInRefused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "Clinician contract expired",
            Self::NotSendClinician => "Clinician not in a SEND clinician group",
        }
    }
}

impl ClinicianLogin {
    /// Whether the contract has ended by `today` (the day after its last day).
    pub fn contract_ended(&self, today: NaiveDate) -> bool {
        self.contract_expiry_eod_date.is_some_and(|last| today > last)
    }

    /// Whether they may sign in on `today`, checked in the reference's order. A contract that
    /// has ended must first turn the login off ([`Self::contract_ended`]).
    pub fn may_sign_in(&self, today: NaiveDate) -> Result<(), SignInRefused> {
        if !self.login_active || self.contract_ended(today) {
            Err(SignInRefused::Inactive)
        } else if !self.groups.iter().any(|g| SIGN_IN_GROUPS.contains(&g.as_str())) {
            Err(SignInRefused::NotSendClinician)
        } else {
            Ok(())
        }
    }
}

/// Where clinicians' login records are kept.
pub trait ClinicianLoginStore: Send + Sync {
    fn clinician(&self, clinician_id: &str) -> impl Future<Output = Result<Option<ClinicianLogin>, StoreError>> + Send;
    /// Writes `login` over its previous version (a new one when its version is 1). False if it
    /// changed meanwhile, or, for a new one, if the clinician id is taken.
    fn put_clinician(&self, login: &ClinicianLogin) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The clinician with this SEND Entry identifier (the first, if several have it).
    fn by_identifier(&self, send_entry_identifier: &str) -> impl Future<Output = Result<Option<ClinicianLogin>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clinician_signs_in_while_active_under_contract_and_in_a_send_group() {
        let at = Utc::now();
        let login = ClinicianLogin {
            clinician_id: "c".into(),
            uuid: "u".into(),
            login_active: true,
            send_entry_identifier: Some("123".into()),
            products: vec!["send".into()],
            groups: vec!["send clinician".into()],
            contract_expiry_eod_date: NaiveDate::from_ymd_opt(2024, 3, 1),
            created: at,
            created_by: "s".into(),
            modified: at,
            modified_by: "s".into(),
            version: 1,
        };
        let day = |d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
        assert_eq!(login.may_sign_in(day(1)), Ok(()), "the contract's last day still counts");
        assert!(login.contract_ended(day(2)));
        assert_eq!(login.may_sign_in(day(2)), Err(SignInRefused::Inactive));
        assert_eq!(ClinicianLogin { login_active: false, ..login.clone() }.may_sign_in(day(1)), Err(SignInRefused::Inactive));
        let admin = ClinicianLogin { groups: vec!["send administrator".into()], ..login.clone() };
        assert_eq!(admin.may_sign_in(day(1)), Err(SignInRefused::NotSendClinician));
        let superclinician = ClinicianLogin { groups: vec!["gdm clinician".into(), "send superclinician".into()], contract_expiry_eod_date: None, ..login };
        assert_eq!(superclinician.may_sign_in(day(28)), Ok(()));
    }
}
