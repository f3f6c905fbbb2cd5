//! Alert routes:
//!
//! | route | function | roles |
//! |---|---|---|
//! | `GET /patients/{patientId}/alerts?limit=&next=` | `patient-alerts` | admin, a clinician of the patient's team, the patient |
//! | `POST /patients/{patientId}/alerts/{alertId}/close` (and `/resolve`) | `patient-alerts-close` | admin, a clinician of the patient's team |
//! | `POST /patients/{patientId}/alerts/{alertId}/acknowledge` | `patient-alerts-acknowledge` | admin, a clinician of the patient's team |
//! | `POST /patients/{patientId}/alerts/{alertId}/answer` | `patient-alerts-answer` | the patient |
//! | `GET /patients/{patientId}/alerts/{alertId}/history` | `patient-alerts-history` | admin, a clinician of the patient's team |
//! | `GET /worklist?clinicianId=` | `clinician-worklist` | a clinician (their own), admin (naming one) |
//! | `GET /alerts/answer/{token}` | `alert-answer-page` | no token: a single-use link's question page |
//! | `POST /alerts/answer/{token}` | `alert-answer-link` | no token: the link's answer, once |
//! | `POST /scores/news2` | `scores-news2` | admin, clinician, patient |
//! | `POST /patients/{patientId}/observation-sets` | `patient-observation-sets` | a clinician of the patient's team; the patient (vital signs and oxygen only) |

use lambda_http::Request;
use serde_json::json;
use serde_json::value::RawValue;

use super::alerting::FlowStore;
use super::flow::{Answer, Effect, Event, Step};
use super::{Alert, AlertStore};
use crate::access::audit::{record_read, AuditLog};
use crate::access::{require, Principal, Role};
use crate::care::{may_read, CareStore};
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::observations::{Inserted, ObservationStore};
use crate::platform::time::Clock;
use crate::platform::http::{json_body, limit_param, path_param, query_param, ApiError, Reply};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};

/// What the alert routes need: the alerts, the audit log (alerts are patient data) and the
/// care teams (who may see them).
pub struct AlertDeps<A, L, C> {
    pub alerts: A,
    pub audit: L,
    pub care: C,
    pub clock: Clock,
}

impl<A: FromWiring, L: FromWiring, C: FromWiring> FromWiring for AlertDeps<A, L, C> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { alerts: w.build()?, audit: w.build()?, care: w.build()?, clock: w.build()? })
    }
}

/// The alert a route names, once the caller may see the patient (every answer audited).
async fn named_alert<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: &Request, deps: &AlertDeps<A, L, C>, who: &Principal) -> Result<Alert, ApiError> {
    let patient = path_param(request, "patientId")?;
    let alert_id = path_param(request, "alertId")?;
    if !may_read(&deps.care, who, &patient).await? {
        record_read(&deps.audit, request, who, &[patient.as_str()], 404).await?;
        return Err(ApiError::NotFound(format!("no patient {patient} in your care")));
    }
    match deps.alerts.alert(&patient, &alert_id).await? {
        Some(alert) => Ok(alert),
        None => {
            record_read(&deps.audit, request, who, &[patient.as_str()], 404).await?;
            Err(ApiError::NotFound(format!("patient {patient} has no alert {alert_id}")))
        }
    }
}

/// Applies a flow event for the caller and answers it: the alert, its flow and the step just
/// taken, or 409 with the reason when it does not apply; audited either way.
async fn flow_route<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: &Request, deps: &AlertDeps<A, L, C>, alert: &Alert, event: Event, who: &Principal) -> Result<Reply, ApiError> {
    let settings = deps.care.settings(&alert.patient_id).await?.unwrap_or_default();
    let patient = [alert.patient_id.as_str()];
    match super::alerting::apply(&deps.alerts, &settings, alert, event, &who.subject, deps.clock.now()).await? {
        Ok(step) => {
            record_read(&deps.audit, request, who, &patient, 200).await?;
            tracing::info!(alert_id = %alert.alert_id, event = event.name(), "alert flow step taken");
            Ok((200, flow_answer(alert, &step)))
        }
        Err(refusal) => {
            record_read(&deps.audit, request, who, &patient, 409).await?;
            Err(ApiError::Conflict(refusal.to_string()))
        }
    }
}

/// The alert, its flow and the step just taken, as the flow routes answer.
fn flow_answer(alert: &Alert, step: &Step) -> serde_json::Value {
    json!({"alert": alert.to_json(), "flow": step.flow, "step": step.record})
}

/// `POST /patients/{patientId}/alerts/{alertId}/close` (or `/resolve`): the alert is dealt
/// with: new readings may raise its kind again, its flow ends (nothing escalates), and when
/// none of the patient's alerts is open any more the team gets a clear-alerts message.
/// Resolving again answers the alert as it is.
pub async fn close<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: Request, deps: &AlertDeps<A, L, C>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician])?;
    let alert = named_alert(&request, deps, &who).await?;
    let patient = alert.patient_id.clone();
    let at = format_utc(deps.clock.now());
    let closed = deps.alerts.close(&patient, &alert.alert_id, &who.subject, &at).await?.unwrap_or(alert);
    // The open markers name the highest open alert of each kind: none left, none open.
    let open = !deps.alerts.open(&patient).await?.is_empty();
    let mut resolved = None;
    for _ in 0..5 {
        let Some(flow) = deps.alerts.flow(&patient, &closed.alert_id).await? else { break };
        let mut step = match super::flow::step(&flow, Event::Resolved, &who.subject, deps.clock.now()) {
            Ok(step) => step,
            Err(_) => break, // resolved already
        };
        if !open {
            step.effects.push(Effect::ClearAlerts);
            step.record.effects.push(Effect::ClearAlerts);
        }
        if deps.alerts.record_step(&step).await? {
            resolved = Some(step);
            break;
        }
    }
    record_read(&deps.audit, &request, &who, &[patient.as_str()], 200).await?;
    tracing::info!(alert_id = %closed.alert_id, "alert resolved");
    let mut body = closed.to_json();
    if let Some(step) = resolved {
        body["flow"] = json!(step.flow);
    }
    Ok((200, body))
}

