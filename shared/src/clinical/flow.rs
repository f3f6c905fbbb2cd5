//! The two-stage alert flow, as pure state: what an alert's flow is, and what each event does
//! to it ([`start`], [`step`]). Storing a step and carrying out its effects (messages and
//! notifications) is [`super::alerting`]'s.
//!
//! - Raised: the patient is asked (a message and a notification offering the [`Answer`]s),
//!   and the clinicians get a red (high) or amber alert message. High severity also tells the
//!   doctor and nurse at once, without waiting for the patient.
//! - Answered: the chosen people are told; a decline tells nobody more.
//! - No answer by the deadline (per severity and patient, 15 minutes by default): the flow
//!   escalates by itself: high to doctor, nurse and EMS; medium to doctor and nurse;
//!   low-medium to the nurse. High severity keeps its EMS deadline after an answer, so EMS is
//!   called unless a clinician acknowledged in time (a patient's decline does not stop that:
//!   the doctor and nurse already know and decide).
//! - Acknowledged: a clinician has it; nothing escalates any more.
//! - Resolved: done.
//! - Superseded: a worse reading raised a new alert of the same kind, whose own flow starts
//!   again at the higher severity (asking the patient, and for high severity telling the doctor
//!   and nurse at once); this one ends, so one flow runs per patient and kind.
//!
//! Every step bumps the version, so a store writes it only over the state it was decided
//! from: an answer and a timeout racing each other are decided one after the other.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::news2::Severity;
use super::{Alert, AlertKind};
use crate::care::EscalationTimeouts;
use crate::messages::MessageType;
use crate::platform::time::format_utc;

/// Who an alert is escalated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Responder {
    Doctor,
    Nurse,
    Ems,
}

impl Responder {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Doctor => "doctor",
            Self::Nurse => "nurse",
            Self::Ems => "ems",
        }
    }
}

/// The patient's answer to "may we tell your care team?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    ApproveDoctor,
    ApproveNurse,
    ApproveEms,
    ApproveAll,
    Decline,
}

impl Answer {
    pub const ALL: [Answer; 5] = [Self::ApproveDoctor, Self::ApproveNurse, Self::ApproveEms, Self::ApproveAll, Self::Decline];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApproveDoctor => "approve_doctor",
            Self::ApproveNurse => "approve_nurse",
            Self::ApproveEms => "approve_ems",
            Self::ApproveAll => "approve_all",
            Self::Decline => "decline",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Who the answer asks to be told.
    pub fn responders(self) -> &'static [Responder] {
        match self {
            Self::ApproveDoctor => &[Responder::Doctor],
            Self::ApproveNurse => &[Responder::Nurse],
            Self::ApproveEms => &[Responder::Ems],
            Self::ApproveAll => &[Responder::Doctor, Responder::Nurse, Responder::Ems],
            Self::Decline => &[],
        }
    }
}

/// Where an alert's flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Waiting for the patient's answer until the deadline.
    AskingPatient,
    /// The patient answered; those they chose were told.
    Answered,
    /// The patient did not answer in time; the flow escalated by itself.
    Escalated,
    /// A clinician has it: nothing escalates any more.
    Acknowledged,
    /// Dealt with.
    Resolved,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AskingPatient => "asking_patient",
            Self::Answered => "answered",
            Self::Escalated => "escalated",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }
}

/// An alert's flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    pub alert_id: String,
    pub patient_id: String,
    #[serde(with = "kind_text")]
    pub kind: AlertKind,
    #[serde(with = "severity_text")]
    pub severity: Severity,
    pub stage: Stage,
    /// Counts steps from 1 (the start).
    pub version: u64,
    /// When the flow began.
    pub started_at: String,
    /// When the flow escalates by itself next, if it still may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// Who has been told in the current round.
    #[serde(default)]
    pub told: Vec<Responder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
}

/// What happened to a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Answered(Answer),
    /// The deadline passed (the scheduled sweep found it due).
    TimedOut,
    Acknowledged,
    Resolved,
    /// A worse alert of the same kind was raised: this one's flow ends for it.
    Superseded,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Self::Answered(_) => "answered",
            Self::TimedOut => "timed_out",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
            Self::Superseded => "superseded",
        }
    }
}

