//! What a published message does: a Basic Ingest rule, a fleet-provisioning or IoT Jobs
//! request (answered to the requester only), or an ordinary topic delivered to subscribers and
//! to the rules that select it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::{fleet, jobs, Gateway, Identity};

/// A message a client published (or its will): what [`Gateway::route`] decides about.
pub(super) struct Published {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5's Message Expiry Interval, seconds.
    pub expiry: Option<u32>,
}

impl Gateway {
    pub(super) async fn route(self: Arc<Self>, session_id: u64, identity: &Identity, published: Published) {
        let Published { topic, payload, qos, retain, expiry } = published;
        let topic = topic.as_str();
        if let Some(rest) = topic.strip_prefix("$aws/rules/") {
            let rule = rest.split('/').next().unwrap_or_default();
            self.run_rule(rule, identity, payload);
            return;
        }
        // The request takes effect at once; its reply comes after AWS's round trip.
        let reply = |operation: &str, result: fleet::Reply| {
            let (suffix, body) = match result {
                Ok(v) => ("accepted", v),
                Err(v) => ("rejected", v),
            };
            match body.get("errorCode").and_then(Value::as_str) {
                Some(code) => tracing::info!(client_id = %identity.client_id, operation, error_code = code, reason = body["errorMessage"].as_str().unwrap_or_default(), "fleet provisioning: rejected"),
                None => tracing::info!(client_id = %identity.client_id, operation, thing_name = body["thingName"].as_str(), certificate_id = body["certificateId"].as_str(), "fleet provisioning: accepted"),
            }
            let (gw, reply_topic) = (self.clone(), format!("{topic}/{suffix}"));
            self.after_latency(async move { gw.deliver(&reply_topic, Bytes::from(body.to_string()), 1, Some(session_id)) });
        };
        let json = || serde_json::from_slice::<Value>(&payload).ok().filter(Value::is_object);
        match topic.split('/').collect::<Vec<_>>().as_slice() {
            ["$aws", "certificates", "create", "json"] => reply("CreateKeysAndCertificate", fleet::create_keys_and_certificate(&self)),
            ["$aws", "certificates", "create-from-csr", "json"] => reply("CreateCertificateFromCsr", match json() {
                Some(p) => fleet::create_certificate_from_csr(&self, &p),
                None => Err(serde_json::json!({"statusCode": 400, "errorCode": "InvalidPayload", "errorMessage": "payload is not a JSON object"})),
            }),
            ["$aws", "provisioning-templates", name, "provision", "json"] => {
                let result = match json() {
                    Some(p) => fleet::register_thing(&self, identity, name, &p).await,
                    None => Err(serde_json::json!({"statusCode": 400, "errorCode": "InvalidPayload", "errorMessage": "payload is not a JSON object"})),
                };
                reply("RegisterThing", result);
            }
            ["$aws", "things", thing, "jobs", rest @ ..] => {
                // The policy already limits a device to its own jobs topics; a certificate
                // without a thing has no jobs either way.
                if *thing != identity.client_id || !identity.context.thing_attached {
                    tracing::info!(client_id = %identity.client_id, "jobs request for another thing dropped");
                    return;
                }
                self.jobs_request(session_id, topic, thing, rest, &payload).await;
            }
            ["$aws", "things", thing, "shadow", rest @ ..] => match super::shadows::request_of(rest) {
                Some((name, operation)) => self.shadow_request(identity, topic, thing, name, operation, &payload),
                None => tracing::info!(client_id = %identity.client_id, topic, "message dropped: not a shadow request topic"),
            },
            // Other reserved topics are not served: dropped.
            ["$aws", ..] => tracing::info!(client_id = %identity.client_id, topic, "message dropped: this reserved topic is not served locally"),
            _ => {
                let message = super::Message::new(payload.clone(), expiry);
                if retain {
                    self.retain(topic, &message, qos);
                }
                self.deliver_message(topic, &message, qos, None);
                self.run_topic_rules(topic, Some(&identity.client_id), &payload);
            }
        }
    }