/// `POST /patients/{patientId}/alerts/{alertId}/acknowledge`: a clinician has the alert;
/// nothing escalates any more. 409 if someone acknowledged it already, or it was resolved.
pub async fn acknowledge<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: Request, deps: &AlertDeps<A, L, C>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician])?;
    let alert = named_alert(&request, deps, &who).await?;
    flow_route(&request, deps, &alert, Event::Acknowledged, &who).await
}

/// An HTML answer of the link routes: never cached, no referrer (the address is the secret).
fn html(status: u16, body: String) -> lambda_http::Response<lambda_http::Body> {
    let headers = [("cache-control", "no-store".to_owned()), ("referrer-policy", "no-referrer".to_owned()), ("x-robots-tag", "noindex".to_owned())];
    crate::platform::http::text_response(status, "text/html; charset=utf-8", body, &headers)
}

/// The link a path names, if it may still answer; otherwise the page saying why.
async fn open_link<A: FlowStore, L, C>(request: &Request, deps: &AlertDeps<A, L, C>) -> Result<super::links::AnswerLink, lambda_http::Response<lambda_http::Body>> {
    use super::links::{page, token_hash};
    let token = path_param(request, "token").unwrap_or_default();
    match deps.alerts.link(&token_hash(&token)).await {
        Ok(Some(link)) if link.is_open(deps.clock.now()) => Ok(link),
        Ok(Some(link)) if link.used_at.is_some() => Err(html(410, page("This link was used", "<p>Your answer was received. Open the app to see more.</p>"))),
        Ok(Some(_)) => Err(html(410, page("This link has expired", "<p>Please open the app to answer.</p>"))),
        Ok(None) => Err(html(404, page("Unknown link", "<p>Please open the app to answer.</p>"))),
        Err(e) => {
            tracing::warn!(error = %e, "answer link not read");
            Err(html(503, page("Please try again", "<p>We could not read this link just now. Please try again in a minute, or open the app.</p>")))
        }
    }
}

/// `GET /alerts/answer/{token}` (no token): the question page of a single-use answer link.
/// It changes nothing: mail scanners and previews open links; only its form answers.
pub async fn answer_page<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: Request, deps: &AlertDeps<A, L, C>) -> lambda_http::Response<lambda_http::Body> {
    match open_link(&request, deps).await {
        Ok(_) => html(200, super::links::question_page()),
        Err(refused) => refused,
    }
}

/// `POST /alerts/answer/{token}` (no token), the page's form `answer=approve_nurse`: the
/// patient's answer, once; the link is spent whatever the flow says. Audited as the patient's.
pub async fn answer_by_link<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: Request, deps: &AlertDeps<A, L, C>) -> lambda_http::Response<lambda_http::Body> {
    use super::links::page;
    let body = crate::platform::http::body_bytes(&request);
    let chosen = form_urlencoded::parse(body).find(|(k, _)| k == "answer").and_then(|(_, v)| Answer::parse(&v));
    let Some(choice) = chosen else {
        return html(400, page("Please choose an answer", "<p>Go back and press one of the buttons.</p>"));
    };
    let link = match open_link(&request, deps).await {
        Ok(link) => link,
        Err(refused) => return refused,
    };
    let failed = |e: crate::StoreError| {
        tracing::warn!(error = %e, "answer by link not taken");
        html(503, page("Please try again", "<p>We could not take your answer just now. Please try again in a minute, or open the app.</p>"))
    };
    let alert = match deps.alerts.alert(&link.patient_id, &link.alert_id).await {
        Ok(Some(alert)) => alert,
        Ok(None) => return html(404, page("Unknown link", "<p>Please open the app to answer.</p>")),
        Err(e) => return failed(e),
    };
    let now = deps.clock.now();
    match deps.alerts.use_link(&link.token_hash, choice, &format_utc(now)).await {
        Ok(true) => {}
        Ok(false) => return html(410, page("This link was used", "<p>Your answer was received. Open the app to see more.</p>")),
        Err(e) => return failed(e),
    }
    let who = Principal { subject: "answer-link".into(), role: Role::Patient, patient_id: Some(link.patient_id.clone()) };
    let settings = match deps.care.settings(&link.patient_id).await {
        Ok(settings) => settings.unwrap_or_default(),
        Err(e) => return failed(e),
    };
    let outcome = match super::alerting::apply(&deps.alerts, &settings, &alert, Event::Answered(choice), &who.subject, now).await {
        Ok(outcome) => outcome,
        Err(e) => return failed(e),
    };
    let status = if outcome.is_ok() { 200 } else { 409 };
    if let Err(e) = record_read(&deps.audit, &request, &who, &[link.patient_id.as_str()], status).await {
        return failed(e);
    }
    match outcome {
        Ok(_) => {
            tracing::info!(alert_id = %alert.alert_id, answer = choice.as_str(), "patient answered by link");
            let told = match choice {
                Answer::Decline => "We will not contact anyone for now.".to_owned(),
                other => format!("We are telling your {}.", other.responders().iter().map(|r| match r {
                    super::flow::Responder::Doctor => "doctor",
                    super::flow::Responder::Nurse => "nurse",
                    super::flow::Responder::Ems => "emergency services",
                }).collect::<Vec<_>>().join(" and ")),
            };
            html(200, page("Thank you", &format!("<p>{told}</p>")))
        }
        Err(_) => html(409, page("Your care team has this already", "<p>Your care team is already dealing with it. Open the app to see more.</p>")),
    }
}

