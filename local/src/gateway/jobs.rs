//! IoT Jobs on the local gateway: the device MQTT API of `../shared/protocol/device-mqtt.md`
//! (`$aws/things/<thing>/jobs/...`: get, start-next, describe, update, notify, notify-next), the
//! control-plane operations the platform calls (CreateJob, CancelJob, ListJobExecutionsForJob),
//! in-progress and step timeouts, abort criteria, and the job-execution events IoT publishes on
//! `$aws/events/jobExecution/<jobId>/<operation>`.
//!
//! The engine is synchronous state behind one lock; it answers with reply bodies and a list of
//! [`Effect`]s (notifications, events) that the gateway delivers. Times are epoch seconds, as on
//! the MQTT API.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{json, Map, Value};
pub use vitalwire::firmware::deployments::ExecutionStatus;

/// Something the gateway must publish after a jobs operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A notification to a device (`notify`, `notify-next`).
    Notify { topic: String, payload: Value },
    /// A job-execution event, for subscribers and topic rules.
    Event { topic: String, payload: Value },
}

/// Whether a job still hands out work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    InProgress,
    Canceled,
    Completed,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Canceled => "CANCELED",
            Self::Completed => "COMPLETED",
        }
    }
}

/// What `CreateJob` asks for (the parts the local engine honours).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub job_id: String,
    pub thing_names: Vec<String>,
    pub document: Value,
    pub description: String,
    /// Lifetime of presigned URLs in the document (`presignedUrlConfig.expiresInSec`).
    pub presigned_url_seconds: u64,
    /// `timeoutConfig.inProgressTimeoutInMinutes`.
    pub in_progress_timeout_minutes: Option<i64>,
    /// `abortConfig`: (threshold percent, minimum executed things), failure type ALL.
    pub abort: Option<(f64, u64)>,
}

struct Job {
    spec: JobSpec,
    status: JobStatus,
    created_at: i64,
    /// Creation order, to break ties between jobs queued in the same second.
    seq: u64,
}

#[derive(Debug, Clone)]
struct Execution {
    job_id: String,
    thing: String,
    status: ExecutionStatus,
    queued_at: i64,
    started_at: Option<i64>,
    last_updated_at: i64,
    version: i64,
    execution_number: i64,
    details: Map<String, Value>,
    step_deadline: Option<i64>,
}

/// A refused device request: `{code, message, clientToken, timestamp, executionState?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub code: &'static str,
    pub message: String,
    pub execution_state: Option<Value>,
}

fn err(code: &'static str, message: impl Into<String>) -> JobError {
    JobError { code, message: message.into(), execution_state: None }
}

/// A control-plane failure: HTTP status, AWS error type, message.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

/// A job template (`CreateJobTemplate`): what jobs made from it take.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTemplate {
    pub description: String,
    pub document: Value,
    pub presigned_url_seconds: u64,
    pub in_progress_timeout_minutes: Option<i64>,
    pub abort: Option<(f64, u64)>,
    pub created_at: i64,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<String, Job>,
    templates: BTreeMap<String, JobTemplate>,
    executions: BTreeMap<(String, String), Execution>,
    /// The job each thing was last told is next (`notify-next` is sent when it changes).
    announced_next: HashMap<String, Option<String>>,
    next_seq: u64,
    next_event: u64,
}

/// The local IoT Jobs service.
pub struct JobsEngine {
    state: Mutex<State>,
    clock: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl Default for JobsEngine {
    fn default() -> Self {
        Self::with_clock(Box::new(|| chrono::Utc::now().timestamp()))
    }
}

/// The device's reply: the body for `<topic>/accepted`, or the error for `<topic>/rejected`.
pub type DeviceReply = Result<Value, JobError>;

fn missing_job(job_id: &str) -> ControlError {
    ControlError { status: 404, kind: "ResourceNotFoundException", message: format!("job {job_id} does not exist") }
}

fn missing_execution(thing: &str, job_id: &str) -> ControlError {
    ControlError { status: 404, kind: "ResourceNotFoundException", message: format!("thing {thing} has no execution of job {job_id}") }
}

fn template_arn(id: &str) -> String {
    format!("{}:jobtemplate/{id}", super::policy::ARN_PREFIX)
}

/// `IN_PROGRESS` → `InProgress`, for `jobProcessDetails`' `numberOf…Things`.
fn camel(status: &str) -> String {
    status.split('_').map(|w| {
        let lower = w.to_ascii_lowercase();
        let mut chars = lower.chars();
        chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
    }).collect()
}

fn summary(e: &Execution) -> Value {
    let mut s = json!({
        "jobId": e.job_id,
        "queuedAt": e.queued_at,
        "lastUpdatedAt": e.last_updated_at,
        "versionNumber": e.version,
        "executionNumber": e.execution_number,
    });
    if let Some(t) = e.started_at {
        s["startedAt"] = json!(t);
    }
    s
}

fn execution_state(e: &Execution) -> Value {
    json!({"status": e.status.as_str(), "statusDetails": e.details, "versionNumber": e.version})
}

/// `statusDetails` as IoT keeps it: string values. Devices send numbers and booleans too
/// (`{"percentProgress": 50}`); they are kept as their text. Nested values are refused.
fn status_details(value: &Value) -> Result<Map<String, Value>, JobError> {
    let Value::Object(map) = value else { return Err(err("InvalidRequest", "statusDetails must be an object")) };
    let mut out = Map::new();
    for (k, v) in map {
        if k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-')) {
            return Err(err("InvalidRequest", format!("statusDetails key '{k}' must be 1-128 of [a-zA-Z0-9:_-]")));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(err("InvalidRequest", format!("statusDetails value of '{k}' must be a string or a number"))),
        };
        if text.is_empty() || text.chars().count() > 1024 {
            return Err(err("InvalidRequest", format!("statusDetails value of '{k}' must be 1-1024 characters")));
        }
        out.insert(k.clone(), Value::String(text));
    }
    Ok(out)
}