/// What a step asks to be done, once it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", content = "to", rename_all = "snake_case")]
pub enum Effect {
    /// A message to the patient and a notification, offering the answers.
    AskPatient,
    /// Tell the patient's doctors, nurses, or their location's EMS contact.
    Tell(Responder),
    /// A Polaris alert message to the location's and each team member's inbox.
    ClinicianAlert(Colour),
    /// A clear-alerts message to the same inboxes: none of the patient's alerts is open any
    /// more (added by the resolving route, which knows the patient's other alerts).
    ClearAlerts,
}

/// The colour of a Polaris alert message: red for high severity, amber below; grey when a
/// patient's next set is overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Red,
    Amber,
    Grey,
}

impl Colour {
    pub fn message_type(self) -> MessageType {
        match self {
            Self::Red => MessageType::RedAlert,
            Self::Amber => MessageType::AmberAlert,
            Self::Grey => MessageType::GreyAlert,
        }
    }
}

/// A step: the flow after it, what it asks to be done, and its record in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub flow: Flow,
    pub effects: Vec<Effect>,
    pub record: StepRecord,
}

impl Step {
    /// When the sweep should look at the flow after this step: at once while its effects are
    /// undelivered, otherwise at the flow's deadline, if any.
    pub fn sweep_at(&self) -> Option<String> {
        if self.effects.is_empty() {
            self.flow.due_at.clone()
        } else {
            Some(self.record.at.clone())
        }
    }
}

/// A step as the alert's history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub alert_id: String,
    /// The flow's version after the step.
    pub version: u64,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_severity_text")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Stage>,
    pub to: Stage,
    /// Who did it: a subject, or `platform` for the flow's own steps.
    pub by: String,
    /// For a superseded alert: the worse alert that took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    pub at: String,
    pub effects: Vec<Effect>,
}

/// Why an event does not apply to a flow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowRefusal {
    #[error("the alert was resolved")]
    Resolved,
    #[error("the patient answered already ({0})")]
    AlreadyAnswered(&'static str),
    #[error("a clinician has the alert already")]
    AlreadyAcknowledged,
    #[error("nothing is due")]
    NotDue,
}

/// Who the flow tells by itself when the patient does not answer, by severity.
pub fn escalation_targets(severity: Severity) -> &'static [Responder] {
    match severity {
        Severity::High => &[Responder::Doctor, Responder::Nurse, Responder::Ems],
        Severity::Medium => &[Responder::Doctor, Responder::Nurse],
        Severity::LowMedium | Severity::Low => &[Responder::Nurse],
    }
}

/// The clinicians' alert colour for a severity: red for high, amber otherwise.
pub fn clinician_alert(severity: Severity) -> Colour {
    if severity == Severity::High {
        Colour::Red
    } else {
        Colour::Amber
    }
}

fn deadline(severity: Severity, timeouts: &EscalationTimeouts, now: DateTime<Utc>) -> String {
    format_utc(now + Duration::minutes(i64::from(timeouts.for_severity(severity))))
}

/// Tells those of `responders` not told yet.
fn tell(flow: &mut Flow, responders: &[Responder]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for r in responders {
        if !flow.told.contains(r) {
            flow.told.push(*r);
            effects.push(Effect::Tell(*r));
        }
    }
    effects
}

fn record(flow: &Flow, event: &str, from: Option<Stage>, by: &str, now: DateTime<Utc>, effects: &[Effect]) -> StepRecord {
    StepRecord {
        alert_id: flow.alert_id.clone(),
        version: flow.version,
        event: event.to_owned(),
        answer: None,
        severity: Some(flow.severity),
        from,
        to: flow.stage,
        by: by.to_owned(),
        superseded_by: None,
        at: format_utc(now),
        effects: effects.to_vec(),
    }
}