/// The body of an answer.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    answer: String,
}

/// `POST /patients/{patientId}/alerts/{alertId}/answer` `{"answer": "approve_nurse"}`: the
/// patient's answer to "may we tell your care team?" (`approve_doctor`, `approve_nurse`,
/// `approve_ems`, `approve_all`, `decline`). Only the patient answers; once.
pub async fn answer<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: Request, deps: &AlertDeps<A, L, C>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Patient])?;
    let body: AnswerBody = json_body(&request)?;
    let Some(choice) = Answer::parse(&body.answer) else {
        let all: Vec<&str> = Answer::ALL.iter().map(|a| a.as_str()).collect();
        return Err(ApiError::bad("answer", format!("must be one of {}", all.join(", "))));
    };
    let alert = named_alert(&request, deps, &who).await?;
    flow_route(&request, deps, &alert, Event::Answered(choice), &who).await
}

/// `GET /patients/{patientId}/alerts/{alertId}/history`: the alert, its flow, every step
/// (who, when, what it asked for) and every message and notification with its status.
pub async fn history<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: Request, deps: &AlertDeps<A, L, C>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician])?;
    let alert = named_alert(&request, deps, &who).await?;
    let (patient, id) = (alert.patient_id.as_str(), alert.alert_id.as_str());
    let flow = deps.alerts.flow(patient, id).await?;
    let steps: Vec<serde_json::Value> = deps.alerts.history(patient, id).await?.into_iter().map(|(record, delivered)| {
        let mut step = json!(record);
        step["delivered"] = json!(delivered);
        step
    }).collect();
    let notifications = deps.alerts.deliveries(patient, id).await?;
    record_read(&deps.audit, &request, &who, &[patient], 200).await?;
    Ok((200, json!({"alert": alert.to_json(), "flow": flow, "steps": steps, "notifications": notifications})))
}

/// `GET /worklist`: the open alerts of a clinician's patients (named in their teams, or at their
/// locations), highest severity first, then oldest first, each with its flow; the highest open
/// alert of each kind per patient (a lower one of the same kind is older news). A clinician sees
/// their own; an admin names one with `clinicianId`. Every patient shown is audited.
pub async fn worklist<A: AlertStore + FlowStore, L: AuditLog, C: CareStore>(request: Request, deps: &AlertDeps<A, L, C>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician])?;
    let named = query_param(&request, "clinicianId");
    let clinician_id = match (who.role, named) {
        (Role::Admin, Some(id)) => id,
        (Role::Admin, None) => return Err(ApiError::bad("clinicianId", "an admin names the clinician whose worklist to show")),
        (_, Some(id)) if id != who.subject => return Err(ApiError::Forbidden("a clinician sees only their own worklist".into())),
        _ => who.subject.clone(),
    };
    let Some(patients) = crate::care::patients_in_care(&deps.care, &clinician_id).await? else {
        return Err(ApiError::NotFound(format!("no clinician {clinician_id}")));
    };
    let mut open: Vec<(Alert, Option<super::flow::Flow>)> = Vec::new();
    for patient in &patients {
        for alert in deps.alerts.open(patient).await? {
            let flow = deps.alerts.flow(patient, &alert.alert_id).await?;
            open.push((alert, flow));
        }
    }
    open.sort_by(|(a, _), (b, _)| b.rank().cmp(&a.rank()).then_with(|| a.raised_at.cmp(&b.raised_at)));
    let shown: std::collections::BTreeSet<&str> = open.iter().map(|(a, _)| a.patient_id.as_str()).collect();
    if !shown.is_empty() {
        record_read(&deps.audit, &request, &who, &shown.into_iter().collect::<Vec<_>>(), 200).await?;
    }
    let alerts: Vec<serde_json::Value> = open
        .iter()
        .map(|(alert, flow)| {
            let mut item = alert.to_json();
            item["flow"] = json!(flow);
            item
        })
        .collect();
    Ok((200, json!({"clinicianId": clinician_id, "patients": patients.len(), "alerts": alerts})))
}