    /// Keeps a retained message for the topic's future subscribers; an empty payload removes it.
    fn retain(&self, topic: &str, message: &super::Message, qos: u8) {
        let mut retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        if message.payload.is_empty() {
            retained.remove(topic);
        } else {
            retained.insert(topic.to_owned(), (message.clone(), qos));
        }
    }

    /// A device's request to the IoT Jobs MQTT API: it takes effect at once; the reply goes to
    /// the requester only, then the notifications it caused, after AWS's round trip.
    async fn jobs_request(self: &Arc<Self>, session_id: u64, topic: &str, thing: &str, rest: &[&str], payload: &[u8]) {
        let operation = match rest {
            ["get"] => "GetPendingJobExecutions",
            ["start-next"] => "StartNextPendingJobExecution",
            [_, "get"] => "DescribeJobExecution",
            [_, "update"] => "UpdateJobExecution",
            _ => "unknown",
        };
        let Some((token, reply, effects)) = self.jobs.device_request(thing, rest, payload) else {
            tracing::info!(thing_name = thing, topic, "jobs: message dropped (not a jobs API request topic)");
            return;
        };
        match &reply {
            Ok(_) => tracing::info!(thing_name = thing, operation, "jobs: accepted"),
            Err(e) => tracing::info!(thing_name = thing, operation, error_code = e.code, reason = %e.message, "jobs: rejected"),
        }
        let now = chrono::Utc::now().timestamp();
        let job_id = match rest {
            [id, _] if *id != "$next" => Some((*id).to_owned()),
            _ => None,
        };
        let (gw, topic) = (self.clone(), topic.to_owned());
        self.after_latency(async move {
            let (suffix, body) = match reply {
                Ok(mut body) => {
                    gw.resolve_documents(&mut body, job_id.as_deref()).await;
                    ("accepted", body)
                }
                Err(e) => ("rejected", jobs::rejection(&e, &token, now)),
            };
            gw.deliver(&format!("{topic}/{suffix}"), Bytes::from(body.to_string()), 1, Some(session_id));
            gw.apply_job_effects(effects).await;
        });
    }

    /// A shadow request over MQTT (the policy let it through): it takes effect at once; the
    /// reply goes to every subscriber of `<topic>/accepted` or `/rejected` (AWS publishes shadow
    /// replies on the topic, not to the requester alone), then the delta and documents, after
    /// AWS's round trip.
    fn shadow_request(self: &Arc<Self>, identity: &Identity, topic: &str, thing: &str, name: Option<&str>, operation: &str, payload: &[u8]) {
        let now = chrono::Utc::now().timestamp();
        let request = super::request_object(payload);
        let token = request.as_ref().and_then(|r| r.get("clientToken")).cloned();
        let result = match (operation, request) {
            (_, None) => Err(super::shadows::ShadowError { code: 400, message: "Payload contains invalid json".into() }),
            ("get", Some(_)) => self.shadows.get(thing, name, now).map(|doc| (doc, Vec::new())),
            ("delete", Some(_)) => self.shadows.delete(thing, name, now).map(|doc| (doc, Vec::new())),
            (_, Some(request)) => self.shadows.update(thing, name, &request, now),
        };
        let (suffix, mut body, effects) = match result {
            Ok((body, effects)) => ("accepted", body, effects),
            Err(e) => ("rejected", e.body(now), Vec::new()),
        };
        if let Some(t) = token.filter(|t| !t.is_null()) {
            body["clientToken"] = t;
        }
        match body.get("code") {
            Some(code) => tracing::info!(client_id = %identity.client_id, thing_name = thing, shadow = name.unwrap_or("classic"), operation, code = %code, "shadow: rejected"),
            None => tracing::info!(client_id = %identity.client_id, thing_name = thing, shadow = name.unwrap_or("classic"), operation, version = %body["version"], "shadow: accepted"),
        }
        let (gw, reply_topic) = (self.clone(), format!("{topic}/{suffix}"));
        self.after_latency(async move {
            gw.deliver(&reply_topic, Bytes::from(body.to_string()), 1, None);
            gw.publish_shadow_effects(effects);
        });
    }