/// The flow of an alert just raised.
pub fn start(alert: &Alert, timeouts: &EscalationTimeouts, now: DateTime<Utc>) -> Step {
    let mut flow = Flow {
        alert_id: alert.alert_id.clone(),
        patient_id: alert.patient_id.clone(),
        kind: alert.kind,
        severity: alert.severity,
        stage: Stage::AskingPatient,
        version: 1,
        started_at: format_utc(now),
        due_at: Some(deadline(alert.severity, timeouts, now)),
        told: Vec::new(),
        answer: None,
        acknowledged_by: None,
        resolved_by: None,
    };
    // Ask the patient, alert the clinicians, and for high severity tell the doctor and nurse
    // at once.
    let mut effects = vec![Effect::AskPatient, Effect::ClinicianAlert(clinician_alert(flow.severity))];
    if flow.severity == Severity::High {
        effects.extend(tell(&mut flow, &[Responder::Doctor, Responder::Nurse]));
    }
    let record = record(&flow, "raised", None, "platform", now, &effects);
    Step { flow, effects, record }
}

/// What `event` (by `by`, at `now`) does to `flow`.
pub fn step(flow: &Flow, event: Event, by: &str, now: DateTime<Utc>) -> Result<Step, FlowRefusal> {
    if flow.stage == Stage::Resolved {
        return Err(FlowRefusal::Resolved);
    }
    let mut next = flow.clone();
    next.version += 1;
    let effects = match event {
        Event::Answered(answer) => {
            match flow.stage {
                Stage::AskingPatient | Stage::Escalated => {}
                Stage::Answered => return Err(FlowRefusal::AlreadyAnswered(flow.answer.map_or("", Answer::as_str))),
                Stage::Acknowledged | Stage::Resolved => return Err(FlowRefusal::AlreadyAcknowledged),
            }
            next.stage = Stage::Answered;
            next.answer = Some(answer);
            let effects = tell(&mut next, answer.responders());
            // High severity keeps its EMS deadline unless EMS now knows; nothing else waits.
            if flow.severity != Severity::High || next.told.contains(&Responder::Ems) {
                next.due_at = None;
            }
            effects
        }
        Event::TimedOut => {
            let due = flow.due_at.as_deref().ok_or(FlowRefusal::NotDue)?;
            if format_utc(now).as_str() < due {
                return Err(FlowRefusal::NotDue);
            }
            next.due_at = None;
            if flow.stage == Stage::AskingPatient {
                next.stage = Stage::Escalated;
            }
            tell(&mut next, escalation_targets(flow.severity))
        }
        Event::Acknowledged => {
            if flow.stage == Stage::Acknowledged {
                return Err(FlowRefusal::AlreadyAcknowledged);
            }
            next.stage = Stage::Acknowledged;
            next.acknowledged_by = Some(by.to_owned());
            next.due_at = None;
            Vec::new()
        }
        Event::Resolved | Event::Superseded => {
            next.stage = Stage::Resolved;
            next.resolved_by = Some(by.to_owned());
            next.due_at = None;
            Vec::new()
        }
    };
    let mut record = record(&next, event.name(), Some(flow.stage), by, now, &effects);
    if let Event::Answered(answer) = event {
        record.answer = Some(answer);
    }
    Ok(Step { flow: next, effects, record })
}

mod kind_text {
    use super::AlertKind;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &AlertKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AlertKind, D::Error> {
        let text = String::deserialize(d)?;
        AlertKind::parse(&text).ok_or_else(|| D::Error::custom(format!("unknown alert kind {text}")))
    }
}