/// `GET /patients/{patientId}/alerts`: a page of the patient's alerts, newest first (another
/// patient gets 404, as for Observations).
pub async fn list<A: AlertStore, L: AuditLog, C: CareStore>(request: Request, deps: &AlertDeps<A, L, C>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?;
    let patient = path_param(&request, "patientId")?;
    let limit = limit_param(&request, 50, 200)?;
    if !may_read(&deps.care, &who, &patient).await? {
        record_read(&deps.audit, &request, &who, &[patient.as_str()], 404).await?;
        return Err(ApiError::NotFound(format!("no patient {patient}")));
    }
    let page = deps.alerts.for_patient(&patient, limit, query_param(&request, "next").as_deref()).await?;
    record_read(&deps.audit, &request, &who, &[patient.as_str()], 200).await?;
    Ok((200, json!({"alerts": page.items.iter().map(Alert::to_json).collect::<Vec<_>>(), "next": page.next})))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::access::memory::MemoryAudit;
    use crate::clinical::memory::MemoryAlerts;
    use crate::clinical::news2::Severity;
    use crate::clinical::{AlertKind, AlertStatus};
    use crate::platform::testing::{self, answered, Answered, ApiRequest};

    type Deps = AlertDeps<MemoryAlerts, MemoryAudit, crate::care::memory::MemoryCare>;

    fn alert(patient: &str, id: &str, set_at: &str, kind: AlertKind, severity: Severity) -> Alert {
        Alert {
            alert_id: id.into(),
            patient_id: patient.into(),
            device_id: "acme-1".into(),
            kind,
            score: None,
            severity,
            partial: true,
            contributions: Vec::new(),
            set_at: set_at.into(),
            raised_at: set_at.into(),
            status: AlertStatus::Open,
            closed_at: None,
            closed_by: None,
        }
    }

    /// pat-1 has a glucose alert and two NEWS2 alerts (medium, then high), pat-2 one.
    async fn deps() -> Deps {
        let deps = AlertDeps { alerts: MemoryAlerts::default(), audit: MemoryAudit::default(), care: crate::care::memory::MemoryCare::looking_after("clinician-sub", &["pat-1"]), clock: Clock::default() };
        for a in [
            alert("pat-1", "glucose-1", "2026-11-22T09:00:00.000Z", AlertKind::GlucoseLow, Severity::Medium),
            alert("pat-1", "news2-medium", "2026-11-22T10:00:00.000Z", AlertKind::News2, Severity::Medium),
            alert("pat-1", "news2-high", "2026-11-22T11:00:00.000Z", AlertKind::News2, Severity::High),
            alert("pat-2", "news2-other", "2026-11-22T12:00:00.000Z", AlertKind::News2, Severity::High),
        ] {
            assert!(deps.alerts.raise(&a).await.unwrap(), "{}", a.alert_id);
        }
        deps
    }

    fn list_request(patient: &str, caller: Value) -> ApiRequest {
        ApiRequest::new("GET /patients/{patientId}/alerts").path("patientId", patient).caller(caller)
    }

    fn close_request(patient: &str, alert_id: &str, caller: Value) -> ApiRequest {
        ApiRequest::new("POST /patients/{patientId}/alerts/{alertId}/close").path("patientId", patient).path("alertId", alert_id).caller(caller)
    }

    fn alert_ids(answer: &Answered) -> Vec<&str> {
        answer.body["alerts"].as_array().unwrap().iter().map(|a| a["alertId"].as_str().unwrap()).collect()
    }

    /// The audit log as (patient, subject, role, status).
    fn audited(deps: &Deps) -> Vec<(String, String, String, u16)> {
        deps.audit.all().into_iter().map(|r| (r.patient_id, r.subject, r.role, r.status)).collect()
    }

    fn entry(patient: &str, subject: &str, role: &str, status: u16) -> (String, String, String, u16) {
        (patient.into(), subject.into(), role.into(), status)
    }

    #[tokio::test]
    async fn staff_and_the_patient_list_the_patients_alerts_and_every_read_is_audited() {
        let deps = deps().await;
        for (caller, subject, role) in [
            (testing::clinician(), "clinician-sub", "clinician"),
            (testing::admin(), "admin-sub", "admin"),
            (testing::patient("pat-1"), "pat-1-sub", "patient"),
        ] {
            let answer = answered(list(list_request("pat-1", caller).build(), &deps).await);
            assert_eq!(answer.status, 200, "{role}");
            assert_eq!(alert_ids(&answer), ["news2-high", "news2-medium", "glucose-1"], "{role}: pat-1's, newest first");
            assert_eq!(deps.audit.all().last().map(|r| (r.subject.clone(), r.role.clone(), r.status)), Some((subject.into(), role.into(), 200)));
        }
        assert_eq!(deps.audit.all().len(), 3);
        assert!(deps.audit.all().iter().all(|r| r.patient_id == "pat-1" && r.path == "/patients/pat-1/alerts" && r.method == "GET"));
    }

    #[tokio::test]
    async fn another_patient_is_told_nothing_and_the_attempt_is_audited() {
        let deps = deps().await;
        let answer = answered(list(list_request("pat-1", testing::patient("pat-2")).build(), &deps).await);
        assert_eq!((answer.status, answer.error_code()), (404, Some("NOT_FOUND")));
        assert_eq!(answer.body.get("alerts"), None);
        assert_eq!(audited(&deps), [entry("pat-1", "pat-2-sub", "patient", 404)]);
        // Without a valid token there is no one to audit.
        let anonymous = answered(list(list_request("pat-1", testing::refused_token("no bearer token")).build(), &deps).await);
        assert_eq!(anonymous.status, 401);
        assert_eq!(deps.audit.all().len(), 1);
    }

    #[tokio::test]
    async fn alerts_page_with_the_next_cursor() {
        let deps = deps().await;
        let first = answered(list(list_request("pat-1", testing::clinician()).query("limit", "2").build(), &deps).await);
        assert_eq!(alert_ids(&first), ["news2-high", "news2-medium"]);
        let next = first.body["next"].as_str().unwrap();
        let second = answered(list(list_request("pat-1", testing::clinician()).query("limit", "2").query("next", next).build(), &deps).await);
        assert_eq!(alert_ids(&second), ["glucose-1"]);
        assert_eq!(second.body["next"], Value::Null);
        let bad = answered(list(list_request("pat-1", testing::clinician()).query("limit", "0").build(), &deps).await);
        assert_eq!((bad.status, bad.error_field()), (400, Some("limit")));
    }

    #[tokio::test]
    async fn closing_an_alert_hands_its_kind_to_the_next_open_one_and_closing_again_changes_nothing() {
        let deps = deps().await;
        assert_eq!(deps.alerts.marker("pat-1", AlertKind::News2).as_deref(), Some("news2-high"));
        let closed = answered(close(close_request("pat-1", "news2-high", testing::clinician()).build(), &deps).await);
        assert_eq!(closed.status, 200, "{}", closed.body);
        assert_eq!((closed.body["status"].as_str(), closed.body["closedBy"].as_str()), (Some("closed"), Some("clinician-sub")));
        let closed_at = closed.body["closedAt"].as_str().unwrap().to_owned();
        assert_eq!(deps.alerts.marker("pat-1", AlertKind::News2).as_deref(), Some("news2-medium"), "the medium alert is still open");

        let again = answered(close(close_request("pat-1", "news2-high", testing::admin()).build(), &deps).await);
        assert_eq!(again.status, 200);
        assert_eq!(
            (again.body["closedAt"].as_str(), again.body["closedBy"].as_str()),
            (Some(closed_at.as_str()), Some("clinician-sub")),
            "the first close stays"
        );

        answered(close(close_request("pat-1", "news2-medium", testing::admin()).build(), &deps).await);
        assert_eq!(deps.alerts.marker("pat-1", AlertKind::News2), None, "no NEWS2 alert of pat-1 is open");
        assert_eq!(deps.alerts.marker("pat-2", AlertKind::News2).as_deref(), Some("news2-other"), "another patient's stays");
        let low = alert("pat-1", "news2-low", "2026-11-22T13:00:00.000Z", AlertKind::News2, Severity::Low);
        assert!(deps.alerts.raise(&low).await.unwrap(), "the kind may be raised again");
        assert_eq!(
            audited(&deps),
            [entry("pat-1", "clinician-sub", "clinician", 200), entry("pat-1", "admin-sub", "admin", 200), entry("pat-1", "admin-sub", "admin", 200)]
        );
    }

    #[tokio::test]
    async fn a_worklist_shows_the_clinicians_patients_open_alerts_highest_then_oldest_and_audits_them() {
        let mut deps = deps().await;
        deps.care = crate::care::memory::MemoryCare::looking_after("clinician-sub", &["pat-1", "pat-2"]);
        let request = |caller: Value, clinician: Option<&str>| {
            let r = ApiRequest::new("GET /worklist").caller(caller);
            match clinician {
                Some(c) => r.query("clinicianId", c).build(),
                None => r.build(),
            }
        };
        let answer = answered(worklist(request(testing::clinician(), None), &deps).await);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(alert_ids(&answer), ["news2-high", "news2-other", "glucose-1"], "high before medium, the older high first; the medium NEWS2 alert is older news");
        assert_eq!(answer.body["patients"], 2);
        let mut audited: Vec<String> = deps.audit.all().into_iter().map(|r| r.patient_id).collect();
        audited.sort();
        assert_eq!(audited, ["pat-1", "pat-2"]);
        close(close_request("pat-2", "news2-other", testing::clinician()).build(), &deps).await.unwrap();
        let after = answered(worklist(request(testing::clinician(), None), &deps).await);
        assert_eq!(alert_ids(&after), ["news2-high", "glucose-1"], "a resolved alert leaves the worklist");
        let by_admin = answered(worklist(request(testing::admin(), Some("clinician-sub")), &deps).await);
        assert_eq!(alert_ids(&by_admin), ["news2-high", "glucose-1"]);
        let admin_unnamed = answered(worklist(request(testing::admin(), None), &deps).await);
        assert_eq!((admin_unnamed.status, admin_unnamed.error_field()), (400, Some("clinicianId")));
        let someone_elses = answered(worklist(request(testing::clinician(), Some("other")), &deps).await);
        assert_eq!(someone_elses.status, 403);
        let unknown = answered(worklist(request(testing::admin(), Some("nobody")), &deps).await);
        assert_eq!(unknown.status, 404);
        let by_patient = answered(worklist(request(testing::patient("pat-1"), None), &deps).await);
        assert_eq!(by_patient.status, 403);
    }

    #[tokio::test]
    async fn an_alert_is_closed_only_by_staff_and_only_under_its_patient() {
        let deps = deps().await;
        let by_patient = answered(close(close_request("pat-1", "news2-high", testing::patient("pat-1")).build(), &deps).await);
        assert_eq!((by_patient.status, by_patient.error_code()), (403, Some("FORBIDDEN")));
        let wrong_patient = answered(close(close_request("pat-2", "news2-high", testing::clinician()).build(), &deps).await);
        assert_eq!((wrong_patient.status, wrong_patient.error_code()), (404, Some("NOT_FOUND")));
        let unknown = answered(close(close_request("pat-1", "no-such-alert", testing::clinician()).build(), &deps).await);
        assert_eq!(unknown.status, 404);
        let open = answered(list(list_request("pat-1", testing::admin()).build(), &deps).await);
        assert!(open.body["alerts"].as_array().unwrap().iter().all(|a| a["status"] == "open"), "nothing was closed");
        assert_eq!(
            audited(&deps),
            [
                entry("pat-2", "clinician-sub", "clinician", 404),
                entry("pat-1", "clinician-sub", "clinician", 404),
                entry("pat-1", "admin-sub", "admin", 200)
            ],
            "refused closes are audited; a patient's attempt is refused before it reaches any data"
        );
    }
}