    /// Publishes a shadow update's delta and documents, to subscribers and to topic rules.
    pub fn publish_shadow_effects(self: &Arc<Self>, effects: Vec<super::shadows::Effect>) {
        for effect in effects {
            let payload = Bytes::from(effect.payload.to_string());
            self.deliver(&effect.topic, payload.clone(), 1, None);
            self.run_topic_rules(&effect.topic, None, &payload);
        }
    }

    /// Publishes what a jobs operation caused: device notifications, and job-execution events
    /// to subscribers and to the topic rules that select them.
    pub async fn apply_job_effects(self: &Arc<Self>, effects: Vec<jobs::Effect>) {
        for effect in effects {
            match effect {
                jobs::Effect::Notify { topic, mut payload } => {
                    self.resolve_documents(&mut payload, None).await;
                    self.deliver(&topic, Bytes::from(payload.to_string()), 1, None);
                }
                jobs::Effect::Event { topic, payload } => {
                    let payload = Bytes::from(payload.to_string());
                    self.deliver(&topic, payload.clone(), 1, None);
                    self.run_topic_rules(&topic, None, &payload);
                }
            }
        }
    }

    /// Replaces IoT presigned-URL placeholders in job documents with presigned S3 GET URLs, as
    /// IoT Jobs does each time a device reads a document.
    async fn resolve_documents(&self, body: &mut Value, job_id: Option<&str>) {
        if let Some(execution) = body.get_mut("execution") {
            let id = execution.get("jobId").and_then(Value::as_str).map(str::to_owned);
            if let (Some(id), Some(doc)) = (id, execution.get_mut("jobDocument")) {
                self.presign_placeholders(doc, &id).await;
            }
        }
        if let (Some(id), Some(doc)) = (job_id, body.get_mut("jobDocument")) {
            self.presign_placeholders(doc, id).await;
        }
    }

    async fn presign_placeholders(&self, doc: &mut Value, job_id: &str) {
        let Some(map) = doc.as_object_mut() else { return };
        let lifetime = Duration::from_secs(self.jobs.presigned_url_seconds(job_id));
        for value in map.values_mut() {
            let Some((bucket, key)) = value.as_str().and_then(presigned_placeholder) else { continue };
            let Ok(config) = aws_sdk_s3::presigning::PresigningConfig::expires_in(lifetime) else { continue };
            match self.s3.get_object().bucket(bucket).key(key).presigned(config).await {
                Ok(request) => *value = Value::String(request.uri().to_owned()),
                Err(e) => tracing::warn!(error = %e, "cannot presign a job document URL"),
            }
        }
    }
}

/// The bucket and key of `${aws:iot:s3-presigned-url:<https S3 URL>}` (path-style or
/// virtual-hosted-style URL).
fn presigned_placeholder(text: &str) -> Option<(String, String)> {
    let url = text.strip_prefix("${aws:iot:s3-presigned-url:")?.strip_suffix('}')?;
    let rest = url.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let (bucket, key) = if host.starts_with("s3.") || host.starts_with("s3-") {
        path.split_once('/')?
    } else {
        (host.split(".s3").next()?, path)
    };
    (!bucket.is_empty() && !key.is_empty()).then(|| (bucket.to_owned(), key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_url_placeholders_name_a_bucket_and_key() {
        let path_style = "${aws:iot:s3-presigned-url:https://s3.eu-west-1.amazonaws.com/files/firmware/a/1.0/x.bin}";
        assert_eq!(presigned_placeholder(path_style), Some(("files".into(), "firmware/a/1.0/x.bin".into())));
        let hosted = "${aws:iot:s3-presigned-url:https://files.s3.eu-west-1.amazonaws.com/firmware/x.bin}";
        assert_eq!(presigned_placeholder(hosted), Some(("files".into(), "firmware/x.bin".into())));
        assert_eq!(presigned_placeholder("https://s3.amazonaws.com/files/x"), None);
    }
}
