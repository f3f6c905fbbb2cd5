//! Carrying the alert flow out: storing each step of [`super::flow`] and delivering what it
//! asks for (messages in the Polaris messages API, SMS through SNS, email through SES).
//!
//! A step is stored before anything is sent: the flow over the version it was decided from,
//! with its record in the alert's history, marked undelivered while it has effects. Delivering
//! then plans the step's deliveries (one per recipient and channel, with ids from the step, so
//! planning again writes nothing new), claims each pending one by its attempt count (two
//! deliverers running at once never both send it), sends it, and records the outcome with the
//! provider's message id. A failure is retried with a growing pause, up to [`MAX_ATTEMPTS`];
//! after that it stays `failed`, visible in the alert's notifications. The flow's item is on
//! the sweep's index while it has a deadline or a delivery to retry: the per-minute sweep
//! ([`sweep`]) runs [`advance`] on each.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::flow::{self, Answer, Colour, Effect, Event, Flow, FlowRefusal, Responder, Step, StepRecord};
use super::links::{AnswerLink, AnswerLinks};
use super::{Alert, AlertKind, AlertStatus, AlertStore};
use crate::care::{CareStore, CareTeam, Channel, ClinicalSettings};
use crate::messages::time::PolarisTime;
use crate::messages::{new_message, Message, MessageStore};
use crate::platform::time::{format_utc, Clock};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Sends after which a failing delivery is given up (and stays visible as `failed`).
pub const MAX_ATTEMPTS: u32 = 5;

/// How long a claimed send may take before another deliverer may try it again.
const CLAIM_LEASE_MINUTES: i64 = 2;

/// How a delivery reaches its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryChannel {
    /// A message in the Polaris messages API (the app's and the clinicians' inboxes).
    Message,
    Sms,
    Email,
}

/// Who a delivery is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientKind {
    Patient,
    Doctor,
    Nurse,
    /// A location's inbox.
    Location,
    Ems,
}