fn step_timeout(request: &Value) -> Result<Option<i64>, JobError> {
    match request.get("stepTimeoutInMinutes") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(m) if m == -1 || (1..=10080).contains(&m) => Ok(Some(m)),
            _ => Err(err("InvalidRequest", "stepTimeoutInMinutes must be -1 or from 1 to 10080")),
        },
    }
}

fn event_operation(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Succeeded => "succeeded",
        ExecutionStatus::Failed => "failed",
        ExecutionStatus::Rejected => "rejected",
        ExecutionStatus::Canceled => "canceled",
        ExecutionStatus::TimedOut => "timed_out",
        ExecutionStatus::Removed => "removed",
        ExecutionStatus::Queued | ExecutionStatus::InProgress => "updated",
    }
}

impl State {
    fn job_order(&self, e: &Execution) -> (i64, u64) {
        (e.queued_at, self.jobs.get(&e.job_id).map_or(u64::MAX, |j| j.seq))
    }

    /// The thing's executions that are QUEUED or IN_PROGRESS, oldest job first.
    fn pending(&self, thing: &str) -> Vec<&Execution> {
        let mut list: Vec<&Execution> =
            self.executions.values().filter(|e| e.thing == thing && !e.status.is_terminal()).collect();
        list.sort_by_key(|e| self.job_order(e));
        list
    }

    /// `$next`: the oldest IN_PROGRESS execution, else the oldest QUEUED one.
    fn next(&self, thing: &str) -> Option<&Execution> {
        let pending = self.pending(thing);
        pending.iter().find(|e| e.status == ExecutionStatus::InProgress).or_else(|| pending.first()).copied()
    }

    fn full_execution(&self, e: &Execution, include_document: bool) -> Value {
        let mut v = summary(e);
        v["thingName"] = json!(e.thing);
        v["status"] = json!(e.status.as_str());
        if !e.details.is_empty() {
            v["statusDetails"] = json!(e.details);
        }
        if include_document {
            v["jobDocument"] = self.jobs.get(&e.job_id).map(|j| j.spec.document.clone()).unwrap_or(Value::Null);
        }
        v
    }

    /// `notify` with the thing's pending jobs, and `notify-next` when its next job changed.
    fn notifications(&mut self, thing: &str, now: i64, effects: &mut Vec<Effect>) {
        let mut jobs = Map::new();
        for e in self.pending(thing) {
            let entry = jobs.entry(e.status.as_str()).or_insert_with(|| json!([]));
            if let Value::Array(list) = entry {
                list.push(summary(e));
            }
        }
        effects.push(Effect::Notify {
            topic: format!("$aws/things/{thing}/jobs/notify"),
            payload: json!({"jobs": jobs, "timestamp": now}),
        });
        let next = self.next(thing).map(|e| (e.job_id.clone(), self.full_execution(e, true)));
        let next_id = next.as_ref().map(|(id, _)| id.clone());
        if self.announced_next.get(thing) != Some(&next_id) {
            self.announced_next.insert(thing.to_owned(), next_id);
            let mut payload = json!({"timestamp": now});
            if let Some((_, execution)) = next {
                payload["execution"] = execution;
            }
            effects.push(Effect::Notify { topic: format!("$aws/things/{thing}/jobs/notify-next"), payload });
        }
    }

    /// Moves an execution to a new status; for a terminal one, emits the job-execution event,
    /// then applies the job's abort criteria and completion.
    fn transition(&mut self, key: &(String, String), status: ExecutionStatus, now: i64, effects: &mut Vec<Effect>) {
        let Some(e) = self.executions.get_mut(key) else { return };
        if e.status == ExecutionStatus::Queued && status == ExecutionStatus::InProgress {
            e.started_at = Some(now);
        }
        e.status = status;
        e.last_updated_at = now;
        e.version += 1;
        if !status.is_terminal() {
            return;
        }
        e.step_deadline = None;
        let e = e.clone();
        self.next_event += 1;
        let operation = event_operation(status);
        effects.push(Effect::Event {
            topic: format!("$aws/events/jobExecution/{}/{operation}", e.job_id),
            payload: json!({
                "eventType": "JOB_EXECUTION",
                "eventId": format!("local-{:08}", self.next_event),
                "timestamp": now,
                "operation": operation,
                "jobId": e.job_id,
                "thingArn": format!("{}:thing/{}", super::policy::ARN_PREFIX, e.thing),
                "status": status.as_str(),
                "statusDetails": e.details,
            }),
        });
        self.after_terminal(&e.job_id, now, effects);
    }