mod severity_text {
    use super::Severity;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(severity: &Severity, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(severity.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
        let text = String::deserialize(d)?;
        Severity::parse(&text).ok_or_else(|| D::Error::custom(format!("unknown severity {text}")))
    }
}

mod optional_severity_text {
    use super::Severity;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(severity: &Option<Severity>, s: S) -> Result<S::Ok, S::Error> {
        match severity {
            Some(severity) => super::severity_text::serialize(severity, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Severity>, D::Error> {
        Option::<String>::deserialize(d).map(|text| text.as_deref().and_then(Severity::parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::AlertStatus;

    fn at(minutes: i64) -> DateTime<Utc> {
        crate::platform::time::parse_with_offset("2026-12-01T10:00:00Z").unwrap() + Duration::minutes(minutes)
    }

    fn alert(severity: Severity) -> Alert {
        Alert {
            alert_id: "a-1".into(),
            patient_id: "P1".into(),
            device_id: "d".into(),
            kind: AlertKind::News2,
            score: Some(6),
            severity,
            partial: true,
            contributions: Vec::new(),
            set_at: format_utc(at(0)),
            raised_at: format_utc(at(0)),
            status: AlertStatus::Open,
            closed_at: None,
            closed_by: None,
        }
    }

    const T: EscalationTimeouts = EscalationTimeouts { low_medium: 30, medium: 15, high: 10 };

    fn started(severity: Severity) -> Flow {
        start(&alert(severity), &T, at(0)).flow
    }

    fn told(effects: &[Effect]) -> Vec<Responder> {
        effects.iter().filter_map(|e| if let Effect::Tell(r) = e { Some(*r) } else { None }).collect()
    }

    #[test]
    fn raising_asks_the_patient_alerts_the_clinicians_and_tells_doctor_and_nurse_at_once_only_when_high() {
        let medium = start(&alert(Severity::Medium), &T, at(0));
        assert_eq!(medium.effects, [Effect::AskPatient, Effect::ClinicianAlert(Colour::Amber)]);
        assert_eq!((medium.flow.stage, medium.flow.version), (Stage::AskingPatient, 1));
        assert_eq!(medium.flow.due_at.as_deref(), Some("2026-12-01T10:15:00.000Z"), "medium waits 15 minutes");
        let high = start(&alert(Severity::High), &T, at(0));
        assert_eq!(
            high.effects,
            [Effect::AskPatient, Effect::ClinicianAlert(Colour::Red), Effect::Tell(Responder::Doctor), Effect::Tell(Responder::Nurse)]
        );
        assert_eq!(high.flow.due_at.as_deref(), Some("2026-12-01T10:10:00.000Z"));
        assert_eq!(start(&alert(Severity::LowMedium), &T, at(0)).flow.due_at.as_deref(), Some("2026-12-01T10:30:00.000Z"));
        assert_eq!((high.record.event.as_str(), high.record.from, high.record.to, high.record.by.as_str()), ("raised", None, Stage::AskingPatient, "platform"));
    }

    #[test]
    fn each_answer_tells_whom_it_names_and_ends_the_wait_below_high() {
        for answer in Answer::ALL {
            let s = step(&started(Severity::Medium), Event::Answered(answer), "P1-sub", at(3)).unwrap();
            assert_eq!(told(&s.effects), answer.responders(), "{}", answer.as_str());
            assert_eq!((s.flow.stage, s.flow.answer, s.flow.due_at.as_deref()), (Stage::Answered, Some(answer), None));
            assert_eq!((s.record.answer, s.record.from, s.record.version), (Some(answer), Some(Stage::AskingPatient), 2));
            assert_eq!(step(&s.flow, Event::TimedOut, "platform", at(60)), Err(FlowRefusal::NotDue), "nothing escalates after an answer");
            assert_eq!(
                step(&s.flow, Event::Answered(Answer::ApproveAll), "P1-sub", at(4)),
                Err(FlowRefusal::AlreadyAnswered(answer.as_str())),
                "a second answer (a second tap, or the link after the app) changes nothing"
            );
        }
    }

    #[test]
    fn without_an_answer_each_severity_escalates_to_its_people_at_its_deadline() {
        for (severity, minutes, expected) in [
            (Severity::LowMedium, 30, vec![Responder::Nurse]),
            (Severity::Medium, 15, vec![Responder::Doctor, Responder::Nurse]),
            (Severity::High, 10, vec![Responder::Ems]),
        ] {
            let flow = started(severity);
            assert_eq!(step(&flow, Event::TimedOut, "platform", at(minutes - 1)), Err(FlowRefusal::NotDue), "{severity:?} before its deadline");
            let s = step(&flow, Event::TimedOut, "platform", at(minutes)).unwrap();
            assert_eq!(told(&s.effects), expected, "{severity:?}");
            assert_eq!((s.flow.stage, s.flow.due_at.as_deref()), (Stage::Escalated, None));
            assert_eq!(step(&s.flow, Event::TimedOut, "platform", at(minutes + 5)), Err(FlowRefusal::NotDue), "it escalates once");
            // A late answer still tells whom the patient chose, if not told already.
            let late = step(&s.flow, Event::Answered(Answer::ApproveAll), "P1-sub", at(minutes + 1)).unwrap();
            let everyone = [Responder::Doctor, Responder::Nurse, Responder::Ems];
            assert_eq!(told(&late.effects), everyone.iter().copied().filter(|r| !s.flow.told.contains(r)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn high_severity_calls_ems_after_the_deadline_whatever_the_answer_unless_acknowledged() {
        let flow = started(Severity::High);
        let declined = step(&flow, Event::Answered(Answer::Decline), "P1-sub", at(1)).unwrap();
        assert_eq!(declined.effects, []);
        assert_eq!(declined.flow.due_at.as_deref(), Some("2026-12-01T10:10:00.000Z"));
        let ems = step(&declined.flow, Event::TimedOut, "platform", at(10)).unwrap();
        assert_eq!(ems.effects, [Effect::Tell(Responder::Ems)]);
        assert_eq!(ems.flow.stage, Stage::Answered, "the answer stands");

        let asked_for_ems = step(&flow, Event::Answered(Answer::ApproveEms), "P1-sub", at(1)).unwrap();
        assert_eq!((asked_for_ems.effects.as_slice(), asked_for_ems.flow.due_at.as_deref()), ([Effect::Tell(Responder::Ems)].as_slice(), None));

        let acknowledged = step(&flow, Event::Acknowledged, "nurse-1", at(5)).unwrap();
        assert_eq!((acknowledged.flow.stage, acknowledged.flow.due_at.as_deref(), acknowledged.flow.acknowledged_by.as_deref()), (Stage::Acknowledged, None, Some("nurse-1")));
        assert_eq!(step(&acknowledged.flow, Event::TimedOut, "platform", at(10)), Err(FlowRefusal::NotDue), "acknowledging stops escalation");
        assert_eq!(step(&acknowledged.flow, Event::Acknowledged, "doctor-1", at(6)), Err(FlowRefusal::AlreadyAcknowledged));
        assert_eq!(step(&acknowledged.flow, Event::Answered(Answer::ApproveAll), "P1-sub", at(6)), Err(FlowRefusal::AlreadyAcknowledged));
    }

    #[test]
    fn resolving_ends_the_flow_and_nothing_applies_after_it() {
        let resolved = step(&started(Severity::Medium), Event::Resolved, "doctor-1", at(2)).unwrap();
        assert_eq!((resolved.flow.stage, resolved.flow.due_at.as_deref(), resolved.flow.resolved_by.as_deref()), (Stage::Resolved, None, Some("doctor-1")));
        for event in [Event::Answered(Answer::Decline), Event::TimedOut, Event::Acknowledged, Event::Resolved, Event::Superseded] {
            assert_eq!(step(&resolved.flow, event, "x", at(30)), Err(FlowRefusal::Resolved), "{event:?}");
        }
    }

    #[test]
    fn a_superseded_flow_ends_wherever_it_stood() {
        let answered = step(&started(Severity::Medium), Event::Answered(Answer::ApproveNurse), "P1-sub", at(1)).unwrap().flow;
        let superseded = step(&answered, Event::Superseded, "platform", at(20)).unwrap();
        assert_eq!((superseded.flow.stage, superseded.flow.due_at.as_deref(), superseded.effects.as_slice()), (Stage::Resolved, None, [].as_slice()));
        assert_eq!(superseded.record.event, "superseded");
        assert_eq!(step(&superseded.flow, Event::TimedOut, "platform", at(60)), Err(FlowRefusal::Resolved));
    }

    #[test]
    fn a_flow_and_its_history_read_back_as_written() {
        let s = step(&started(Severity::High), Event::Answered(Answer::ApproveDoctor), "P1-sub", at(1)).unwrap();
        let flow: Flow = serde_json::from_value(serde_json::to_value(&s.flow).unwrap()).unwrap();
        assert_eq!(flow, s.flow);
        let record_json = serde_json::to_value(&s.record).unwrap();
        assert_eq!(record_json["answer"], "approve_doctor");
        assert_eq!(record_json["severity"], "high");
        let first = start(&alert(Severity::High), &T, at(0)).record;
        let first_json = serde_json::to_value(&first).unwrap();
        assert_eq!(first_json["effects"][1], serde_json::json!({"effect": "clinician_alert", "to": "red"}));
        assert_eq!(first_json["effects"][2], serde_json::json!({"effect": "tell", "to": "doctor"}));
        let back: StepRecord = serde_json::from_value(first_json).unwrap();
        assert_eq!(back, first);
    }
}