/// `POST /scores/news2`: NEWS2 of an observation set, in the Polaris scoring engine's input and
/// output format ([`super::scoring`]); 400 with the engine's message for a missing `time` or
/// `config`, or a bad ACVPU. It computes from the body alone: no patient data is read.
pub async fn score_news2(request: Request, _: &()) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?;
    let body: serde_json::Value = json_body(&request)?;
    let set = super::scoring::EngineSet::from_json(&body).map_err(|e| ApiError::bad(e.field(), e.to_string()))?;
    let scored = serde_json::to_value(super::scoring::score(&set)).map_err(|e| ApiError::Store(crate::StoreError::new("write the answer", e)))?;
    Ok((200, scored))
}

/// What the observation-set route needs: the Observations it files and reads, the alerts it
/// raises, the care teams (who may record, and the patient's settings), the audit log and the
/// dead letters that keep refused sets.
pub struct SetDeps<O, A, C, L, D> {
    pub observations: O,
    pub alerts: A,
    pub care: C,
    pub audit: L,
    pub dead_letters: D,
    pub clock: Clock,
    pub settings: super::AlertSettings,
}

impl<O: FromWiring, A: FromWiring, C: FromWiring, L: FromWiring, D: FromWiring> FromWiring for SetDeps<O, A, C, L, D> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            observations: w.build()?,
            alerts: w.build()?,
            care: w.build()?,
            audit: w.build()?,
            dead_letters: w.build()?,
            clock: w.build()?,
            settings: w.build()?,
        })
    }
}