    fn after_terminal(&mut self, job_id: &str, now: i64, effects: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get(job_id) else { return };
        if job.status != JobStatus::InProgress {
            return;
        }
        let abort = job.spec.abort;
        let (mut total, mut executed, mut failed) = (0u64, 0u64, 0u64);
        for e in self.executions.values().filter(|e| e.job_id == job_id) {
            total += 1;
            executed += u64::from(e.status.is_terminal());
            failed += u64::from(matches!(e.status, ExecutionStatus::Failed | ExecutionStatus::Rejected | ExecutionStatus::TimedOut));
        }
        // abortConfig with failure type ALL: FAILED, REJECTED and TIMED_OUT count as failures.
        if let Some((threshold, min)) = abort {
            if executed >= min.max(1) && (failed as f64) * 100.0 / (executed as f64) >= threshold {
                self.cancel(job_id, false, now, effects);
                return;
            }
        }
        if executed == total {
            if let Some(job) = self.jobs.get_mut(job_id) {
                job.status = JobStatus::Completed;
            }
        }
    }

    fn cancel(&mut self, job_id: &str, force: bool, now: i64, effects: &mut Vec<Effect>) {
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.status = JobStatus::Canceled;
        }
        let keys: Vec<_> = self
            .executions
            .iter()
            .filter(|(_, e)| {
                e.job_id == job_id && (e.status == ExecutionStatus::Queued || (force && e.status == ExecutionStatus::InProgress))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &keys {
            self.transition(key, ExecutionStatus::Canceled, now, effects);
        }
        let mut things: Vec<String> = keys.into_iter().map(|(_, t)| t).collect();
        things.dedup();
        for thing in things {
            self.notifications(&thing, now, effects);
        }
    }
}

impl JobsEngine {
    /// An engine reading time from `clock` (epoch seconds); tests move time forward.
    pub fn with_clock(clock: Box<dyn Fn() -> i64 + Send + Sync>) -> Self {
        Self { state: Mutex::default(), clock }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lifetime of presigned URLs in a job's document.
    pub fn presigned_url_seconds(&self, job_id: &str) -> u64 {
        self.lock().jobs.get(job_id).map_or(3600, |j| j.spec.presigned_url_seconds)
    }

    /// `CreateJob`: one QUEUED execution per thing, and their notifications.
    pub fn create_job(&self, spec: JobSpec) -> Result<(Value, Vec<Effect>), ControlError> {
        let now = (self.clock)();
        let mut effects = Vec::new();
        let mut state = self.lock();
        if state.jobs.contains_key(&spec.job_id) {
            return Err(ControlError { status: 409, kind: "ResourceAlreadyExistsException", message: format!("job {} exists", spec.job_id) });
        }
        if spec.thing_names.is_empty() {
            return Err(ControlError { status: 400, kind: "InvalidRequestException", message: "no targets".into() });
        }
        state.next_seq += 1;
        let seq = state.next_seq;
        let reply = json!({
            "jobArn": format!("{}:job/{}", super::policy::ARN_PREFIX, spec.job_id),
            "jobId": spec.job_id,
            "description": spec.description,
        });
        for thing in &spec.thing_names {
            state.executions.insert(
                (spec.job_id.clone(), thing.clone()),
                Execution {
                    job_id: spec.job_id.clone(),
                    thing: thing.clone(),
                    status: ExecutionStatus::Queued,
                    queued_at: now,
                    started_at: None,
                    last_updated_at: now,
                    version: 1,
                    execution_number: 1,
                    details: Map::new(),
                    step_deadline: None,
                },
            );
        }
        let things = spec.thing_names.clone();
        state.jobs.insert(spec.job_id.clone(), Job { spec, status: JobStatus::InProgress, created_at: now, seq });
        for thing in things {
            state.notifications(&thing, now, &mut effects);
        }
        Ok((reply, effects))
    }

    /// `CancelJob`: queued executions are cancelled; in-progress ones only with `force`.
    pub fn cancel_job(&self, job_id: &str, force: bool) -> Result<(Value, Vec<Effect>), ControlError> {
        let now = (self.clock)();
        let mut effects = Vec::new();
        let mut state = self.lock();
        let Some(job) = state.jobs.get(job_id) else {
            return Err(ControlError { status: 404, kind: "ResourceNotFoundException", message: format!("job {job_id} does not exist") });
        };
        let description = job.spec.description.clone();
        if job.status == JobStatus::Completed {
            return Err(ControlError { status: 409, kind: "InvalidRequestException", message: format!("job {job_id} is completed") });
        }
        state.cancel(job_id, force, now, &mut effects);
        let reply = json!({
            "jobArn": format!("{}:job/{job_id}", super::policy::ARN_PREFIX),
            "jobId": job_id,
            "description": description,
        });
        Ok((reply, effects))
    }

    /// `ListJobExecutionsForJob`.
    pub fn list_executions(&self, job_id: &str) -> Result<Value, ControlError> {
        let state = self.lock();
        if !state.jobs.contains_key(job_id) {
            return Err(ControlError { status: 404, kind: "ResourceNotFoundException", message: format!("job {job_id} does not exist") });
        }
        let summaries: Vec<Value> = state
            .executions
            .values()
            .filter(|e| e.job_id == job_id)
            .map(|e| {
                let mut s = json!({
                    "status": e.status.as_str(),
                    "queuedAt": e.queued_at,
                    "lastUpdatedAt": e.last_updated_at,
                    "executionNumber": e.execution_number,
                });
                if let Some(t) = e.started_at {
                    s["startedAt"] = json!(t);
                }
                json!({"thingArn": format!("{}:thing/{}", super::policy::ARN_PREFIX, e.thing), "jobExecutionSummary": s})
            })
            .collect();
        Ok(json!({"executionSummaries": summaries}))
    }

    /// `DescribeJob`: the job, its targets and counts of its executions by status.
    pub fn describe_job(&self, job_id: &str) -> Result<Value, ControlError> {
        let state = self.lock();
        let job = state.jobs.get(job_id).ok_or_else(|| missing_job(job_id))?;
        let mut counts = Map::new();
        for status in ExecutionStatus::ALL {
            let n = state.executions.values().filter(|e| e.job_id == job_id && e.status == status).count();
            counts.insert(format!("numberOf{}Things", camel(status.as_str())), json!(n));
        }
        let mut body = json!({"job": {
            "jobId": job_id,
            "jobArn": format!("{}:job/{job_id}", super::policy::ARN_PREFIX),
            "status": job.status.as_str(),
            "targetSelection": "SNAPSHOT",
            "targets": job.spec.thing_names.iter().map(|t| format!("{}:thing/{t}", super::policy::ARN_PREFIX)).collect::<Vec<_>>(),
            "description": job.spec.description,
            "createdAt": job.created_at,
            "lastUpdatedAt": job.created_at,
            "jobProcessDetails": counts,
            "presignedUrlConfig": {"expiresInSec": job.spec.presigned_url_seconds},
        }});
        if let Some(minutes) = job.spec.in_progress_timeout_minutes {
            body["job"]["timeoutConfig"] = json!({"inProgressTimeoutInMinutes": minutes});
        }
        Ok(body)
    }

    /// `GetJobDocument`: the document as a JSON text.
    pub fn job_document(&self, job_id: &str) -> Result<Value, ControlError> {
        let state = self.lock();
        let job = state.jobs.get(job_id).ok_or_else(|| missing_job(job_id))?;
        Ok(json!({"document": job.spec.document.to_string()}))
    }

    /// `ListJobs`, oldest first, optionally of one status.
    pub fn list_jobs(&self, status: Option<&str>) -> Value {
        let state = self.lock();
        let mut jobs: Vec<&Job> = state.jobs.values().filter(|j| status.is_none_or(|s| j.status.as_str() == s)).collect();
        jobs.sort_by_key(|j| j.seq);
        json!({"jobs": jobs.iter().map(|j| json!({
            "jobArn": format!("{}:job/{}", super::policy::ARN_PREFIX, j.spec.job_id),
            "jobId": j.spec.job_id,
            "status": j.status.as_str(),
            "targetSelection": "SNAPSHOT",
            "createdAt": j.created_at,
            "lastUpdatedAt": j.created_at,
        })).collect::<Vec<_>>()})
    }

    /// `DeleteJob`: a job in progress only with `force`; its executions go with it.
    pub fn delete_job(&self, job_id: &str, force: bool) -> Result<Vec<Effect>, ControlError> {
        let now = (self.clock)();
        let mut effects = Vec::new();
        let mut state = self.lock();
        let job = state.jobs.get(job_id).ok_or_else(|| missing_job(job_id))?;
        let running = state.executions.values().any(|e| e.job_id == job_id && !e.status.is_terminal());
        if job.status == JobStatus::InProgress && running && !force {
            return Err(ControlError { status: 409, kind: "InvalidStateTransitionException", message: format!("job {job_id} is in progress: cancel it, or delete with force") });
        }
        let things: Vec<String> = state.executions.values().filter(|e| e.job_id == job_id).map(|e| e.thing.clone()).collect();
        state.executions.retain(|_, e| e.job_id != job_id);
        state.jobs.remove(job_id);
        for thing in things {
            state.notifications(&thing, now, &mut effects);
        }
        Ok(effects)
    }

    fn execution_json(e: &Execution) -> Value {
        let mut v = json!({
            "jobId": e.job_id,
            "status": e.status.as_str(),
            "thingArn": format!("{}:thing/{}", super::policy::ARN_PREFIX, e.thing),
            "queuedAt": e.queued_at,
            "lastUpdatedAt": e.last_updated_at,
            "executionNumber": e.execution_number,
            "versionNumber": e.version,
            "statusDetails": {"detailsMap": e.details},
        });
        if let Some(t) = e.started_at {
            v["startedAt"] = json!(t);
        }
        v
    }

    /// `DescribeJobExecution` (control plane).
    pub fn describe_execution(&self, thing: &str, job_id: &str) -> Result<Value, ControlError> {
        let state = self.lock();
        let e = state.executions.get(&(job_id.to_owned(), thing.to_owned())).ok_or_else(|| missing_execution(thing, job_id))?;
        Ok(json!({"execution": Self::execution_json(e)}))
    }

    /// `ListJobExecutionsForThing`, newest job first.
    pub fn list_executions_for_thing(&self, thing: &str, status: Option<&str>) -> Value {
        let state = self.lock();
        let mut list: Vec<&Execution> = state.executions.values().filter(|e| e.thing == thing && status.is_none_or(|s| e.status.as_str() == s)).collect();
        list.sort_by_key(|e| std::cmp::Reverse(state.job_order(e)));
        json!({"executionSummaries": list.iter().map(|e| {
            let mut s = json!({"status": e.status.as_str(), "queuedAt": e.queued_at, "lastUpdatedAt": e.last_updated_at, "executionNumber": e.execution_number});
            if let Some(t) = e.started_at {
                s["startedAt"] = json!(t);
            }
            json!({"jobId": e.job_id, "jobExecutionSummary": s})
        }).collect::<Vec<_>>()})
    }

    /// `CancelJobExecution`: a queued one; an in-progress one only with `force`.
    pub fn cancel_execution(&self, thing: &str, job_id: &str, force: bool) -> Result<Vec<Effect>, ControlError> {
        let now = (self.clock)();
        let mut effects = Vec::new();
        let mut state = self.lock();
        let key = (job_id.to_owned(), thing.to_owned());
        let e = state.executions.get(&key).ok_or_else(|| missing_execution(thing, job_id))?;
        match e.status {
            ExecutionStatus::Queued => {}
            ExecutionStatus::InProgress if force => {}
            status => {
                return Err(ControlError { status: 409, kind: "InvalidStateTransitionException", message: format!("the execution is {} (an in-progress one needs force)", status.as_str()) })
            }
        }
        state.transition(&key, ExecutionStatus::Canceled, now, &mut effects);
        state.notifications(thing, now, &mut effects);
        Ok(effects)
    }

    /// `DeleteJobExecution`: a finished one; one still queued or in progress only with `force`.
    pub fn delete_execution(&self, thing: &str, job_id: &str, execution_number: i64, force: bool) -> Result<Vec<Effect>, ControlError> {
        let now = (self.clock)();
        let mut effects = Vec::new();
        let mut state = self.lock();
        let key = (job_id.to_owned(), thing.to_owned());
        let e = state.executions.get(&key).filter(|e| e.execution_number == execution_number).ok_or_else(|| missing_execution(thing, job_id))?;
        if !e.status.is_terminal() && !force {
            return Err(ControlError { status: 409, kind: "InvalidStateTransitionException", message: format!("the execution is {}: delete it with force", e.status.as_str()) });
        }
        state.executions.remove(&key);
        state.notifications(thing, now, &mut effects);
        Ok(effects)
    }

    /// `CreateJobTemplate`.
    pub fn create_template(&self, id: &str, template: JobTemplate) -> Result<Value, ControlError> {
        let mut state = self.lock();
        if state.templates.contains_key(id) {
            return Err(ControlError { status: 409, kind: "ConflictException", message: format!("job template {id} exists") });
        }
        state.templates.insert(id.to_owned(), template);
        Ok(json!({"jobTemplateArn": template_arn(id), "jobTemplateId": id}))
    }

    /// The template a job names (`jobTemplateArn`), for `CreateJob`.
    pub fn template(&self, id: &str) -> Result<JobTemplate, ControlError> {
        self.lock().templates.get(id).cloned().ok_or_else(|| ControlError { status: 404, kind: "ResourceNotFoundException", message: format!("job template {id} does not exist") })
    }

    /// `DescribeJobTemplate`.
    pub fn describe_template(&self, id: &str) -> Result<Value, ControlError> {
        let t = self.template(id)?;
        let mut body = json!({
            "jobTemplateArn": template_arn(id), "jobTemplateId": id, "description": t.description,
            "document": t.document.to_string(), "createdAt": t.created_at,
            "presignedUrlConfig": {"expiresInSec": t.presigned_url_seconds},
        });
        if let Some(minutes) = t.in_progress_timeout_minutes {
            body["timeoutConfig"] = json!({"inProgressTimeoutInMinutes": minutes});
        }
        Ok(body)
    }

    /// `ListJobTemplates`.
    pub fn list_templates(&self) -> Value {
        let state = self.lock();
        json!({"jobTemplates": state.templates.iter().map(|(id, t)| json!({
            "jobTemplateArn": template_arn(id), "jobTemplateId": id, "description": t.description, "createdAt": t.created_at,
        })).collect::<Vec<_>>()})
    }

    /// `DeleteJobTemplate`.
    pub fn delete_template(&self, id: &str) -> Result<Value, ControlError> {
        match self.lock().templates.remove(id) {
            Some(_) => Ok(json!({})),
            None => Err(ControlError { status: 404, kind: "ResourceNotFoundException", message: format!("job template {id} does not exist") }),
        }
    }

    /// The time of the engine's clock (epoch seconds).
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Times out executions whose step or in-progress timer ran out.
    pub fn expire_timers(&self) -> Vec<Effect> {
        let now = (self.clock)();
        let mut effects = Vec::new();
        let mut state = self.lock();
        let expired: Vec<(String, String)> = state
            .executions
            .iter()
            .filter(|(_, e)| e.status == ExecutionStatus::InProgress)
            .filter(|(_, e)| {
                let in_progress = state
                    .jobs
                    .get(&e.job_id)
                    .and_then(|j| j.spec.in_progress_timeout_minutes)
                    .zip(e.started_at)
                    .is_some_and(|(m, started)| now >= started + m * 60);
                in_progress || e.step_deadline.is_some_and(|d| now >= d)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            state.transition(key, ExecutionStatus::TimedOut, now, &mut effects);
            state.notifications(&key.1, now, &mut effects);
        }
        effects
    }

    /// A device request on `$aws/things/<thing>/jobs/<rest>`; `None` for topics that take no
    /// request (`notify`, `notify-next`).
    pub fn device_request(&self, thing: &str, rest: &[&str], payload: &[u8]) -> Option<(Value, DeviceReply, Vec<Effect>)> {
        let now = (self.clock)();
        let Some(request) = super::request_object(payload) else {
            return Some((Value::Null, Err(err("InvalidJson", "the payload is not a JSON object")), Vec::new()));
        };
        let token = request.get("clientToken").cloned().unwrap_or(Value::Null);
        let mut effects = Vec::new();
        let result = match rest {
            ["notify"] | ["notify-next"] => return None,
            ["get"] => Ok(self.pending_jobs(thing)),
            ["start-next"] => self.start_next(thing, &request, now, &mut effects),
            [job_id, "get"] => self.describe(thing, job_id, &request),
            [job_id, "update"] if *job_id != "$next" => self.update(thing, job_id, &request, now, &mut effects),
            _ => Err(err("InvalidTopic", format!("$aws/things/{thing}/jobs/{} is not a jobs API topic", rest.join("/")))),
        };
        let stamp = |mut body: Value| {
            body["timestamp"] = json!(now);
            if !token.is_null() {
                body["clientToken"] = token.clone();
            }
            body
        };
        Some((token.clone(), result.map(stamp), effects))
    }

    fn pending_jobs(&self, thing: &str) -> Value {
        let state = self.lock();
        let pending = state.pending(thing);
        let of = |status: ExecutionStatus| pending.iter().filter(|e| e.status == status).map(|e| summary(e)).collect::<Vec<_>>();
        json!({"inProgressJobs": of(ExecutionStatus::InProgress), "queuedJobs": of(ExecutionStatus::Queued)})
    }

    fn start_next(&self, thing: &str, request: &Value, now: i64, effects: &mut Vec<Effect>) -> DeviceReply {
        let details = request.get("statusDetails").map(status_details).transpose()?;
        let step = step_timeout(request)?;
        let mut state = self.lock();
        let Some(next) = state.next(thing) else { return Ok(json!({})) };
        let key = (next.job_id.clone(), thing.to_owned());
        if next.status == ExecutionStatus::Queued {
            if let Some(e) = state.executions.get_mut(&key) {
                if let Some(d) = details {
                    e.details = d;
                }
                e.step_deadline = step.filter(|m| *m > 0).map(|m| now + m * 60);
            }
            state.transition(&key, ExecutionStatus::InProgress, now, effects);
            state.notifications(thing, now, effects);
        }
        let execution = state.executions.get(&key).map(|e| state.full_execution(e, true)).unwrap_or(Value::Null);
        Ok(json!({"execution": execution}))
    }

    fn describe(&self, thing: &str, job_id: &str, request: &Value) -> DeviceReply {
        let include_document = request.get("includeJobDocument").and_then(Value::as_bool).unwrap_or(true);
        let state = self.lock();
        let execution = if job_id == "$next" {
            state.next(thing)
        } else {
            state.executions.get(&(job_id.to_owned(), thing.to_owned()))
        };
        let Some(e) = execution else {
            return Err(err("ResourceNotFound", format!("no job execution {job_id} for {thing}")));
        };
        if let Some(n) = request.get("executionNumber").filter(|v| !v.is_null()) {
            if n.as_i64() != Some(e.execution_number) {
                return Err(err("ResourceNotFound", format!("job {job_id} has no execution number {n} for {thing}")));
            }
        }
        let job_over = state.jobs.get(&e.job_id).is_some_and(|j| j.status != JobStatus::InProgress);
        if e.status.is_terminal() && job_over {
            return Err(JobError {
                code: "TerminalStateReached",
                message: format!("job {} is {} and its execution {}", e.job_id, state.jobs[&e.job_id].status.as_str(), e.status.as_str()),
                execution_state: Some(execution_state(e)),
            });
        }
        Ok(json!({"execution": state.full_execution(e, include_document)}))
    }

    fn update(&self, thing: &str, job_id: &str, request: &Value, now: i64, effects: &mut Vec<Effect>) -> DeviceReply {
        let status = match request.get("status").and_then(Value::as_str) {
            None => return Err(err("InvalidRequest", "status is required")),
            Some(s) => match ExecutionStatus::parse(s) {
                Some(
                    st @ (ExecutionStatus::InProgress
                    | ExecutionStatus::Succeeded
                    | ExecutionStatus::Failed
                    | ExecutionStatus::Rejected),
                ) => st,
                _ => return Err(err("InvalidRequest", format!("status {s} is not IN_PROGRESS, SUCCEEDED, FAILED or REJECTED"))),
            },
        };
        let details = request.get("statusDetails").filter(|v| !v.is_null()).map(status_details).transpose()?;
        let step = step_timeout(request)?;
        let flag = |name: &str| request.get(name).and_then(Value::as_bool).unwrap_or(false);
        let mut state = self.lock();
        let key = (job_id.to_owned(), thing.to_owned());
        let Some(e) = state.executions.get(&key) else {
            return Err(err("ResourceNotFound", format!("no job execution {job_id} for {thing}")));
        };
        if let Some(n) = request.get("executionNumber").filter(|v| !v.is_null()) {
            if n.as_i64() != Some(e.execution_number) {
                return Err(err("ResourceNotFound", format!("job {job_id} has no execution number {n} for {thing}")));
            }
        }
        if let Some(v) = request.get("expectedVersion").filter(|v| !v.is_null()) {
            if v.as_i64() != Some(e.version) {
                return Err(JobError {
                    code: "VersionMismatch",
                    message: format!("expected version {v}, the execution is at {}", e.version),
                    execution_state: Some(execution_state(e)),
                });
            }
        }
        if e.status.is_terminal() {
            return Err(JobError {
                code: "InvalidStateTransition",
                message: format!("the execution is {} already", e.status.as_str()),
                execution_state: Some(execution_state(e)),
            });
        }
        if let Some(e) = state.executions.get_mut(&key) {
            if let Some(d) = details {
                e.details = d;
            }
            match step {
                Some(-1) => e.step_deadline = None,
                Some(m) => e.step_deadline = Some(now + m * 60),
                None => {}
            }
        }
        state.transition(&key, status, now, effects);
        state.notifications(thing, now, effects);
        let mut reply = json!({});
        if let Some(e) = state.executions.get(&key) {
            if flag("includeJobExecutionState") {
                reply["executionState"] = execution_state(e);
            }
            if flag("includeJobDocument") {
                reply["jobDocument"] = state.jobs.get(job_id).map(|j| j.spec.document.clone()).unwrap_or(Value::Null);
            }
        }
        Ok(reply)
    }
}

/// The `rejected` body for an error.
pub fn rejection(error: &JobError, client_token: &Value, now: i64) -> Value {
    let mut body = json!({"code": error.code, "message": error.message, "timestamp": now});
    if !client_token.is_null() {
        body["clientToken"] = client_token.clone();
    }
    if let Some(state) = &error.execution_state {
        body["executionState"] = state.clone();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    fn engine() -> (JobsEngine, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(1_800_000_000));
        let clock = now.clone();
        (JobsEngine::with_clock(Box::new(move || clock.load(Ordering::SeqCst))), now)
    }

    fn spec(id: &str, things: &[&str]) -> JobSpec {
        JobSpec {
            job_id: id.into(),
            thing_names: things.iter().map(|t| (*t).to_owned()).collect(),
            document: json!({"operation": "firmware_update", "deploymentId": id}),
            description: String::new(),
            presigned_url_seconds: 3600,
            in_progress_timeout_minutes: None,
            abort: None,
        }
    }

    fn ask(engine: &JobsEngine, thing: &str, topic: &str, payload: Value) -> (DeviceReply, Vec<Effect>) {
        let rest: Vec<&str> = topic.split('/').collect();
        let (_, reply, effects) = engine.device_request(thing, &rest, payload.to_string().as_bytes()).expect("a request topic");
        (reply, effects)
    }

    fn events(effects: &[Effect]) -> Vec<(String, Value)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Event { topic, payload } => Some((topic.clone(), payload.clone())),
                Effect::Notify { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_device_lists_starts_and_finishes_its_job_with_versions_and_tokens() {
        let (engine, _) = engine();
        let (_, effects) = engine.create_job(spec("job-1", &["dev-a", "dev-b"])).unwrap();
        let next: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notify { topic, payload } if topic.ends_with("notify-next") => Some((topic.clone(), payload.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(next.len(), 2, "each target hears of its next job");
        assert_eq!(next[0].1["execution"]["jobDocument"]["deploymentId"], "job-1");

        let (listed, _) = ask(&engine, "dev-a", "get", json!({"clientToken": "t1"}));
        let listed = listed.unwrap();
        assert_eq!(listed["clientToken"], "t1");
        assert_eq!(listed["queuedJobs"][0]["jobId"], "job-1");
        assert_eq!(listed["queuedJobs"][0]["versionNumber"], 1);

        let (started, _) = ask(&engine, "dev-a", "start-next", json!({"statusDetails": {"step": "download"}}));
        let started = started.unwrap();
        assert_eq!(started["execution"]["status"], "IN_PROGRESS");
        assert_eq!(started["execution"]["versionNumber"], 2);
        assert_eq!(started["execution"]["statusDetails"]["step"], "download");

        let (stale, _) = ask(&engine, "dev-a", "job-1/update", json!({"status": "IN_PROGRESS", "expectedVersion": 1, "clientToken": "t2"}));
        let stale = stale.unwrap_err();
        assert_eq!((stale.code, stale.execution_state.as_ref().map(|s| s["versionNumber"].clone())), ("VersionMismatch", Some(json!(2))));

        let (progress, _) = ask(
            &engine,
            "dev-a",
            "job-1/update",
            json!({"status": "IN_PROGRESS", "statusDetails": {"percentProgress": 50}, "expectedVersion": 2, "includeJobExecutionState": true}),
        );
        let progress = progress.unwrap();
        assert_eq!(progress["executionState"]["statusDetails"]["percentProgress"], "50", "numbers are accepted and kept as text");

        let (done, effects) = ask(&engine, "dev-a", "job-1/update", json!({"status": "SUCCEEDED"}));
        done.unwrap();
        let events = events(&effects);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, "$aws/events/jobExecution/job-1/succeeded");
        assert_eq!(events[0].1["thingArn"].as_str().map(|a| a.ends_with(":thing/dev-a")), Some(true));

        let (again, _) = ask(&engine, "dev-a", "job-1/update", json!({"status": "IN_PROGRESS"}));
        assert_eq!(again.unwrap_err().code, "InvalidStateTransition", "terminal states are final");
        let (nothing, _) = ask(&engine, "dev-a", "start-next", json!({"clientToken": "t3"}));
        let nothing = nothing.unwrap();
        assert!(nothing.get("execution").is_none());
        assert_eq!(nothing["clientToken"], "t3");
    }

    #[test]
    fn devices_see_only_their_own_executions_and_bad_requests_are_named() {
        let (engine, _) = engine();
        engine.create_job(spec("job-1", &["dev-a"])).unwrap();
        let (reply, _) = ask(&engine, "dev-b", "job-1/get", json!({}));
        assert_eq!(reply.unwrap_err().code, "ResourceNotFound");
        let (reply, _) = ask(&engine, "dev-b", "job-1/update", json!({"status": "SUCCEEDED"}));
        assert_eq!(reply.unwrap_err().code, "ResourceNotFound");
        let (reply, _) = ask(&engine, "dev-a", "job-1/update", json!({"status": "QUEUED"}));
        assert_eq!(reply.unwrap_err().code, "InvalidRequest");
        let (reply, _) = ask(&engine, "dev-a", "job-1/update", json!({"status": "IN_PROGRESS", "statusDetails": {"x": {"nested": 1}}}));
        assert_eq!(reply.unwrap_err().code, "InvalidRequest");
        let (_, reply, _) = engine.device_request("dev-a", &["get"], b"{not json").unwrap();
        assert_eq!(reply.unwrap_err().code, "InvalidJson");
        let (reply, _) = ask(&engine, "dev-a", "job-1/frobnicate", json!({}));
        assert_eq!(reply.unwrap_err().code, "InvalidTopic");
        assert!(engine.device_request("dev-a", &["notify"], b"{}").is_none());
    }

    #[test]
    fn cancel_stops_queued_executions_but_lets_started_ones_finish() {
        let (engine, _) = engine();
        engine.create_job(spec("job-1", &["dev-a", "dev-b"])).unwrap();
        ask(&engine, "dev-a", "start-next", json!({})).0.unwrap();
        let (_, effects) = engine.cancel_job("job-1", false).unwrap();
        let events = events(&effects);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, "$aws/events/jobExecution/job-1/canceled");
        assert_eq!(events[0].1["thingArn"].as_str().map(|a| a.ends_with("/dev-b")), Some(true));
        let (listed, _) = ask(&engine, "dev-b", "get", json!({}));
        assert_eq!(listed.unwrap()["queuedJobs"], json!([]));
        let (finished, _) = ask(&engine, "dev-a", "job-1/update", json!({"status": "SUCCEEDED"}));
        assert!(finished.is_ok(), "an execution already in progress may finish");
        let listed = engine.list_executions("job-1").unwrap();
        let statuses: Vec<_> = listed["executionSummaries"].as_array().unwrap().iter().map(|s| s["jobExecutionSummary"]["status"].clone()).collect();
        assert_eq!(statuses, vec![json!("SUCCEEDED"), json!("CANCELED")]);
    }

    #[test]
    fn timers_time_out_stalled_executions_and_abort_criteria_cancel_the_rest() {
        let (engine, now) = engine();
        let mut s = spec("job-1", &["dev-a", "dev-b", "dev-c"]);
        s.in_progress_timeout_minutes = Some(10);
        s.abort = Some((50.0, 1));
        engine.create_job(s).unwrap();
        ask(&engine, "dev-a", "start-next", json!({"stepTimeoutInMinutes": 2})).0.unwrap();
        now.fetch_add(119, Ordering::SeqCst);
        assert!(engine.expire_timers().is_empty());
        now.fetch_add(1, Ordering::SeqCst);
        let effects = engine.expire_timers();
        let topics: Vec<_> = events(&effects).into_iter().map(|(t, _)| t).collect();
        // dev-a timed out: 1 of 1 executed failed, over the 50% threshold, so the job is aborted.
        assert_eq!(
            topics,
            vec![
                "$aws/events/jobExecution/job-1/timed_out".to_owned(),
                "$aws/events/jobExecution/job-1/canceled".to_owned(),
                "$aws/events/jobExecution/job-1/canceled".to_owned(),
            ]
        );
        assert_eq!(engine.describe_job("job-1").unwrap()["job"]["status"], "CANCELED");
    }
}
