//! Who may send and read messages, as the reference decides it (`helper/security.py`; notes
//! in `docs/polaris/messages-reference.md` §4 and §6): scopes first (an `_all` scope reaches
//! every message), else the caller's own ids: their patient id, or their clinician id and the
//! locations they name in `X-Location-Ids`, or their system id.

use super::{Message, NewMessage};

/// The system id of the reference's adapter worker, which may send as anyone.
pub const ADAPTER_WORKER: &str = "dhos-messages-adapter-worker";
/// The system id of the reference's aggregator, which may list anyone's messages.
pub const AGGREGATOR: &str = "dhos-aggregator-api";

/// A caller, from their token's claims and the request's `X-Location-Ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub patient_id: Option<String>,
    pub clinician_id: Option<String>,
    pub system_id: Option<String>,
    pub device_id: Option<String>,
    pub scopes: Vec<String>,
    /// The locations the caller says they act for (the reference trusts the header).
    pub location_ids: Vec<String>,
}

/// The type a caller's own id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartyType {
    Patient,
    Clinician,
    Location,
    System,
}

impl PartyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Clinician => "clinician",
            Self::Location => "location",
            Self::System => "system",
        }
    }
}

impl Caller {
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Who the caller is in `created_by` and `modified_by`: their first id, or `unknown`.
    pub fn user_id(&self) -> &str {
        [&self.patient_id, &self.device_id, &self.clinician_id, &self.system_id].into_iter().find_map(|id| id.as_deref()).unwrap_or("unknown")
    }

    /// The caller's own ids with their types.
    pub fn ids(&self) -> Vec<(&str, PartyType)> {
        let mut ids = Vec::new();
        if let Some(p) = self.patient_id.as_deref() {
            ids.push((p, PartyType::Patient));
        }
        if let Some(c) = self.clinician_id.as_deref() {
            ids.push((c, PartyType::Clinician));
            ids.extend(self.location_ids.iter().map(|l| (l.as_str(), PartyType::Location)));
        }
        if let Some(s) = self.system_id.as_deref() {
            ids.push((s, PartyType::System));
        }
        ids
    }

    fn owns(&self, id: &str) -> bool {
        self.ids().iter().any(|(own, _)| *own == id)
    }

    /// What `id` is to the caller, for the listings' type filters: a patient caller is always a
    /// patient; a clinician's own id is a clinician, a location they named a location.
    pub fn user_type(&self, id: &str) -> Option<PartyType> {
        if self.patient_id.as_deref().is_some_and(|p| !p.is_empty()) {
            return Some(PartyType::Patient);
        }
        let clinician = self.clinician_id.as_deref().filter(|c| !c.is_empty())?;
        if id == clinician {
            Some(PartyType::Clinician)
        } else if self.location_ids.iter().any(|l| l == id) {
            Some(PartyType::Location)
        } else {
            None
        }
    }

    /// May send this message (`write:gdm_message_all`, or `write:gdm_message` as its sender; a
    /// patient only to a location).
    pub fn may_send(&self, m: &NewMessage) -> bool {
        if self.has("write:gdm_message_all") {
            return true;
        }
        if !self.has("write:gdm_message") {
            return false;
        }
        if self.system_id.as_deref() == Some(ADAPTER_WORKER) {
            return true;
        }
        if let Some(patient) = &self.patient_id {
            return m.receiver_type == PartyType::Location.as_str() && &m.sender == patient;
        }
        self.owns(&m.sender)
    }

    /// May read or change this message: an `_all` scope, or as its sender or receiver (id and type).
    pub fn may_reach(&self, m: &Message, all_scope: &str, own_scope: &str) -> bool {
        if self.has(all_scope) {
            return true;
        }
        self.has(own_scope)
            && self.ids().iter().any(|(id, t)| (m.sender == *id && m.sender_type == t.as_str()) || (m.receiver == *id && m.receiver_type == t.as_str()))
    }

    /// May list a sender's or receiver's messages (or a pair's): an `_all` scope, the
    /// aggregator, or one of the ids is the caller's own.
    pub fn may_list(&self, ids: &[&str]) -> bool {
        self.has("read:gdm_message_all") || (self.has("read:gdm_message") && (self.system_id.as_deref() == Some(AGGREGATOR) || ids.iter().any(|id| self.owns(id))))
    }

    /// May list everything sent to or by `id`: any clinician (what they see is filtered), the
    /// owner, the aggregator, or an `_all` scope.
    pub fn may_list_either(&self, id: &str) -> bool {
        self.has("read:gdm_message_all")
            || self.has("read:message_all")
            || (self.has("read:gdm_message") && (self.clinician_id.is_some() || self.system_id.as_deref() == Some(AGGREGATOR) || self.owns(id)))
    }