/// Keeps a refused set for the operator, with its text as sent (the caller has their answer:
/// failing to keep it only logs).
async fn keep_refused_set<D: DeadLetterStore>(dead_letters: &D, patient: &str, code: &str, reason: String, body: &str, at: chrono::DateTime<chrono::Utc>) {
    let letter = DeadLetter::refused("observation-sets", None, code, format!("patient {patient}: {reason}"), body.to_owned(), format_utc(at));
    crate::dead_letters::keep_for_operator(dead_letters, &letter, "observation set").await;
}

/// `POST /patients/{patientId}/observation-sets`: a NEWS2 set recorded by a clinician of the
/// patient's team, or by the patient (vital signs and oxygen only); see [`super::sets`]. Files
/// each value and the set's NEWS2 score as FHIR Observations, records the set for the overdue
/// check, and raises a NEWS2 alert when the set calls for one (a nurse's concern always does).
/// 201 when filed, 200 for a retry of a set filed already, 409 for a different set under the
/// same key (performer and time), 400 naming every problem, 403 for a patient recording a
/// clinician's field. Refused sets are kept as dead letters of source `observation-sets`.
pub async fn submit_set<O, A, C, L, D>(request: Request, deps: &SetDeps<O, A, C, L, D>) -> Result<lambda_http::Response<lambda_http::Body>, ApiError>
where
    O: ObservationStore,
    A: AlertStore,
    C: CareStore,
    L: AuditLog,
    D: DeadLetterStore,
{
    use super::sets::{self, Performer, SetRefusal};
    let who = require(&request, &[Role::Clinician, Role::Patient])?;
    let patient = path_param(&request, "patientId")?;
    if !may_read(&deps.care, &who, &patient).await? {
        record_read(&deps.audit, &request, &who, &[patient.as_str()], 404).await?;
        return Err(ApiError::NotFound(format!("no patient {patient} in your care")));
    }
    let performer = match who.role {
        Role::Patient => Performer::Patient(patient.clone()),
        _ => Performer::Clinician(who.subject.clone()),
    };
    let now = deps.clock.now();
    let body = std::str::from_utf8(crate::platform::http::body_bytes(&request)).map_err(|_| ApiError::bad("body", "is not UTF-8 JSON"))?;
    let set = match sets::parse(body, &performer, now) {
        Ok(set) => set,
        Err(refusal) => {
            let (code, error) = match &refusal {
                SetRefusal::Invalid(problems) => ("INVALID_SET", ApiError::bad(problems.first().map_or("body", |p| p.field.as_str()), refusal.to_string())),
                SetRefusal::ClinicianOnly(_) => ("CLINICIAN_ONLY", ApiError::Forbidden(refusal.to_string())),
            };
            keep_refused_set(&deps.dead_letters, &patient, code, refusal.to_string(), body, now).await;
            return Err(error);
        }
    };
    let settings = deps.care.settings(&patient).await?.unwrap_or_default();
    let earlier = sets::earlier_readings(&deps.observations, &deps.alerts, &patient, &set, deps.settings.window_minutes).await?;
    let filed = sets::build(&patient, &performer, &set, &earlier, &settings, now).map_err(|e| ApiError::Store(crate::StoreError::new("build the set", e)))?;
    let status = match deps.observations.insert_set(&filed.observations).await? {
        Inserted::New => 201,
        Inserted::Duplicate => 200,
        Inserted::Conflict => {
            let reason = "a different set was recorded for this patient by the same person at this time; record another set with its own time".to_owned();
            keep_refused_set(&deps.dead_letters, &patient, "SET_CONFLICT", reason.clone(), body, now).await;
            record_read(&deps.audit, &request, &who, &[patient.as_str()], 409).await?;
            return Err(ApiError::Conflict(reason));
        }
    };
    let at = format_utc(set.at);
    // The set's values become the patient's current ones, as a device's readings do.
    let as_reading = super::ReadingSet { patient_id: &patient, device_id: "", set_id: &filed.set_id, at: set.at, observations: &filed.observations };
    deps.alerts.record_current(&patient, &super::current_values(&as_reading)).await?;
    deps.alerts.record_set(&patient, &at, filed.severity, filed.score.overall_score, &format_utc(sets::first_overdue_check(&set))).await?;
    let raised = match &filed.alert {
        Some(alert) => deps.alerts.raise(alert).await?,
        None => false,
    };
    record_read(&deps.audit, &request, &who, &[patient.as_str()], status).await?;
    // No values or patient details in the log line.
    tracing::info!(set_id = %filed.set_id, severity = filed.severity.as_str(), alert_raised = raised, status, "observation set filed");
    // The Observations go out exactly as filed: their stored JSON is embedded, not re-parsed.
    let observations = filed
        .observations
        .iter()
        .map(|o| serde_json::from_str::<&RawValue>(&o.resource))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Store(crate::StoreError::new("write the answer", e)))?;
    let earlier: Vec<serde_json::Value> = filed
        .earlier
        .iter()
        .map(|r| json!({"parameter": r.parameter.as_str(), "observationId": r.observation_id, "deviceId": r.device_id, "value": r.text, "unit": r.unit, "effectiveAt": r.effective_at}))
        .collect();
    let answer = SetAnswer {
        set_id: &filed.set_id,
        patient_id: &patient,
        time: &at,
        performer: performer.reference().reference,
        news2: &filed.score,
        observations,
        earlier_readings: earlier,
        alert: filed.alert.as_ref().map(Alert::to_json),
        alert_raised: raised,
    };
    let text = serde_json::to_string(&answer).map_err(|e| ApiError::Store(crate::StoreError::new("write the answer", e)))?;
    Ok(crate::platform::http::json_text_response(status, text, &[]))
}