impl RecipientKind {
    fn of(responder: Responder) -> Self {
        match responder {
            Responder::Doctor => Self::Doctor,
            Responder::Nurse => Self::Nurse,
            Responder::Ems => Self::Ems,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Planned, not sent yet (or to be retried).
    Pending,
    /// Claimed by a deliverer that is sending it now.
    Sending,
    Sent,
    /// Held back by the patient's quiet hours (never an emergency).
    Held,
    /// The provider refused it; retried until [`MAX_ATTEMPTS`].
    Failed,
    /// Nobody to send it to (no such team member, or no address): an operator must look.
    Undeliverable,
}

/// One message or notification of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `<alertId>.<step version>.<n>`.
    pub delivery_id: String,
    pub patient_id: String,
    pub alert_id: String,
    /// The step that asked for it.
    pub step: u64,
    pub recipient: RecipientKind,
    /// The clinician, location or patient id; the EMS contact's name.
    pub recipient_id: String,
    pub channel: DeliveryChannel,
    /// The phone number or email address (none for messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub subject: String,
    pub body: String,
    /// For a message: its Polaris type value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<i64>,
    pub status: DeliveryStatus,
    /// Sends tried so far; a deliverer claims a send by writing over the count it read.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When a pending, failed or claimed delivery may be tried (again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Delivery {
    /// Whether nothing more will be done with it.
    pub fn is_final(&self) -> bool {
        match self.status {
            DeliveryStatus::Sent | DeliveryStatus::Held | DeliveryStatus::Undeliverable => true,
            DeliveryStatus::Failed => self.attempts >= MAX_ATTEMPTS,
            DeliveryStatus::Pending | DeliveryStatus::Sending => false,
        }
    }

    /// Whether a deliverer may send it at `now`.
    fn is_ready(&self, now: &str) -> bool {
        !self.is_final() && self.next_attempt_at.as_deref().is_none_or(|at| at <= now)
    }
}

/// Where the flow's state, its history and its deliveries are kept (with the alerts).
pub trait FlowStore: AlertStore + Send + Sync {
    fn alert(&self, patient_id: &str, alert_id: &str) -> impl Future<Output = Result<Option<Alert>, StoreError>> + Send;
    /// The alert's flow; none before it started.
    fn flow(&self, patient_id: &str, alert_id: &str) -> impl Future<Output = Result<Option<Flow>, StoreError>> + Send;
    /// Writes the step's flow over the version it was decided from (none for the first) and its
    /// record, undelivered while it has effects (and then on the sweep's index at once); false
    /// when another step came first.
    fn record_step(&self, step: &Step) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The alert's history, oldest first, each with whether its effects were delivered.
    fn history(&self, patient_id: &str, alert_id: &str) -> impl Future<Output = Result<Vec<(StepRecord, bool)>, StoreError>> + Send;
    fn mark_delivered(&self, patient_id: &str, alert_id: &str, version: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// When the sweep looks at the flow next (none: never), if its version is still `version`
    /// (0: the flow has not started).
    fn reschedule(&self, patient_id: &str, alert_id: &str, version: u64, at: Option<&str>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Work due at or before `now`, soonest first.
    fn due(&self, now: &str, limit: i32) -> impl Future<Output = Result<Vec<Due>, StoreError>> + Send;
    /// The patient's latest NEWS2 set, as [`super::AlertStore::record_set`] recorded it.
    fn last_set(&self, patient_id: &str) -> impl Future<Output = Result<Option<LastSet>, StoreError>> + Send;
    /// When the sweep looks at the patient's sets next (none: not until a new set), if the
    /// latest is still the one at `set_at`.
    fn reschedule_set(&self, patient_id: &str, set_at: &str, at: Option<&str>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The alert's deliveries, in id order.
    fn deliveries(&self, patient_id: &str, alert_id: &str) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;
    /// Writes the deliveries whose ids are not written yet.
    fn add_deliveries(&self, deliveries: &[Delivery]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Writes a delivery if the stored one still has `read_attempts` attempts; false otherwise.
    fn update_delivery(&self, delivery: &Delivery, read_attempts: u32) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn put_link(&self, link: &AnswerLink) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A link by its token's hash.
    fn link(&self, token_hash: &str) -> impl Future<Output = Result<Option<AnswerLink>, StoreError>> + Send;
    /// Marks a link used with its answer, if it was not used yet; false if it was.
    fn use_link(&self, token_hash: &str, answer: Answer, at: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What the sweep has to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// An alert's flow: to start, escalate, or deliver.
    Flow { patient_id: String, alert_id: String },
    /// A patient whose next NEWS2 set may be overdue.
    Overdue { patient_id: String },
}

/// A patient's latest NEWS2 set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSet {
    pub at: String,
    pub severity: super::news2::Severity,
    pub overall: u8,
}

/// Why the provider did not take a notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotifyFailure(pub String);

/// SMS and email.
pub trait Notifier: Send + Sync {
    /// Sends one notification; the provider's message id.
    fn send(&self, channel: Channel, to: &str, subject: &str, body: &str) -> impl Future<Output = Result<String, NotifyFailure>> + Send;
}

/// What carrying the flow out needs.
pub struct FlowDeps<F, C, M, N> {
    pub flows: F,
    pub care: C,
    pub messages: M,
    pub notifier: N,
    pub clock: Clock,
    /// The patient's SMS and email carry a single-use answer link where a base URL is set.
    pub links: AnswerLinks,
}

impl<F: FromWiring, C: FromWiring, M: FromWiring, N: FromWiring> FromWiring for FlowDeps<F, C, M, N> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { flows: w.build()?, care: w.build()?, messages: w.build()?, notifier: w.build()?, clock: w.build()?, links: w.build()? })
    }
}

/// Starts the alert's flow if it has none, escalates it if its deadline passed, and delivers
/// what its steps asked for. Safe to run any number of times, also at once.
pub async fn advance<F: FlowStore, C: CareStore, M: MessageStore, N: Notifier>(deps: &FlowDeps<F, C, M, N>, patient_id: &str, alert_id: &str) -> Result<(), StoreError> {
    let now = deps.clock.now();
    let Some(alert) = deps.flows.alert(patient_id, alert_id).await? else {
        tracing::warn!(alert_id, "no such alert to advance");
        return deps.flows.reschedule(patient_id, alert_id, 0, None).await;
    };
    let settings = deps.care.settings(patient_id).await?.unwrap_or_default();
    // Another step may be stored between reading and writing: decide again on what won.
    for _ in 0..5 {
        let flow = match deps.flows.flow(patient_id, alert_id).await? {
            Some(flow) => flow,
            // Closed before its flow started: nothing to start, nothing due any more.
            None if alert.status == AlertStatus::Closed => return deps.flows.reschedule(patient_id, alert_id, 0, None).await,
            None => match start_flow(&deps.flows, &alert, &settings, now).await? {
                Some(started) => started,
                None => continue,
            },
        };
        let flow = match flow::step(&flow, Event::TimedOut, "platform", now) {
            Ok(escalated) => {
                if !deps.flows.record_step(&escalated).await? {
                    continue;
                }
                tracing::info!(alert_id, stage = escalated.flow.stage.as_str(), "alert escalated");
                escalated.flow
            }
            Err(_) => flow,
        };
        return deliver(deps, &alert, &flow, &settings, now).await;
    }
    Err(StoreError::new("advance alert flow", "the flow kept changing under this run; the sweep tries again"))
}

/// Starts an alert's flow and ends the lower alerts of its kind it supersedes; none when another
/// run started it first (read it again).
async fn start_flow<F: FlowStore>(flows: &F, alert: &Alert, settings: &ClinicalSettings, now: DateTime<Utc>) -> Result<Option<Flow>, StoreError> {
    let start = flow::start(alert, &settings.escalation_timeouts, now);
    if !flows.record_step(&start).await? {
        return Ok(None);
    }
    supersede_lower(flows, alert, now).await?;
    Ok(Some(start.flow))
}

/// Ends the flows of the patient's open alerts of the same kind and lower severity, and closes
/// them: the worse alert just started has taken over (asking the patient again, and for high
/// severity telling the doctor and nurse at once), so one flow runs per patient and kind.
async fn supersede_lower<F: FlowStore>(flows: &F, alert: &Alert, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut after = None;
    let mut lower = Vec::new();
    loop {
        let page = flows.for_patient(&alert.patient_id, 100, after.as_deref()).await?;
        lower.extend(page.items.into_iter().filter(|a| a.kind == alert.kind && a.status == AlertStatus::Open && a.alert_id != alert.alert_id && a.rank() < alert.rank()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    for old in lower {
        for _ in 0..5 {
            let Some(flow) = flows.flow(&old.patient_id, &old.alert_id).await? else { break };
            let Ok(mut step) = flow::step(&flow, Event::Superseded, "platform", now) else { break };
            step.record.superseded_by = Some(alert.alert_id.clone());
            if flows.record_step(&step).await? {
                break;
            }
        }
        flows.close(&old.patient_id, &old.alert_id, "platform", &format_utc(now)).await?;
        tracing::info!(alert_id = %old.alert_id, superseded_by = %alert.alert_id, "alert superseded");
    }
    Ok(())
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Swept {
    pub advanced: usize,
    pub failed: usize,
}

/// Flows a sweep takes on: a minute's run stays well inside the function's timeout; what is
/// left is due next minute, soonest first.
const SWEEP_LIMIT: i32 = 200;

/// The per-minute sweep (`alert-sweep`): advances every flow with work due (a flow not started
/// yet, a deadline passed, a delivery to retry). One flow's failure is logged and left due, so
/// the next sweep tries it again; it does not hold back the others.
pub async fn sweep<F: FlowStore, C: CareStore, M: MessageStore, N: Notifier>(deps: &FlowDeps<F, C, M, N>) -> Result<Swept, StoreError> {
    let now = format_utc(deps.clock.now());
    let mut swept = Swept::default();
    for due in deps.flows.due(&now, SWEEP_LIMIT).await? {
        let done = match &due {
            Due::Flow { patient_id, alert_id } => advance(deps, patient_id, alert_id).await,
            Due::Overdue { patient_id } => overdue(deps, patient_id).await,
        };
        match done {
            Ok(()) => swept.advanced += 1,
            Err(e) => {
                tracing::warn!(due = ?due, error = %e, "due work not done; the next sweep tries again");
                swept.failed += 1;
            }
        }
    }
    Ok(swept)
}

/// Applies an answer, acknowledgement or resolution to the alert's flow and stores it; the
/// step, or why it does not apply. Deciding again on a newer version when another step won.
pub async fn apply<F: FlowStore>(flows: &F, settings: &ClinicalSettings, alert: &Alert, event: Event, by: &str, now: DateTime<Utc>) -> Result<Result<Step, FlowRefusal>, StoreError> {
    for _ in 0..5 {
        let flow = match flows.flow(&alert.patient_id, &alert.alert_id).await? {
            Some(flow) => flow,
            // Not started yet (the sweep has not come by): start it here, then apply.
            None => match start_flow(flows, alert, settings, now).await? {
                Some(started) => started,
                None => continue,
            },
        };
        let step = match flow::step(&flow, event, by, now) {
            Ok(step) => step,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if flows.record_step(&step).await? {
            return Ok(Ok(step));
        }
    }
    Err(StoreError::new("apply alert flow event", "the flow kept changing; try again"))
}

/// Plans, sends and records the deliveries of every undelivered step, then puts the flow back
/// on the sweep's index for its deadline or its next retry.
async fn deliver<F: FlowStore, C: CareStore, M: MessageStore, N: Notifier>(
    deps: &FlowDeps<F, C, M, N>,
    alert: &Alert,
    flow: &Flow,
    settings: &ClinicalSettings,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let history = deps.flows.history(&alert.patient_id, &alert.alert_id).await?;
    let undelivered: Vec<&StepRecord> = history.iter().filter(|(_, delivered)| !delivered).map(|(r, _)| r).collect();
    let mut deliveries = deps.flows.deliveries(&alert.patient_id, &alert.alert_id).await?;
    // Planned once: a later run (a retry) finds the step's deliveries and plans nothing, so no
    // second answer link is issued either.
    let unplanned: Vec<&&StepRecord> = undelivered.iter().filter(|r| !deliveries.iter().any(|d| d.step == r.version)).collect();
    if !unplanned.is_empty() {
        let recipients = Recipients::of(&deps.care, &alert.patient_id).await?;
        for record in unplanned {
            let link = if record.effects.contains(&Effect::AskPatient) && !settings.channels.is_empty() { deps.links.issue(&alert.patient_id, &alert.alert_id, now) } else { None };
            // The link is stored before the message that carries it can be.
            if let Some((_, stored)) = &link {
                deps.flows.put_link(stored).await?;
            }
            deps.flows.add_deliveries(&plan(alert, record, &recipients, settings, link.as_ref().map(|(url, _)| url.as_str()), now)).await?;
        }
        deliveries = deps.flows.deliveries(&alert.patient_id, &alert.alert_id).await?;
    }
    let now_text = format_utc(now);
    let mut next_retry: Option<String> = None;
    for d in deliveries.iter_mut().filter(|d| d.is_ready(&now_text)) {
        send(deps, d, now).await?;
    }
    for record in undelivered {
        let of_step: Vec<&Delivery> = deliveries.iter().filter(|d| d.step == record.version).collect();
        match of_step.iter().filter(|d| !d.is_final()).filter_map(|d| d.next_attempt_at.clone()).min() {
            None if of_step.iter().all(|d| d.is_final()) => deps.flows.mark_delivered(&alert.patient_id, &alert.alert_id, record.version).await?,
            retry => next_retry = [next_retry, retry.or_else(|| Some(now_text.clone()))].into_iter().flatten().min(),
        }
    }
    let next = [flow.due_at.clone(), next_retry].into_iter().flatten().min();
    deps.flows.reschedule(&alert.patient_id, &alert.alert_id, flow.version, next.as_deref()).await
}

/// Claims one delivery, sends it, and records what happened.
async fn send<F: FlowStore, C: CareStore, M: MessageStore, N: Notifier>(deps: &FlowDeps<F, C, M, N>, d: &mut Delivery, now: DateTime<Utc>) -> Result<(), StoreError> {
    let read = d.attempts;
    let mut claimed = d.clone();
    claimed.status = DeliveryStatus::Sending;
    claimed.attempts += 1;
    claimed.next_attempt_at = Some(format_utc(now + Duration::minutes(CLAIM_LEASE_MINUTES)));
    claimed.updated_at = format_utc(now);
    if !deps.flows.update_delivery(&claimed, read).await? {
        return Ok(()); // another deliverer has it
    }
    let outcome = match d.channel {
        DeliveryChannel::Message => post_message(&deps.messages, &claimed, now).await?,
        DeliveryChannel::Sms | DeliveryChannel::Email => {
            let channel = if d.channel == DeliveryChannel::Sms { Channel::Sms } else { Channel::Email };
            deps.notifier.send(channel, claimed.address.as_deref().unwrap_or_default(), &claimed.subject, &claimed.body).await
        }
    };
    let mut done = claimed.clone();
    done.updated_at = format_utc(now);
    match outcome {
        Ok(id) => {
            done.status = DeliveryStatus::Sent;
            done.provider_message_id = Some(id);
            done.next_attempt_at = None;
            done.last_error = None;
        }
        Err(failure) => {
            // Channel, recipient kind and the provider's reason only: no address or content.
            tracing::warn!(delivery_id = %done.delivery_id, channel = ?done.channel, attempts = done.attempts, error = %failure, "notification failed");
            done.status = DeliveryStatus::Failed;
            done.last_error = Some(failure.0);
            done.next_attempt_at = (done.attempts < MAX_ATTEMPTS).then(|| format_utc(now + Duration::minutes(1 << done.attempts.min(6))));
        }
    }
    if deps.flows.update_delivery(&done, claimed.attempts).await? {
        *d = done;
    }
    Ok(())
}

/// A message in the messages API, with a uuid from the delivery id: sending again finds it
/// there and sends nothing new.
async fn post_message<M: MessageStore>(messages: &M, d: &Delivery, now: DateTime<Utc>) -> Result<Result<String, NotifyFailure>, StoreError> {
    let internal = json!({"alertId": d.alert_id, "patientId": d.patient_id});
    post(messages, &format!("delivery:{}", d.delivery_id), (receiver_type(d.recipient), &d.recipient_id), &d.body, d.message_type.unwrap_or(0), &internal, now).await
}

/// The messages API's party type of a recipient.
fn receiver_type(recipient: RecipientKind) -> &'static str {
    match recipient {
        RecipientKind::Patient => "patient",
        RecipientKind::Location => "location",
        RecipientKind::Doctor | RecipientKind::Nurse | RecipientKind::Ems => "clinician",
    }
}

/// Posts a message from the platform with a uuid named by `seed` (posting again finds it and
/// writes nothing); its uuid, or why the messages API's rules refuse it.
async fn post<M: MessageStore>(messages: &M, seed: &str, (receiver_type, receiver): (&str, &str), content: &str, message_type: i64, internal: &serde_json::Value, now: DateTime<Utc>) -> Result<Result<String, NotifyFailure>, StoreError> {
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("vitalwire:{seed}").as_bytes()).to_string();
    let body = json!({
        "sender": "vitalwire", "sender_type": "system", "receiver": receiver, "receiver_type": receiver_type,
        "content": content, "message_type": {"value": message_type}, "internal": internal.to_string(),
    });
    let new = match new_message(&body) {
        Ok(new) => new,
        Err(refusal) => return Ok(Err(NotifyFailure(refusal.to_string()))),
    };
    messages.create(&Message::from_new(uuid.clone(), new, "vitalwire", PolarisTime::utc(now))).await?;
    Ok(Ok(uuid))
}

/// A patient whose next NEWS2 set is due (`Due::Overdue`): if their settings track sets and the
/// set is overdue by their own interval, a grey alert message goes to the location's and each
/// team member's inbox, once per overdue set (the next reading starts the clock again);
/// otherwise the sweep comes back when it is due, or not at all.
async fn overdue<F: FlowStore, C: CareStore, M: MessageStore, N: Notifier>(deps: &FlowDeps<F, C, M, N>, patient_id: &str) -> Result<(), StoreError> {
    let Some(last) = deps.flows.last_set(patient_id).await? else { return Ok(()) };
    let Some(intervals) = deps.care.settings(patient_id).await?.and_then(|s| s.monitoring) else {
        return deps.flows.reschedule_set(patient_id, &last.at, None).await;
    };
    let Some(at) = crate::platform::time::parse_with_offset(&last.at) else {
        return deps.flows.reschedule_set(patient_id, &last.at, None).await;
    };
    let now = deps.clock.now();
    let due = at + intervals.interval(last.severity, last.overall);
    if now < due {
        return deps.flows.reschedule_set(patient_id, &last.at, Some(&format_utc(due))).await;
    }
    let to = Recipients::of(&deps.care, patient_id).await?;
    let content = format!("Patient {patient_id}'s next observation set was due at {}: no set since {}.", format_utc(due), last.at);
    let internal = json!({"patientId": patient_id, "lastSetAt": last.at});
    for (kind, id) in to.inboxes() {
        let receiver = (receiver_type(kind), id);
        let seed = format!("overdue:{patient_id}:{}:{}:{}", last.at, receiver.0, receiver.1);
        if let Err(refused) = post(&deps.messages, &seed, receiver, &content, Colour::Grey.message_type().value(), &internal, now).await? {
            tracing::warn!(error = %refused, "grey alert refused by the messages API's rules");
        }
    }
    tracing::info!(last_set_at = %last.at, "grey alert: next set overdue");
    deps.flows.reschedule_set(patient_id, &last.at, None).await
}

/// Who a patient's deliveries can go to.
struct Recipients {
    team: CareTeam,
    doctors: Vec<crate::care::Clinician>,
    nurses: Vec<crate::care::Clinician>,
    /// Team members named but not on record.
    missing: Vec<(RecipientKind, String)>,
    ems: Option<crate::care::Contact>,
}

impl Recipients {
    async fn of<C: CareStore>(care: &C, patient_id: &str) -> Result<Self, StoreError> {
        let team = care.care_team(patient_id).await?.unwrap_or_default();
        let (mut doctors, mut nurses, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        for (ids, kind) in [(&team.doctors, RecipientKind::Doctor), (&team.nurses, RecipientKind::Nurse)] {
            for id in ids {
                match care.clinician(id).await? {
                    Some(c) if kind == RecipientKind::Doctor => doctors.push(c),
                    Some(c) => nurses.push(c),
                    None => missing.push((kind, id.clone())),
                }
            }
        }
        let ems = match &team.location_id {
            Some(l) => care.location(l).await?.and_then(|l| l.ems),
            None => None,
        };
        Ok(Self { team, doctors, nurses, missing, ems })
    }

    /// The inboxes the team's messages go to: the location's, then each doctor's and nurse's.
    fn inboxes(&self) -> impl Iterator<Item = (RecipientKind, &str)> {
        let location = self.team.location_id.iter().map(|l| (RecipientKind::Location, l.as_str()));
        let doctors = self.doctors.iter().map(|c| (RecipientKind::Doctor, c.clinician_id.as_str()));
        let nurses = self.nurses.iter().map(|c| (RecipientKind::Nurse, c.clinician_id.as_str()));
        location.chain(doctors).chain(nurses)
    }
}

fn kind_text(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::News2 => "NEWS2",
        AlertKind::GlucoseLow => "low glucose",
        AlertKind::GlucoseHigh => "high glucose",
    }
}

/// What SMS and email may say about the alert: the readings only where the patient's settings
/// allow it.
fn summary(alert: &Alert, settings: &ClinicalSettings) -> String {
    let what = format!("{} {} alert", alert.severity.as_str(), kind_text(alert.kind));
    if settings.values_in_notifications {
        format!("{what} ({})", summary_values(alert))
    } else {
        what
    }
}

/// The deliveries a step asks for.
fn plan(alert: &Alert, record: &StepRecord, to: &Recipients, settings: &ClinicalSettings, answer_link: Option<&str>, now: DateTime<Utc>) -> Vec<Delivery> {
    let at = format_utc(now);
    let mut planned: Vec<Delivery> = Vec::new();
    let mut add = |recipient: RecipientKind, recipient_id: &str, channel: DeliveryChannel, address: Option<&str>, subject: &str, body: String, message_type: Option<i64>, status: DeliveryStatus| {
        planned.push(Delivery {
            delivery_id: format!("{}.{:04}.{:03}", alert.alert_id, record.version, planned.len() + 1),
            patient_id: alert.patient_id.clone(),
            alert_id: alert.alert_id.clone(),
            step: record.version,
            recipient,
            recipient_id: recipient_id.to_owned(),
            channel,
            address: address.map(str::to_owned),
            subject: subject.to_owned(),
            body,
            message_type,
            status,
            attempts: 0,
            provider_message_id: None,
            last_error: (status == DeliveryStatus::Undeliverable).then(|| format!("no {} to send to", match recipient {
                RecipientKind::Ems => "EMS contact for the patient's location",
                RecipientKind::Location => "location",
                _ => "phone number or email address",
            })),
            next_attempt_at: None,
            created_at: at.clone(),
            updated_at: at.clone(),
        });
    };
    let severity = record.severity.unwrap_or(alert.severity);
    let summary = summary(&Alert { severity, ..alert.clone() }, settings);
    let subject = format!("Vitalwire: {summary}");
    let clinician_text = format!("Vitalwire: {summary} for patient {}. Alert {}.", alert.patient_id, alert.alert_id);
    for effect in &record.effects {
        match effect {
            Effect::AskPatient => {
                let answers = flow::Answer::ALL.map(flow::Answer::as_str).join(", ");
                let content = format!("Your latest readings may need attention. May we tell your care team? Answer in the app: {answers}.");
                add(RecipientKind::Patient, &alert.patient_id, DeliveryChannel::Message, None, &subject, content, Some(0), DeliveryStatus::Pending);
                let held = !settings.may_notify(severity, now);
                for channel in &settings.channels {
                    let (channel, address) = match channel {
                        Channel::Sms => (DeliveryChannel::Sms, settings.phone.as_deref()),
                        Channel::Email => (DeliveryChannel::Email, settings.email.as_deref()),
                    };
                    let status = if address.is_none() {
                        DeliveryStatus::Undeliverable
                    } else if held {
                        DeliveryStatus::Held
                    } else {
                        DeliveryStatus::Pending
                    };
                    let body = match answer_link {
                        Some(url) => format!("Vitalwire: your latest readings may need attention. Tell us who to contact: {url} (or open the app)."),
                        None => "Vitalwire: your latest readings may need attention. Please open the app and tell us who to contact.".to_owned(),
                    };
                    add(RecipientKind::Patient, &alert.patient_id, channel, address, "Vitalwire: please check your readings", body, None, status);
                }
            }
            Effect::Tell(Responder::Ems) => match &to.ems {
                Some(ems) => {
                    let text = format!("{clinician_text} The patient's care team asks for emergency help.");
                    for (channel, address) in [(DeliveryChannel::Sms, ems.phone.as_deref()), (DeliveryChannel::Email, ems.email.as_deref())] {
                        if address.is_some() {
                            add(RecipientKind::Ems, &ems.name, channel, address, &subject, text.clone(), None, DeliveryStatus::Pending);
                        }
                    }
                    if ems.phone.is_none() && ems.email.is_none() {
                        add(RecipientKind::Ems, &ems.name, DeliveryChannel::Sms, None, &subject, text, None, DeliveryStatus::Undeliverable);
                    }
                }
                None => add(RecipientKind::Ems, "", DeliveryChannel::Sms, None, &subject, clinician_text.clone(), None, DeliveryStatus::Undeliverable),
            },
            Effect::Tell(responder) => {
                let kind = RecipientKind::of(*responder);
                let people = if *responder == Responder::Doctor { &to.doctors } else { &to.nurses };
                for c in people {
                    for (channel, address) in [(DeliveryChannel::Sms, c.phone.as_deref()), (DeliveryChannel::Email, c.email.as_deref())] {
                        if address.is_some() {
                            add(kind, &c.clinician_id, channel, address, &subject, clinician_text.clone(), None, DeliveryStatus::Pending);
                        }
                    }
                    if c.phone.is_none() && c.email.is_none() {
                        add(kind, &c.clinician_id, DeliveryChannel::Sms, None, &subject, clinician_text.clone(), None, DeliveryStatus::Undeliverable);
                    }
                }
                for (_, id) in to.missing.iter().filter(|(k, _)| *k == kind) {
                    add(kind, id, DeliveryChannel::Sms, None, &subject, clinician_text.clone(), None, DeliveryStatus::Undeliverable);
                }
                if people.is_empty() && !to.missing.iter().any(|(k, _)| *k == kind) {
                    add(kind, "", DeliveryChannel::Sms, None, &subject, clinician_text.clone(), None, DeliveryStatus::Undeliverable);
                }
            }
            Effect::ClinicianAlert(colour) => {
                let content = if *colour == Colour::Grey {
                    format!("Patient {}'s next observation set is overdue.", alert.patient_id)
                } else {
                    format!("{} {} alert for patient {} ({}).", severity.as_str(), kind_text(alert.kind), alert.patient_id, summary_values(alert))
                };
                inboxes(&mut add, to, &subject, &content, colour.message_type().value());
            }
            Effect::ClearAlerts => {
                let content = format!("All alerts of patient {} are resolved.", alert.patient_id);
                inboxes(&mut add, to, &subject, &content, crate::messages::MessageType::ClearAlerts.value());
            }
        }
    }
    planned
}

type Add<'a> = dyn FnMut(RecipientKind, &str, DeliveryChannel, Option<&str>, &str, String, Option<i64>, DeliveryStatus) + 'a;

/// A message to the location's inbox and each team member's.
fn inboxes(add: &mut Add<'_>, to: &Recipients, subject: &str, content: &str, message_type: i64) {
    for (kind, id) in to.inboxes() {
        add(kind, id, DeliveryChannel::Message, None, subject, content.to_owned(), Some(message_type), DeliveryStatus::Pending);
    }
}

/// The alert's score and readings, for the clinicians' in-app messages (patient data under
/// the messages API's access rules, not SMS).
fn summary_values(alert: &Alert) -> String {
    let readings: Vec<String> = alert.contributions.iter().map(|c| format!("{} {} {}", c.parameter.as_str(), c.value, c.unit).trim().to_owned()).collect();
    match alert.score {
        Some(score) => format!("score {score}{}; {}", if alert.partial { ", partial set" } else { "" }, readings.join(", ")),
        None => readings.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::care::memory::MemoryCare;
    use crate::care::{Clinician, ClinicianRole, Contact, Location, LocationKind, QuietHours};
    use crate::clinical::flow::{Answer, Stage};
    use crate::clinical::memory::{MemoryAlerts, MemoryNotifier};
    use crate::clinical::news2::Severity;
    use crate::clinical::AlertStore;
    use crate::messages::memory::MemoryMessages;

    type Deps = FlowDeps<MemoryAlerts, MemoryCare, MemoryMessages, MemoryNotifier>;

    fn clinician(id: &str, role: ClinicianRole, phone: Option<&str>, email: Option<&str>) -> Clinician {
        Clinician { clinician_id: id.into(), name: id.into(), role, email: email.map(Into::into), phone: phone.map(Into::into), location_ids: vec!["ward-7".into()] }
    }

    /// P1 on ward 7 (EMS by phone), with doctor d-1 (SMS and email) and nurse n-1 (SMS);
    /// P1 is told by SMS too.
    async fn deps(settings: ClinicalSettings) -> Deps {
        let care = MemoryCare::default();
        care.put_location(&Location { location_id: "ward-7".into(), name: "Ward 7".into(), kind: LocationKind::Ward, ems: Some(Contact { name: "Ambulance".into(), phone: Some("+441234567890".into()), email: None }) }).await.unwrap();
        care.put_clinician(&clinician("d-1", ClinicianRole::Doctor, Some("+447700900001"), Some("d1@example.org")), None).await.unwrap();
        care.put_clinician(&clinician("n-1", ClinicianRole::Nurse, Some("+447700900002"), None), None).await.unwrap();
        care.put_care_team(&CareTeam { patient_id: "P1".into(), doctors: vec!["d-1".into()], nurses: vec!["n-1".into()], location_id: Some("ward-7".into()) }).await.unwrap();
        care.put_settings(&ClinicalSettings { patient_id: "P1".into(), ..settings }).await.unwrap();
        let links = AnswerLinks { base_url: Some("https://api.example.org".into()), lifetime_hours: 24 };
        FlowDeps { flows: MemoryAlerts::default(), care, messages: MemoryMessages::default(), notifier: MemoryNotifier::default(), clock: Clock::controllable(), links }
    }

    fn sms_settings() -> ClinicalSettings {
        ClinicalSettings { channels: vec![Channel::Sms], phone: Some("+447700900099".into()), ..ClinicalSettings::default() }
    }

    async fn raise(deps: &Deps, severity: Severity) -> Alert {
        raise_as(deps, "a-1", severity).await
    }

    async fn raise_as(deps: &Deps, id: &str, severity: Severity) -> Alert {
        let now = format_utc(deps.clock.now());
        let alert = Alert {
            alert_id: id.into(),
            patient_id: "P1".into(),
            device_id: "dev-1".into(),
            kind: AlertKind::News2,
            score: Some(6),
            severity,
            partial: true,
            contributions: vec![super::super::Contribution {
                parameter: super::super::Parameter::News2(super::super::news2::Parameter::HeartRate),
                observation_id: "o-1".into(),
                value: "131".into(),
                unit: "/min".into(),
                effective_at: now.clone(),
                score: Some(3),
            }],
            set_at: now.clone(),
            raised_at: now,
            status: AlertStatus::Open,
            closed_at: None,
            closed_by: None,
        };
        assert!(deps.flows.raise(&alert).await.unwrap());
        alert
    }

    /// Deliveries as (recipient, recipient id, channel, status).
    async fn deliveries(deps: &Deps) -> Vec<(RecipientKind, String, DeliveryChannel, DeliveryStatus)> {
        deps.flows.deliveries("P1", "a-1").await.unwrap().into_iter().map(|d| (d.recipient, d.recipient_id, d.channel, d.status)).collect()
    }

    fn sent_to(deps: &Deps) -> Vec<String> {
        deps.notifier.sent.lock().unwrap().iter().map(|(_, to, _)| to.clone()).collect()
    }

    use DeliveryChannel::{Email, Message as Msg, Sms};
    use DeliveryStatus::{Held, Sent};
    use RecipientKind::{Doctor, Ems, Location as Loc, Nurse, Patient};

    fn d(r: RecipientKind, id: &str, c: DeliveryChannel, s: DeliveryStatus) -> (RecipientKind, String, DeliveryChannel, DeliveryStatus) {
        (r, id.into(), c, s)
    }

    #[tokio::test]
    async fn a_medium_alert_asks_the_patient_alerts_the_inboxes_and_escalates_to_doctor_and_nurse_at_its_deadline() {
        let deps = deps(sms_settings()).await;
        raise(&deps, Severity::Medium).await;
        let start = deps.clock.now();
        assert_eq!(deps.flows.due(&format_utc(start), 10).await.unwrap(), [Due::Flow { patient_id: "P1".into(), alert_id: "a-1".into() }], "a raised alert is due at once");
        advance(&deps, "P1", "a-1").await.unwrap();
        assert_eq!(
            deliveries(&deps).await,
            [d(Patient, "P1", Msg, Sent), d(Patient, "P1", Sms, Sent), d(Loc, "ward-7", Msg, Sent), d(Doctor, "d-1", Msg, Sent), d(Nurse, "n-1", Msg, Sent)]
        );
        assert_eq!(sent_to(&deps), ["+447700900099"]);
        let amber = deps.messages.0.lock().unwrap().values().filter(|m| m.message_type == crate::messages::MessageType::AmberAlert).count();
        assert_eq!(amber, 3, "the ward's, the doctor's and the nurse's inboxes");
        let sms = deps.notifier.sent.lock().unwrap()[0].2.clone();
        assert!(!sms.contains("heart_rate") && !sms.contains("131 /min") && !sms.contains("score"), "no readings in an SMS unless the settings allow: {sms}");
        assert!(deps.flows.due(&format_utc(start + Duration::minutes(14)), 10).await.unwrap().is_empty(), "nothing to do before the deadline");

        // Advanced again before the deadline: nothing new.
        advance(&deps, "P1", "a-1").await.unwrap();
        assert_eq!(deliveries(&deps).await.len(), 5);
        deps.clock.advance(Duration::minutes(15));
        let due = deps.flows.due(&format_utc(deps.clock.now()), 10).await.unwrap();
        assert_eq!(due.len(), 1, "due at the deadline");
        advance(&deps, "P1", "a-1").await.unwrap();
        let flow = deps.flows.flow("P1", "a-1").await.unwrap().unwrap();
        assert_eq!((flow.stage, flow.version), (Stage::Escalated, 2));
        assert_eq!(&deliveries(&deps).await[5..], [d(Doctor, "d-1", Sms, Sent), d(Doctor, "d-1", Email, Sent), d(Nurse, "n-1", Sms, Sent)]);
        let doctor_sms = deps.notifier.sent.lock().unwrap()[1].2.clone();
        assert_eq!(doctor_sms, "Vitalwire: medium NEWS2 alert for patient P1. Alert a-1.", "no readings unless the patient's settings allow them");
        assert!(deps.flows.due(&format_utc(deps.clock.now() + Duration::days(1)), 10).await.unwrap().is_empty(), "an escalated medium alert waits for a clinician");
        let history: Vec<String> = deps.flows.history("P1", "a-1").await.unwrap().into_iter().map(|(r, delivered)| format!("{} {delivered}", r.event)).collect();
        assert_eq!(history, ["raised true", "timed_out true"]);
    }

    #[tokio::test]
    async fn a_high_alert_tells_doctor_and_nurse_at_once_and_ems_after_the_deadline() {
        let deps = deps(sms_settings()).await;
        raise(&deps, Severity::High).await;
        advance(&deps, "P1", "a-1").await.unwrap();
        assert_eq!(sent_to(&deps), ["+447700900099", "+447700900001", "d1@example.org", "+447700900002"]);
        deps.clock.advance(Duration::minutes(15));
        advance(&deps, "P1", "a-1").await.unwrap();
        assert_eq!(sent_to(&deps).last().map(String::as_str), Some("+441234567890"), "EMS");
        assert_eq!(deliveries(&deps).await.last(), Some(&d(Ems, "Ambulance", Sms, Sent)));
    }

    #[tokio::test]
    async fn the_patients_answer_tells_whom_they_chose_and_acknowledging_stops_escalation() {
        let deps = deps(ClinicalSettings::default()).await;
        let alert = raise(&deps, Severity::Medium).await;
        advance(&deps, "P1", "a-1").await.unwrap();
        let settings = ClinicalSettings::default();
        let answered = apply(&deps.flows, &settings, &alert, Event::Answered(Answer::ApproveNurse), "P1-sub", deps.clock.now()).await.unwrap().unwrap();
        assert_eq!(answered.flow.stage, Stage::Answered);
        advance(&deps, "P1", "a-1").await.unwrap();
        assert_eq!(sent_to(&deps), ["+447700900002"], "only the nurse");
        let again = apply(&deps.flows, &settings, &alert, Event::Answered(Answer::ApproveAll), "P1-sub", deps.clock.now()).await.unwrap();
        assert_eq!(again, Err(FlowRefusal::AlreadyAnswered("approve_nurse")));
        apply(&deps.flows, &settings, &alert, Event::Acknowledged, "n-1", deps.clock.now()).await.unwrap().unwrap();
        deps.clock.advance(Duration::hours(2));
        advance(&deps, "P1", "a-1").await.unwrap();
        assert_eq!(sent_to(&deps).len(), 1, "nothing more after the acknowledgement");
    }

    #[tokio::test]
    async fn a_worse_alert_restarts_the_flow_at_its_severity_and_ends_the_lower_ones() {
        let deps = deps(ClinicalSettings::default()).await;
        raise(&deps, Severity::Medium).await;
        advance(&deps, "P1", "a-1").await.unwrap();
        let acknowledged = apply(&deps.flows, &ClinicalSettings::default(), &deps.flows.alert("P1", "a-1").await.unwrap().unwrap(), Event::Acknowledged, "n-1", deps.clock.now()).await.unwrap();
        assert!(acknowledged.is_ok());
        deps.clock.advance(Duration::minutes(5));
        raise_as(&deps, "a-2", Severity::High).await;
        advance(&deps, "P1", "a-2").await.unwrap();
        let worse = deps.flows.flow("P1", "a-2").await.unwrap().unwrap();
        assert_eq!((worse.stage, worse.severity, worse.told.as_slice()), (Stage::AskingPatient, Severity::High, [Responder::Doctor, Responder::Nurse].as_slice()), "asked again, doctor and nurse told at once");
        let old = deps.flows.alert("P1", "a-1").await.unwrap().unwrap();
        assert_eq!((old.status, old.closed_by.as_deref()), (AlertStatus::Closed, Some("platform")));
        let (last, _) = deps.flows.history("P1", "a-1").await.unwrap().pop().unwrap();
        assert_eq!((last.event.as_str(), last.superseded_by.as_deref(), last.to), ("superseded", Some("a-2"), Stage::Resolved));
        assert_eq!(deps.flows.open("P1").await.unwrap().iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(), ["a-2"]);
        assert_eq!(sent_to(&deps), ["+447700900001", "d1@example.org", "+447700900002"], "the high alert's doctor and nurse");
    }

    #[tokio::test]
    async fn a_provider_failure_is_retried_with_a_pause_and_kept_visible_until_it_goes_through() {
        let deps = deps(sms_settings()).await;
        deps.notifier.failures.store(2, Ordering::SeqCst);
        raise(&deps, Severity::Medium).await;
        advance(&deps, "P1", "a-1").await.unwrap();
        let sms = deps.flows.deliveries("P1", "a-1").await.unwrap().into_iter().find(|d| d.channel == Sms).unwrap();
        assert_eq!((sms.status, sms.attempts, sms.last_error.as_deref()), (DeliveryStatus::Failed, 1, Some("Throttling: rate exceeded")));
        let retry_at = sms.next_attempt_at.clone().unwrap();
        assert_eq!(retry_at, format_utc(parse(&sms.updated_at) + Duration::minutes(2)));
        assert_eq!(deps.flows.due(&retry_at, 10).await.unwrap().len(), 1, "the sweep comes back for the retry");
        assert!(!deps.flows.history("P1", "a-1").await.unwrap()[0].1, "the step is not delivered yet");
        advance(&deps, "P1", "a-1").await.unwrap();
        assert_eq!(deps.flows.deliveries("P1", "a-1").await.unwrap().iter().find(|d| d.channel == Sms).unwrap().attempts, 1, "not before its pause");
        deps.clock.advance(Duration::minutes(2));
        advance(&deps, "P1", "a-1").await.unwrap();
        deps.clock.advance(Duration::minutes(4));
        advance(&deps, "P1", "a-1").await.unwrap();
        let sms = deps.flows.deliveries("P1", "a-1").await.unwrap().into_iter().find(|d| d.channel == Sms).unwrap();
        assert_eq!((sms.status, sms.attempts, sms.provider_message_id.as_deref()), (Sent, 3, Some("msg-1")));
        assert!(deps.flows.history("P1", "a-1").await.unwrap()[0].1);
        assert_eq!(deps.flows.links(), 1, "retries send the first link, and issue no other");
        assert!(sms.body.contains("https://api.example.org/alerts/answer/"), "{}", sms.body);
    }

    #[tokio::test]
    async fn a_delivery_that_keeps_failing_is_given_up_after_its_attempts_and_stays_failed() {
        let deps = deps(sms_settings()).await;
        deps.notifier.failures.store(100, Ordering::SeqCst);
        raise(&deps, Severity::Medium).await;
        for _ in 0..8 {
            advance(&deps, "P1", "a-1").await.unwrap();
            deps.clock.advance(Duration::hours(2));
        }
        let sms = deps.flows.deliveries("P1", "a-1").await.unwrap().into_iter().find(|d| d.channel == Sms).unwrap();
        assert_eq!((sms.status, sms.attempts, sms.next_attempt_at.as_deref()), (DeliveryStatus::Failed, MAX_ATTEMPTS, None));
        assert!(sms.is_final());
    }

    #[tokio::test]
    async fn the_readings_go_into_sms_and_email_only_where_the_settings_allow() {
        let deps = deps(ClinicalSettings { values_in_notifications: true, ..ClinicalSettings::default() }).await;
        raise(&deps, Severity::High).await;
        advance(&deps, "P1", "a-1").await.unwrap();
        let doctor_sms = deps.notifier.sent.lock().unwrap()[0].2.clone();
        assert_eq!(doctor_sms, "Vitalwire: high NEWS2 alert (score 6, partial set; heart_rate 131 /min) for patient P1. Alert a-1.");
    }

    #[tokio::test]
    async fn an_overdue_set_sends_one_grey_alert_to_the_teams_inboxes_and_only_for_tracked_patients() {
        use crate::care::MonitoringIntervals;
        let hourly = MonitoringIntervals { zero: 12.0, low: 1.0, low_medium: 1.0, medium: 1.0, high: 0.5 };
        let tracked = deps(ClinicalSettings { monitoring: Some(hourly), ..ClinicalSettings::default() }).await;
        let grey = |deps: &Deps| deps.messages.0.lock().unwrap().values().filter(|m| m.message_type == crate::messages::MessageType::GreyAlert).map(|m| m.receiver.clone()).collect::<Vec<_>>();
        let set_at = tracked.clock.now();
        tracked.flows.record_set("P1", &format_utc(set_at), Severity::Low, 2, &format_utc(set_at + MonitoringIntervals::SHORTEST)).await.unwrap();
        tracked.clock.advance(Duration::minutes(15));
        assert_eq!(sweep(&tracked).await.unwrap(), Swept { advanced: 1, failed: 0 });
        assert!(grey(&tracked).is_empty(), "due after the patient's hour, not the first check");
        assert!(tracked.flows.due(&format_utc(set_at + Duration::minutes(59)), 10).await.unwrap().is_empty());
        assert_eq!(tracked.flows.due(&format_utc(set_at + Duration::minutes(60)), 10).await.unwrap(), [Due::Overdue { patient_id: "P1".into() }]);
        tracked.clock.advance(Duration::minutes(45));
        sweep(&tracked).await.unwrap();
        let mut sent = grey(&tracked);
        sent.sort();
        assert_eq!(sent, ["d-1", "n-1", "ward-7"], "the location's and each team member's inbox");
        tracked.clock.advance(Duration::hours(3));
        sweep(&tracked).await.unwrap();
        assert_eq!(grey(&tracked).len(), 3, "once per overdue set");
        // An older set arriving late changes nothing; a new one starts the clock again.
        tracked.flows.record_set("P1", &format_utc(set_at - Duration::hours(1)), Severity::High, 7, &format_utc(tracked.clock.now())).await.unwrap();
        assert_eq!(tracked.flows.last_set("P1").await.unwrap().unwrap().at, format_utc(set_at));
        let next = tracked.clock.now();
        tracked.flows.record_set("P1", &format_utc(next), Severity::Low, 1, &format_utc(next + MonitoringIntervals::SHORTEST)).await.unwrap();
        tracked.clock.advance(Duration::minutes(61));
        sweep(&tracked).await.unwrap();
        sweep(&tracked).await.unwrap();
        assert_eq!(grey(&tracked).len(), 6, "a grey alert for the new overdue set");

        let untracked = deps(ClinicalSettings::default()).await;
        let at = untracked.clock.now();
        untracked.flows.record_set("P1", &format_utc(at), Severity::Low, 2, &format_utc(at + MonitoringIntervals::SHORTEST)).await.unwrap();
        untracked.clock.advance(Duration::days(2));
        sweep(&untracked).await.unwrap();
        assert!(grey(&untracked).is_empty());
        assert!(untracked.flows.due(&format_utc(untracked.clock.now() + Duration::days(30)), 10).await.unwrap().is_empty(), "not tracked: not looked at again");
    }

    #[tokio::test]
    async fn an_alert_closed_before_its_flow_started_leaves_nothing_due() {
        let deps = deps(ClinicalSettings::default()).await;
        raise(&deps, Severity::Medium).await;
        deps.flows.close("P1", "a-1", "n-1", &format_utc(deps.clock.now())).await.unwrap();
        assert_eq!(sweep(&deps).await.unwrap(), Swept { advanced: 1, failed: 0 });
        assert!(deps.flows.flow("P1", "a-1").await.unwrap().is_none(), "no flow for a closed alert");
        assert!(deps.flows.due(&format_utc(deps.clock.now() + Duration::days(1)), 10).await.unwrap().is_empty(), "and the sweep does not come back");
        assert!(deps.messages.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn quiet_hours_hold_the_patients_sms_but_never_an_emergencys() {
        let now = chrono::Utc::now().time();
        let quiet = QuietHours { start: now - Duration::hours(1), end: now + Duration::hours(1), timezone: crate::care::IanaZone::named("UTC").unwrap() };
        let settings = ClinicalSettings { quiet_hours: Some(quiet), ..sms_settings() };
        let quiet = deps(settings.clone()).await;
        raise(&quiet, Severity::Medium).await;
        advance(&quiet, "P1", "a-1").await.unwrap();
        assert_eq!(deliveries(&quiet).await[1], d(Patient, "P1", Sms, Held));
        assert!(sent_to(&quiet).is_empty());
        let high = deps(settings).await;
        raise(&high, Severity::High).await;
        advance(&high, "P1", "a-1").await.unwrap();
        assert_eq!(deliveries(&high).await[1], d(Patient, "P1", Sms, Sent));
    }

    #[tokio::test]
    async fn two_runs_at_once_send_each_notification_once() {
        let deps = deps(sms_settings()).await;
        raise(&deps, Severity::High).await;
        let (a, b) = tokio::join!(advance(&deps, "P1", "a-1"), advance(&deps, "P1", "a-1"));
        a.unwrap();
        b.unwrap();
        advance(&deps, "P1", "a-1").await.unwrap();
        assert_eq!(sent_to(&deps), ["+447700900099", "+447700900001", "d1@example.org", "+447700900002"]);
        assert_eq!(deps.messages.0.lock().unwrap().len(), 4, "one patient message, three red alerts");
    }

    #[tokio::test]
    async fn a_team_without_a_nurse_or_ems_is_recorded_as_undeliverable() {
        let deps = deps(ClinicalSettings::default()).await;
        deps.care.put_care_team(&CareTeam { patient_id: "P1".into(), doctors: vec!["d-1".into(), "d-gone".into()], nurses: vec![], location_id: None }).await.unwrap();
        raise(&deps, Severity::High).await;
        advance(&deps, "P1", "a-1").await.unwrap();
        deps.clock.advance(Duration::minutes(15));
        advance(&deps, "P1", "a-1").await.unwrap();
        let undeliverable: Vec<_> = deps.flows.deliveries("P1", "a-1").await.unwrap().into_iter().filter(|d| d.status == DeliveryStatus::Undeliverable).map(|d| (d.recipient, d.recipient_id, d.last_error.unwrap())).collect();
        assert_eq!(
            undeliverable,
            [
                (Doctor, "d-gone".into(), "no phone number or email address to send to".into()),
                (Nurse, String::new(), "no phone number or email address to send to".into()),
                (Ems, String::new(), "no EMS contact for the patient's location to send to".into())
            ]
        );
    }

    fn parse(text: &str) -> DateTime<Utc> {
        crate::platform::time::parse_with_offset(text).unwrap()
    }
}