    /// Whether `m` is in the caller's listing of everything sent to or by `id`: for an owner,
    /// their own messages of their type without red, amber or grey alerts (a patient never sees
    /// those); for a clinician asking about someone else, that one's messages with the
    /// clinician, the clinician's locations or a patient; for a system, everything.
    pub fn sees_in_either_listing(&self, id: &str, m: &Message) -> bool {
        if let Some(t) = self.user_type(id) {
            let t = t.as_str();
            return ((m.sender == id && m.sender_type == t) || (m.receiver == id && m.receiver_type == t)) && !m.message_type.is_alert();
        }
        if let Some(c) = self.clinician_id.as_deref() {
            let location = |party: &str, kind: &str| kind == "location" && self.location_ids.iter().any(|l| l == party);
            return (m.sender == id && m.receiver == c && m.receiver_type == "clinician")
                || (m.sender == c && m.sender_type == "clinician" && m.receiver == id)
                || (m.sender == id && location(&m.receiver, &m.receiver_type))
                || (location(&m.sender, &m.sender_type) && m.receiver == id)
                || (m.sender == id && m.sender_type == "patient")
                || (m.receiver == id && m.receiver_type == "patient");
        }
        m.sender == id || m.receiver == id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{new_message, MessageType, PolarisTime};
    use serde_json::json;

    fn caller(patient: Option<&str>, clinician: Option<&str>, scopes: &str) -> Caller {
        Caller {
            patient_id: patient.map(Into::into),
            clinician_id: clinician.map(Into::into),
            scopes: scopes.split(' ').map(Into::into).collect(),
            location_ids: vec!["1".into(), "2".into()],
            ..Caller::default()
        }
    }

    fn message(sender: (&str, &str), receiver: (&str, &str), kind: MessageType) -> Message {
        let new = new_message(&json!({"sender": sender.0, "sender_type": sender.1, "receiver": receiver.0, "receiver_type": receiver.1, "content": "x", "message_type": {"value": kind.value()}})).unwrap();
        Message::from_new("m".into(), new, sender.0, PolarisTime::parse("2022-01-01T10:00:00.000Z").unwrap())
    }

    #[test]
    fn patients_message_only_locations_and_clinicians_only_as_themselves() {
        let new = |sender: &str, receiver_type: &str| new_message(&json!({"sender": sender, "sender_type": "x", "receiver": "r", "receiver_type": receiver_type, "content": "c", "message_type": {"value": 0}})).unwrap();
        let patient = caller(Some("p-1"), None, "write:gdm_message");
        assert!(patient.may_send(&new("p-1", "location")));
        assert!(!patient.may_send(&new("p-1", "clinician")), "a patient writes only to locations");
        assert!(!patient.may_send(&new("p-2", "location")));
        let clinician = caller(None, Some("c-1"), "write:gdm_message");
        assert!(clinician.may_send(&new("c-1", "patient")) && clinician.may_send(&new("2", "patient")), "as themselves or a location they named");
        assert!(!clinician.may_send(&new("c-2", "patient")));
        assert!(caller(None, None, "write:gdm_message_all").may_send(&new("anyone", "patient")));
        assert!(!caller(Some("p-1"), None, "read:gdm_message").may_send(&new("p-1", "location")), "no write scope");
        assert_eq!(caller(Some("p-1"), Some("c-1"), "").user_id(), "p-1");
        assert_eq!(Caller::default().user_id(), "unknown");
    }

    #[test]
    fn the_either_listing_hides_alerts_from_owners_and_filters_clinicians_views() {
        let patient = caller(Some("p-1"), None, "read:gdm_message");
        let general = message(("c-1", "clinician"), ("p-1", "patient"), MessageType::General);
        let red = message(("c-1", "clinician"), ("p-1", "patient"), MessageType::RedAlert);
        assert!(patient.may_list_either("p-1") && !patient.may_list_either("p-2"));
        assert!(patient.sees_in_either_listing("p-1", &general));
        assert!(!patient.sees_in_either_listing("p-1", &red), "a patient never sees red, amber or grey alerts");
        let wrong_type = message(("c-1", "clinician"), ("p-1", "bad_user_type"), MessageType::General);
        assert!(!patient.sees_in_either_listing("p-1", &wrong_type), "a wrong receiver type is invisible to the patient");

        let other_clinician = caller(None, Some("c-9"), "read:gdm_message");
        assert!(other_clinician.may_list_either("p-1"));
        assert!(other_clinician.sees_in_either_listing("p-1", &red), "a clinician asking about a patient sees everything to or from them");
        let between_clinicians = message(("c-1", "clinician"), ("c-2", "clinician"), MessageType::General);
        assert!(!other_clinician.sees_in_either_listing("c-1", &between_clinicians), "not another clinician's own messages");
        let to_ward = message(("p-1", "patient"), ("2", "location"), MessageType::General);
        let clinician = caller(None, Some("c-1"), "read:gdm_message");
        assert!(clinician.sees_in_either_listing("2", &to_ward), "a location the clinician named");
        assert_eq!(clinician.user_type("3"), None);
        assert_eq!(clinician.user_type("1"), Some(PartyType::Location));
    }

    #[test]
    fn reading_needs_the_scope_and_to_be_a_party() {
        let m = message(("c-1", "clinician"), ("p-1", "patient"), MessageType::Dosage);
        assert!(caller(Some("p-1"), None, "read:gdm_message").may_reach(&m, "read:gdm_message_all", "read:gdm_message"));
        assert!(!caller(Some("p-2"), None, "read:gdm_message").may_reach(&m, "read:gdm_message_all", "read:gdm_message"));
        assert!(!caller(Some("p-1"), None, "write:gdm_message").may_reach(&m, "read:gdm_message_all", "read:gdm_message"), "the read scope is needed");
        assert!(caller(None, None, "read:gdm_message_all").may_reach(&m, "read:gdm_message_all", "read:gdm_message"));
        let aggregator = Caller { system_id: Some(AGGREGATOR.into()), scopes: vec!["read:gdm_message".into()], ..Caller::default() };
        assert!(aggregator.may_list(&["anyone"]));
        assert!(caller(None, Some("c-1"), "read:gdm_message").may_list(&["c-1", "p-1"]), "either id of a pair");
        assert!(!caller(None, Some("c-1"), "read:gdm_message").may_list(&["c-2"]));
    }
}