/// The answer to a filed observation set.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SetAnswer<'a> {
    set_id: &'a str,
    patient_id: &'a str,
    time: &'a str,
    performer: String,
    news2: &'a super::scoring::EngineScore,
    observations: Vec<&'a RawValue>,
    earlier_readings: Vec<serde_json::Value>,
    alert: Option<serde_json::Value>,
    alert_raised: bool,
}

#[cfg(test)]
mod scoring_tests {
    use serde_json::Value;

    use super::*;
    use crate::platform::testing::{answered, clinician, device_key, ApiRequest};

    /// Every conformance vector through the route: each of the engine's output fields but
    /// `ranking` and `obx_*`, exactly.
    #[tokio::test]
    async fn every_conformance_vector_passes_through_the_route() {
        let dir = crate::platform::reference_dir("conformance/news2");
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
        files.sort();
        let mut checked = 0;
        for file in files {
            let vectors: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            for v in vectors {
                let request = ApiRequest::new("POST /scores/news2").caller(clinician()).json(v["data"].clone()).build();
                let got = answered(score_news2(request, &()).await);
                assert_eq!(got.status, 200, "{} {}: {}", file.display(), v["id"], got.body);
                for (field, expected) in v["expected"].as_object().unwrap() {
                    if field == "ranking" || field.starts_with("obx_") {
                        continue;
                    }
                    assert_eq!(&got.body[field], expected, "{} {}: {field}", file.display(), v["id"]);
                }
                checked += 1;
            }
        }
        assert!(checked >= 70, "only {checked} vectors");
    }

    #[tokio::test]
    async fn a_missing_time_is_refused_with_the_engines_message_and_devices_may_not_score() {
        let request = ApiRequest::new("POST /scores/news2").caller(clinician()).json(serde_json::json!({"heart_rate": 80})).build();
        let refused = answered(score_news2(request, &()).await);
        assert_eq!(refused.status, 400);
        assert_eq!(refused.body["error"]["field"], "time");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains("Missing or invalid timestamp"));
        let request = ApiRequest::new("POST /scores/news2").caller(device_key("t-1", "k-1", &[], 60)).json(serde_json::json!({})).build();
        assert_eq!(answered(score_news2(request, &()).await).status, 403);
    }
}

#[cfg(test)]
mod set_tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::access::memory::MemoryAudit;
    use crate::care::memory::MemoryCare;
    use crate::clinical::memory::MemoryAlerts;
    use crate::dead_letters::memory::MemoryDeadLetters;
    use crate::observations::memory::MemoryObservations;
    use crate::platform::testing::{self, answered, Answered};

    type Deps = SetDeps<MemoryObservations, MemoryAlerts, MemoryCare, MemoryAudit, MemoryDeadLetters>;

    fn deps() -> Deps {
        SetDeps {
            observations: MemoryObservations::default(),
            alerts: MemoryAlerts::default(),
            care: MemoryCare::looking_after("clinician-sub", &["pat-1"]),
            audit: MemoryAudit::default(),
            dead_letters: MemoryDeadLetters::default(),
            clock: Clock::default(),
            settings: crate::clinical::AlertSettings::default(),
        }
    }

    async fn submit(deps: &Deps, patient: &str, caller: Value, body: Value) -> Answered {
        let request = testing::ApiRequest::new("POST /patients/{patientId}/observation-sets").path("patientId", patient).caller(caller).json(body).build();
        answered(submit_set(request, deps).await)
    }

    fn minutes_ago(minutes: i64) -> String {
        format_utc(chrono::Utc::now() - chrono::Duration::minutes(minutes))
    }

    #[tokio::test]
    async fn a_nurses_concern_is_filed_scored_and_raises_a_high_alert_once() {
        let deps = deps();
        let body = json!({"time": minutes_ago(5), "heart_rate": 72, "consciousness_acvpu": "A", "nurse_concern": "Looks unwell"});
        let filed = submit(&deps, "pat-1", testing::clinician(), body.clone()).await;
        assert_eq!(filed.status, 201, "{}", filed.body);
        assert_eq!((filed.body["news2"]["overall_score_display"].as_str(), filed.body["news2"]["overall_severity"].as_str()), (Some("0C"), Some("high")));
        assert_eq!(filed.body["performer"], "Practitioner/clinician-sub");
        let observations = filed.body["observations"].as_array().unwrap();
        assert_eq!(observations.len(), 4, "three values and the score");
        assert_eq!(observations[3]["id"], filed.body["setId"], "the score last, naming the set");
        assert_eq!((filed.body["alert"]["severity"].as_str(), filed.body["alertRaised"].as_bool()), (Some("high"), Some(true)));
        assert_eq!(deps.alerts.len(), 1);
        assert!(crate::clinical::alerting::FlowStore::last_set(&deps.alerts, "pat-1").await.unwrap().is_some(), "kept for the overdue check");
        let again = submit(&deps, "pat-1", testing::clinician(), body).await;
        assert_eq!((again.status, again.body["setId"].clone(), again.body["alertRaised"].as_bool()), (200, filed.body["setId"].clone(), Some(false)), "a retry");
        assert_eq!((deps.alerts.len(), deps.observations.len()), (1, 4));
        assert!(deps.audit.all().iter().all(|r| r.patient_id == "pat-1" && r.subject == "clinician-sub"));
        assert_eq!(deps.audit.all().iter().map(|r| r.status).collect::<Vec<_>>(), [201, 200]);
    }

    #[tokio::test]
    async fn refused_sets_say_why_and_are_kept_for_the_operator() {
        let deps = deps();
        let bad = submit(&deps, "pat-1", testing::clinician(), json!({"time": minutes_ago(5), "heart_rate": 900})).await;
        assert_eq!((bad.status, bad.error_field()), (400, Some("heart_rate")), "{}", bad.body);
        let by_patient = submit(&deps, "pat-1", testing::patient("pat-1"), json!({"time": minutes_ago(5), "heart_rate": 70, "nurse_concern": "me"})).await;
        assert_eq!(by_patient.status, 403, "{}", by_patient.body);
        assert!(by_patient.body["error"]["message"].as_str().unwrap().contains("nurse_concern"));
        let time = minutes_ago(5);
        assert_eq!(submit(&deps, "pat-1", testing::clinician(), json!({"time": time, "consciousness_acvpu": "A"})).await.status, 201);
        let conflict = submit(&deps, "pat-1", testing::clinician(), json!({"time": time, "consciousness_acvpu": "V"})).await;
        assert_eq!(conflict.status, 409, "{}", conflict.body);
        let kept: Vec<(String, String)> = deps.dead_letters.all().into_iter().map(|l| (l.source, l.reason_code)).collect();
        let mut codes: Vec<&str> = kept.iter().map(|(_, c)| c.as_str()).collect();
        codes.sort();
        assert_eq!(codes, ["CLINICIAN_ONLY", "INVALID_SET", "SET_CONFLICT"]);
        assert!(kept.iter().all(|(source, _)| source == "observation-sets"));
        assert!(deps.dead_letters.all().iter().any(|l| l.raw_payload.contains("900")), "with the body as sent");
    }

    #[tokio::test]
    async fn only_the_patients_team_and_the_patient_record_sets() {
        let deps = deps();
        let body = json!({"time": minutes_ago(5), "heart_rate": 70});
        let outsider = submit(&deps, "pat-2", testing::clinician(), body.clone()).await;
        assert_eq!(outsider.status, 404);
        assert_eq!(deps.audit.all().last().map(|r| (r.patient_id.clone(), r.status)), Some(("pat-2".into(), 404)));
        assert_eq!(submit(&deps, "pat-1", testing::admin(), body.clone()).await.status, 403, "an operator is not a clinician");
        assert_eq!(submit(&deps, "pat-1", testing::patient("pat-2"), body.clone()).await.status, 404);
        let own = submit(&deps, "pat-1", testing::patient("pat-1"), body).await;
        assert_eq!((own.status, own.body["performer"].as_str()), (201, Some("Patient/pat-1")));
        assert!(deps.dead_letters.is_empty(), "who may record is not a refusal of the set");
    }
}
