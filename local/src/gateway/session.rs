//! One connection's life: CONNECT with its certificate's identity, then packets until it
//! closes; delivering messages to the sessions subscribed and allowed to receive them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::pki::certificate_id;
use super::policy::{allows, client_arn, topic_arn, topic_filter_arn, PolicyContext};
use super::registry::CertificateStatus;
use super::topics::{filter_matches, shared, valid_filter};
use super::wire::{self, Incoming, Outgoing, Protocol};
use super::routing::Published;
use super::{Gateway, Identity, Message, OfflineSession, Outbound, Session};

/// Queues a PUBLISH to a session's connection, numbering it when QoS 1, with the seconds left of
/// its expiry; an expired message is dropped. A QoS 1 message waits while the client has its
/// in-flight limit unacknowledged (AWS stops sending until PUBACKs come), and is dropped when
/// that wait is full too.
fn push(s: &mut Session, topic: &str, message: &Message, qos: u8, retain: bool) {
    let Some(expiry) = message.remaining() else { return };
    let pkid = if qos > 0 {
        if s.unacked.len() >= s.in_flight_limit {
            if s.waiting.len() < limits::OFFLINE_QUEUE {
                s.waiting.push_back((topic.to_owned(), message.clone(), retain));
            }
            return;
        }
        s.next_pkid = s.next_pkid.checked_add(1).filter(|p| *p != 0).unwrap_or(1);
        s.unacked.push_back((s.next_pkid, topic.to_owned(), message.clone()));
        s.next_pkid
    } else {
        0
    };
    let _ = s.tx.send(Outbound::Packet(Outgoing::Publish { topic: topic.to_owned(), qos, pkid, payload: message.payload.clone(), retain, expiry }));
}

/// Sends what waited for acknowledgements, as far as the in-flight limit allows.
fn release_waiting(s: &mut Session) {
    while s.unacked.len() < s.in_flight_limit {
        let Some((topic, message, retain)) = s.waiting.pop_front() else { return };
        push(s, &topic, &message, 1, retain);
    }
}

/// The QoS 1 messages a session owes its client, oldest first: those sent and not acknowledged,
/// then those waiting.
fn unacknowledged(s: &Session) -> std::collections::VecDeque<(String, Message)> {
    let sent = s.unacked.iter().map(|(_, topic, message)| (topic.clone(), message.clone()));
    sent.chain(s.waiting.iter().map(|(topic, message, _)| (topic.clone(), message.clone()))).collect()
}

/// Which permission a publish (or a will) lacks: `iot:Publish` on its topic, and for a retained
/// one also `iot:RetainPublish`, as on AWS.
fn publish_denied(identity: &Identity, topic: &str, retain: bool) -> Option<&'static str> {
    let may = |action| allows(&identity.policies, action, &topic_arn(topic), &identity.context);
    if !may("iot:Publish") {
        Some("iot:Publish")
    } else if retain && !may("iot:RetainPublish") {
        Some("iot:RetainPublish")
    } else {
        None
    }
}

/// AWS IoT Core's limits on a connection (`docs/local/aws-iot-core-mqtt.md`).
mod limits {
    /// How long a persistent session outlives its connection: AWS's default account maximum.
    pub const SESSION_EXPIRY: std::time::Duration = std::time::Duration::from_secs(3600);
    /// QoS 1 messages kept for an absent client (AWS's per-session figure is not published).
    pub const OFFLINE_QUEUE: usize = 1000;
    pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;
    pub const MAX_TOPIC_BYTES: usize = 256;
    pub const MAX_TOPIC_SLASHES: usize = 7;
    pub const MAX_FILTERS_PER_SUBSCRIBE: usize = 8;
    pub const MAX_CLIENT_ID_BYTES: usize = 128;
    /// Unacknowledged QoS 1 messages to a client at once (AWS's outbound in-flight quota).
    pub const IN_FLIGHT: usize = 100;
    /// Publishes a connection may make per second; AWS discards the rest.
    pub const PUBLISHES_PER_SECOND: u32 = 100;

    /// The keep-alive AWS applies: `floor` (30 s on AWS) to 1200 s; 0 and anything longer
    /// become 1200.
    pub fn keep_alive(asked: u16, floor: u16) -> u16 {
        match asked {
            0 | 1201.. => 1200,
            short if short < floor => floor,
            fine => fine,
        }
    }

    /// Whether a topic is within 256 bytes and 7 slashes, not counting a Basic Ingest prefix
    /// (`$aws/rules/<rule>/`).
    pub fn topic_within_limits(topic: &str) -> bool {
        let counted = match topic.strip_prefix("$aws/rules/") {
            Some(rest) => rest.split_once('/').map_or("", |(_, after)| after),
            None => topic,
        };
        counted.len() <= MAX_TOPIC_BYTES && counted.matches('/').count() <= MAX_TOPIC_SLASHES
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn keep_alive_and_topic_limits_are_awss() {
            assert_eq!([0, 5, 30, 600, 5000].map(|k| keep_alive(k, 30)), [1200, 30, 30, 600, 1200]);
            assert!(topic_within_limits("a/b/c/d/e/f/g/h"), "7 slashes");
            assert!(!topic_within_limits("a/b/c/d/e/f/g/h/i"), "8 slashes");
            assert!(topic_within_limits("$aws/rules/FHIRIngest/a/b/c/d/e/f/g/h"), "the Basic Ingest prefix does not count");
            assert!(!topic_within_limits(&"x".repeat(257)));
        }
    }
}

/// What a connecting client takes up of its session: its subscriptions and the messages queued
/// for it.
struct Resumed {
    subscriptions: Vec<(String, u8)>,
    queue: std::collections::VecDeque<(String, Message)>,
}

/// How a connection ended, which decides its will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A DISCONNECT from the client: the will is discarded; MQTT 5 may give the session a new
    /// expiry (0 ends it).
    Clean { session_expiry: Option<u32> },
    /// Anything else (dropped, keep-alive, a protocol error, a takeover): the will is published.
    Abrupt,
}

impl Gateway {
    pub(super) async fn connection(self: Arc<Self>, mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>, peer: SocketAddr) {
        let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| certificate_id(c)) else {
            return;
        };
        // Identity is the certificate: unknown, inactive or revoked certificates cannot connect
        // (AWS IoT Core closes the connection without a CONNACK).
        let certificate = match self.registry.certificate(&cert) {
            Some(c) if c.status == CertificateStatus::Active => c,
            Some(c) => {
                tracing::info!(%peer, certificate_id = %cert, status = ?c.status, "connection refused: the certificate is not active");
                return;
            }
            None => {
                tracing::info!(%peer, certificate_id = %cert, "connection refused: unknown certificate (not issued or registered here)");
                return;
            }
        };
        let mut buf = BytesMut::with_capacity(4096);
        let wire::Connect { protocol, client_id, keep_alive: asked_keep_alive, will, clean, session_expiry, receive_maximum } = match read_connect(&mut tls, &mut buf).await {
            Some(Incoming::Connect(connect)) => connect,
            _ => {
                tracing::info!(%peer, certificate_id = %cert, "connection closed: no CONNECT within 10 s, or not an MQTT 3.1.1 or 5 CONNECT");
                return;
            }
        };
        // AWS IoT Core keeps connections alive 30 to 1200 s (0 and longer ask for 1200), and drops
        // a client silent for 1.5 of them (MQTT 3.1.1 §3.1.2.10).
        let keep_alive = limits::keep_alive(asked_keep_alive, self.keep_alive_floor);
        let idle_limit = Some(Duration::from_millis(u64::from(keep_alive) * 1500));
        let identity = Identity {
            certificate_id: certificate.id.clone(),
            context: PolicyContext {
                client_id: client_id.clone(),
                thing_attached: certificate.things.contains(&client_id),
            },
            client_id: client_id.clone(),
            policies: Arc::new(self.registry.policy_documents(&certificate.policies)),
        };
        use wire::ConnectCode::{ClientIdNotValid, NotAuthorized};
        let refusal = if client_id.is_empty() {
            Some((NotAuthorized, "an empty client id (AWS IoT Core needs one)"))
        } else if client_id.len() > limits::MAX_CLIENT_ID_BYTES {
            Some((ClientIdNotValid, "a client id over 128 bytes"))
        } else if !allows(&identity.policies, "iot:Connect", &client_arn(&client_id), &identity.context) {
            Some((NotAuthorized, "the certificate's policies do not allow iot:Connect with this client id (a device connects as its thing name, the claim certificate as provision_*)"))
        } else if will.as_ref().is_some_and(|w| publish_denied(&identity, &w.topic, w.retain).is_some()) {
            // A will the client may not publish refuses the connection, as AWS IoT Core does.
            Some((NotAuthorized, "the certificate's policies do not allow publishing the last will to its topic"))
        } else {
            None
        };
        let authorized = refusal.is_none();
        let mut out = BytesMut::new();
        if let Some((_, reason)) = refusal {
            tracing::info!(%peer, client_id = %client_id, certificate_id = %cert, "connection refused (not authorized): {reason}");
        }
        let code = refusal.map_or(wire::ConnectCode::Accepted, |(code, _)| code);
        // A persistent session: 3.1.1 without Clean Session lasts the account's hour; MQTT 5's
        // Session Expiry Interval is capped at it (AWS's default maximum).
        let persist = match protocol {
            Protocol::V311 => (!clean).then_some(limits::SESSION_EXPIRY),
            Protocol::V5 => (session_expiry > 0).then(|| limits::SESSION_EXPIRY.min(Duration::from_secs(u64::from(session_expiry)))),
        };
        let resumed = if authorized { self.resume_session(&client_id, protocol, clean) } else { None };
        let connack = Outgoing::ConnAck {
            code,
            session_present: resumed.is_some(),
            server_keep_alive: (keep_alive != asked_keep_alive).then_some(keep_alive),
            session_expiry: (session_expiry > 0).then(|| persist.map_or(0, |p| p.as_secs() as u32)),
        };
        if wire::write(protocol, connack, &mut out).is_err()
            || tls.write_all(&out).await.is_err()
            || !authorized
        {
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let session_id = self.next_session.fetch_add(1, Ordering::Relaxed);
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            // AWS IoT allows one connection per client id: the newer one wins.
            for s in sessions.values().filter(|s| s.identity.client_id == client_id) {
                let _ = s.tx.send(Outbound::TakenOver);
            }
            let (subscriptions, queued) = resumed.map(|r| (r.subscriptions, r.queue)).unwrap_or_default();
            let mut session = Session {
                identity: identity.clone(),
                subscriptions,
                tx,
                next_pkid: 0,
                topic_aliases: HashMap::new(),
                unacked: std::collections::VecDeque::new(),
                in_flight_limit: receive_maximum.map_or(limits::IN_FLIGHT, |r| limits::IN_FLIGHT.min(usize::from(r.max(1)))),
                waiting: std::collections::VecDeque::new(),
                publish_rate: (std::time::Instant::now(), 0),
            };
            // What the session caught while its client was away follows the CONNACK.
            for (topic, message) in queued {
                push(&mut session, &topic, &message, 1, false);
            }
            let shared_filters: Vec<(String, u8)> = session.subscriptions.iter().filter(|(f, _)| shared(f).is_some()).cloned().collect();
            sessions.insert(session_id, session);
            drop(sessions);
            // A returning member of a shared group takes what the group caught meanwhile.
            for (filter, granted) in shared_filters {
                self.send_shared_queued(session_id, &filter, granted);
            }
        }
        tracing::info!(%peer, client_id = %client_id, ?protocol, "connected");
        let mut chunk = vec![0u8; 16 * 1024];
        // How the connection ends: a clean DISCONNECT discards the will; anything else (the
        // socket dropped, keep-alive ran out, a protocol error, a takeover) publishes it.
        let mut ending = Ending::Abrupt;
        let mut persist = persist;
        'connection: loop {
            tokio::select! {
                read = read_within(&mut tls, &mut chunk, idle_limit) => {
                    let n = match read { Some(Ok(n)) if n > 0 => n, _ => break };
                    buf.extend_from_slice(&chunk[..n]);
                    loop {
                        match wire::read(protocol, &mut buf) {
                            Ok(None) => break,
                            Ok(Some(packet)) => {
                                if let Some(end) = self.clone().on_packet(session_id, &identity, protocol, packet).await {
                                    ending = end;
                                    break 'connection;
                                }
                            }
                            Err(e) => {
                                tracing::info!(client_id = %client_id, error = %e, "connection closed: malformed packet");
                                break 'connection;
                            }
                        }
                    }
                }
                outbound = rx.recv() => {
                    match outbound {
                        Some(Outbound::Packet(p)) => {
                            out.clear();
                            if wire::write(protocol, p, &mut out).is_err() || tls.write_all(&out).await.is_err() { break; }
                        }
                        Some(Outbound::TakenOver) => {
                            tracing::info!(client_id = %client_id, "connection closed: a newer connection took the client id");
                            out.clear();
                            let taken = Outgoing::Disconnect(wire::DisconnectReason::SessionTakenOver, "another connection uses this client id".into());
                            if wire::write(protocol, taken, &mut out).is_ok() {
                                let _ = tls.write_all(&out).await;
                            }
                            break;
                        }
                        Some(Outbound::Close) | None => break,
                    }
                }
            }
        }
        // What was queued before the end (a PUBACK, MQTT 5's DISCONNECT with its reason) still goes.
        while let Ok(Outbound::Packet(p)) = rx.try_recv() {
            out.clear();
            if wire::write(protocol, p, &mut out).is_err() || tls.write_all(&out).await.is_err() {
                break;
            }
        }
        // MQTT 5's DISCONNECT may change the session's expiry: 0 ends it, another value replaces
        // it; a session that had none cannot be given one (AWS, and the specification).
        if let Ending::Clean { session_expiry: Some(asked) } = ending {
            match persist {
                _ if asked == 0 => persist = None,
                Some(_) => persist = Some(limits::SESSION_EXPIRY.min(Duration::from_secs(u64::from(asked)))),
                None => tracing::info!(client_id = %client_id, "DISCONNECT asked for a session expiry the session did not have: it ends (a protocol error)"),
            }
        }
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let ended = sessions.remove(&session_id);
            // A persistent session outlives its connection, unless a newer one took it over.
            let taken_over = sessions.values().any(|s| s.identity.client_id == client_id);
            if let (Some(ended), Some(expiry), false) = (ended, persist, taken_over) {
                // What the client had not acknowledged goes first, in the order it was sent.
                let offline = OfflineSession {
                    protocol,
                    queue: unacknowledged(&ended),
                    identity: ended.identity,
                    subscriptions: ended.subscriptions,
                    expires_at: std::time::Instant::now() + expiry,
                };
                self.offline.lock().unwrap_or_else(|e| e.into_inner()).insert(client_id.clone(), offline);
            }
        }
        let _ = tls.shutdown().await;
        let clean = matches!(ending, Ending::Clean { .. });
        tracing::info!(%peer, client_id = %client_id, clean, "disconnected");
        if let Some(will) = will.filter(|_| !clean) {
            self.publish_will(&identity, will).await;
        }
    }

    /// Publishes a client's will as if it had published it (its CONNECT was refused unless its
    /// policies allow that).
    async fn publish_will(self: Arc<Self>, identity: &Identity, will: wire::Will) {
        tracing::info!(client_id = %identity.client_id, topic = %will.topic, "will published");
        let will = Published { topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, expiry: will.expiry };
        self.route(0, identity, will).await;
    }

    pub(super) fn send(&self, session_id: u64, packet: Outgoing) {
        if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(&session_id) {
            let _ = s.tx.send(Outbound::Packet(packet));
        }
    }

    /// Delivers a message to every session subscribed to the topic and allowed to receive it,
    /// to one member of each shared subscription group it matches, and, QoS 1, into the queues
    /// of persistent sessions whose clients are away; `only` restricts delivery to one session
    /// (replies go only to the requester).
    pub fn deliver(&self, topic: &str, payload: Bytes, qos: u8, only: Option<u64>) {
        self.deliver_message(topic, &Message::new(payload, None), qos, only);
    }

    /// [`Gateway::deliver`] of a message that may expire.
    pub(super) fn deliver_message(&self, topic: &str, message: &Message, qos: u8, only: Option<u64>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut groups: std::collections::BTreeMap<(String, String), Vec<(u64, u8)>> = std::collections::BTreeMap::new();
        for (id, s) in sessions.iter_mut() {
            if only.is_some_and(|o| o != *id) || !allows(&s.identity.policies, "iot:Receive", &topic_arn(topic), &s.identity.context) {
                continue;
            }
            let mut direct: Option<u8> = None;
            for (filter, granted) in &s.subscriptions {
                match shared(filter) {
                    Some((group, inner)) if only.is_none() && filter_matches(inner, topic) => {
                        groups.entry((group.to_owned(), inner.to_owned())).or_default().push((*id, *granted));
                    }
                    Some(_) => {}
                    None if filter_matches(filter, topic) => direct = direct.max(Some(*granted)),
                    None => {}
                }
            }
            if let Some(granted) = direct {
                push(s, topic, message, qos.min(granted), false);
            }
        }
        // AWS hands each message to one member of a group, at random; here, in turn.
        let served: std::collections::BTreeSet<String> = groups.keys().map(|(group, inner)| format!("$share/{group}/{inner}")).collect();
        for members in groups.into_values() {
            let turn = self.shared_turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as usize;
            let (id, granted) = members[turn % members.len()];
            if let Some(s) = sessions.get_mut(&id) {
                push(s, topic, message, qos.min(granted), false);
            }
        }
        if only.is_some() || qos == 0 {
            return;
        }
        let now = std::time::Instant::now();
        let mut offline = self.offline.lock().unwrap_or_else(|e| e.into_inner());
        let before = offline.len();
        offline.retain(|_, s| s.expires_at > now);
        if offline.len() < before {
            // A group's queue lasts as long as a member (connected or away) subscribes to it.
            let member = |filter: &str| {
                let subscribes = |subs: &[(String, u8)]| subs.iter().any(|(f, _)| f == filter);
                sessions.values().any(|s| subscribes(&s.subscriptions)) || offline.values().any(|s| subscribes(&s.subscriptions))
            };
            self.shared_queues.lock().unwrap_or_else(|e| e.into_inner()).retain(|filter, _| member(filter));
        }
        // Shared groups with no member connected but a persistent one away keep the message
        // for the first member to come (AWS queues for the group, not for one member).
        let mut unserved_groups = std::collections::BTreeSet::new();
        for s in offline.values_mut() {
            if !allows(&s.identity.policies, "iot:Receive", &topic_arn(topic), &s.identity.context) {
                continue;
            }
            let mut caught = false;
            for (filter, _) in s.subscriptions.iter().filter(|(_, granted)| *granted > 0) {
                match shared(filter) {
                    Some((_, inner)) if filter_matches(inner, topic) && !served.contains(filter) => {
                        unserved_groups.insert(filter.clone());
                    }
                    Some(_) => {}
                    None => caught |= filter_matches(filter, topic),
                }
            }
            if caught && s.queue.len() < limits::OFFLINE_QUEUE {
                s.queue.push_back((topic.to_owned(), message.clone()));
            }
        }
        if unserved_groups.is_empty() {
            return;
        }
        let mut queues = self.shared_queues.lock().unwrap_or_else(|e| e.into_inner());
        for filter in unserved_groups {
            let queue = queues.entry(filter).or_default();
            // Once full, new messages are dropped, old ones kept (AWS).
            if queue.len() < limits::OFFLINE_QUEUE {
                queue.push_back((topic.to_owned(), message.clone()));
            }
        }
    }

    /// Sends a member of a shared group (subscribing, or back with its session) what the group
    /// caught while no member was connected.
    fn send_shared_queued(&self, session_id: u64, filter: &str, granted: u8) {
        let Some(queued) = self.shared_queues.lock().unwrap_or_else(|e| e.into_inner()).remove(filter) else { return };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = sessions.get_mut(&session_id) else { return };
        for (topic, message) in queued {
            push(s, &topic, &message, granted, false);
        }
    }

    /// The session a connecting client resumes: a live one it takes over, or one kept while it
    /// was away (of the same MQTT version, not expired); none for a clean start, which also
    /// ends any kept session.
    fn resume_session(&self, client_id: &str, protocol: Protocol, clean: bool) -> Option<Resumed> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut offline = self.offline.lock().unwrap_or_else(|e| e.into_inner());
        let kept = offline.remove(client_id);
        if clean {
            return None;
        }
        if let Some(live) = sessions.values().find(|s| s.identity.client_id == client_id) {
            return Some(Resumed { subscriptions: live.subscriptions.clone(), queue: unacknowledged(live) });
        }
        // AWS does not resume a session across MQTT versions.
        kept.filter(|k| k.protocol == protocol && k.expires_at > std::time::Instant::now())
            .map(|k| Resumed { subscriptions: k.subscriptions, queue: k.queue })
    }

    /// Sends a new subscription the retained message of its topic (RETAIN set), where the
    /// session may receive it. AWS IoT Core sends retained messages only to a filter that names
    /// the topic exactly: a wildcard subscription gets later publishes only.
    fn send_retained(&self, session_id: u64, filter: &str, granted: u8) {
        if filter.contains(['+', '#']) || filter.starts_with("$share/") {
            return;
        }
        let kept = {
            let mut retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
            // An expired retained message is gone.
            if retained.get(filter).is_some_and(|(m, _)| m.remaining().is_none()) {
                retained.remove(filter);
            }
            retained.get(filter).cloned()
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = sessions.get_mut(&session_id) else { return };
        if let Some((message, qos)) = kept {
            if allows(&s.identity.policies, "iot:Receive", &topic_arn(filter), &s.identity.context) {
                push(s, filter, &message, qos.min(granted), true);
            }
        }
    }

    /// Counts a publish against the connection's rate: whether it is within AWS's 100 per second.
    fn within_publish_rate(&self, session_id: u64) -> bool {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = sessions.get_mut(&session_id) else { return true };
        let (second, count) = &mut s.publish_rate;
        if second.elapsed() >= Duration::from_secs(1) {
            *second = std::time::Instant::now();
            *count = 0;
        }
        *count += 1;
        *count <= limits::PUBLISHES_PER_SECOND
    }

    /// Closes a connection for breaking one of AWS's limits: MQTT 5 is told why (DISCONNECT with
    /// the reason), MQTT 3.1.1 is just closed, as AWS IoT Core does.
    fn refuse(&self, session_id: u64, identity: &Identity, reason: wire::DisconnectReason, what: &str) -> Ending {
        tracing::info!(client_id = %identity.client_id, ?reason, "connection closed: {what}");
        self.send(session_id, Outgoing::Disconnect(reason, what.to_owned()));
        Ending::Abrupt
    }

    /// The topic of a publish that may use an MQTT 5 topic alias (1 to 8): a topic with an alias
    /// sets it, an empty topic uses it; `None` when the alias is not valid.
    fn resolve_alias(&self, session_id: u64, topic: String, alias: Option<u16>) -> Option<String> {
        let Some(alias) = alias else { return (!topic.is_empty()).then_some(topic) };
        if alias == 0 || alias > wire::connack::TOPIC_ALIAS_MAXIMUM {
            return None;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions.get_mut(&session_id)?;
        if topic.is_empty() {
            session.topic_aliases.get(&alias).cloned()
        } else {
            session.topic_aliases.insert(alias, topic.clone());
            Some(topic)
        }
    }

    /// Handles one packet; `Some` closes the connection, saying how it ended.
    async fn on_packet(self: Arc<Self>, session_id: u64, identity: &Identity, protocol: Protocol, packet: Incoming) -> Option<Ending> {
        match packet {
            Incoming::PingReq => self.send(session_id, Outgoing::PingResp),
            // AWS IoT Core: any DISCONNECT from the client suppresses the will, MQTT 5's "with
            // will message" (0x04) included, which the specification would publish.
            Incoming::Disconnect { with_will, session_expiry } => {
                if with_will {
                    tracing::info!(client_id = %identity.client_id, "DISCONNECT asked for the will: AWS IoT Core does not publish it after a DISCONNECT");
                }
                return Some(Ending::Clean { session_expiry });
            }
            Incoming::Connect { .. } => {
                tracing::info!(client_id = %identity.client_id, "connection closed: a second CONNECT");
                return Some(Ending::Abrupt);
            }
            Incoming::PubAck { pkid } => {
                if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&session_id) {
                    s.unacked.retain(|(sent_as, ..)| *sent_as != pkid);
                    release_waiting(s);
                }
            }
            // QoS 2's PUBREL and PUBCOMP, and AUTH, which AWS IoT Core does not serve.
            Incoming::Unsupported(what) => {
                tracing::info!(client_id = %identity.client_id, "connection closed: unsupported {what} (QoS 2 flows, AUTH: AWS IoT Core has neither)");
                return Some(Ending::Abrupt);
            }
            Incoming::Subscribe { pkid, filters } => {
                if filters.iter().any(|(_, qos)| *qos > 1) {
                    // AWS IoT Core ignores a QoS 2 subscription: no SUBACK at all.
                    tracing::info!(client_id = %identity.client_id, "subscription ignored: QoS 2 (AWS IoT Core answers no SUBACK)");
                    return None;
                }
                if filters.len() > limits::MAX_FILTERS_PER_SUBSCRIBE {
                    // AWS IoT Core drops the connection without a SUBACK.
                    tracing::info!(client_id = %identity.client_id, filters = filters.len(), "connection closed: over 8 topic filters in one SUBSCRIBE");
                    return Some(Ending::Abrupt);
                }
                let granted = filters
                    .iter()
                    .map(|(filter, qos)| {
                        let refused = if !valid_filter(filter) {
                            Some("not a valid topic filter")
                        } else if filter.starts_with("$aws/rules/") {
                            Some("Basic Ingest topics cannot be subscribed to")
                        } else if !allows(&identity.policies, "iot:Subscribe", &topic_filter_arn(filter), &identity.context) {
                            Some("the certificate's policies do not allow iot:Subscribe to it")
                        } else {
                            None
                        };
                        if let Some(reason) = refused {
                            tracing::info!(client_id = %identity.client_id, filter = %filter, "subscription refused: {reason}");
                        }
                        refused.is_none().then_some((*qos).min(1))
                    })
                    .collect::<Vec<_>>();
                if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&session_id) {
                    for ((filter, _), g) in filters.iter().zip(&granted) {
                        if let Some(q) = g {
                            s.subscriptions.retain(|(f, _)| f != filter);
                            s.subscriptions.push((filter.clone(), *q));
                        }
                    }
                }
                let accepted: Vec<(String, u8)> = filters.iter().zip(&granted).filter_map(|((f, _), g)| g.map(|q| (f.clone(), q))).collect();
                self.send(session_id, Outgoing::SubAck { pkid, granted });
                for (filter, q) in accepted {
                    self.send_retained(session_id, &filter, q);
                    self.send_shared_queued(session_id, &filter, q);
                }
            }
            Incoming::Unsubscribe { pkid, filters } => {
                if let Some(s) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&session_id) {
                    s.subscriptions.retain(|(f, _)| !filters.contains(f));
                }
                self.send(session_id, Outgoing::UnsubAck { pkid, count: filters.len() });
            }
            Incoming::Publish { topic, qos, pkid, payload, retain, topic_alias, expiry } => {
                if qos > 1 {
                    // AWS IoT Core ignores a QoS 2 publish: no PUBREC, nothing delivered.
                    tracing::info!(client_id = %identity.client_id, "publish ignored: QoS 2 (AWS IoT Core has no QoS 2)");
                    return None;
                }
                let topic = match self.resolve_alias(session_id, topic, topic_alias) {
                    Some(topic) => topic,
                    None => return Some(self.refuse(session_id, identity, wire::DisconnectReason::TopicAliasInvalid, "an unknown topic alias, or one over the maximum of 8")),
                };
                if payload.len() > limits::MAX_PAYLOAD_BYTES {
                    return Some(self.refuse(session_id, identity, wire::DisconnectReason::PacketTooLarge, "a payload over 128 KB"));
                }
                if !limits::topic_within_limits(&topic) {
                    return Some(self.refuse(session_id, identity, wire::DisconnectReason::TopicNameInvalid, "a topic over 256 bytes or 7 slashes"));
                }
                if !self.within_publish_rate(session_id) {
                    // AWS discards publishes over its rate; MQTT 5 hears why.
                    tracing::info!(client_id = %identity.client_id, "publish discarded: over 100 publishes per second on this connection (AWS IoT Core's quota)");
                    if protocol == Protocol::V5 && qos == 1 {
                        self.send(session_id, Outgoing::PubAck { pkid, reason: wire::PubAckReason::QuotaExceeded });
                    }
                    return None;
                }
                if let Some(action) = publish_denied(identity, &topic, retain) {
                    tracing::info!(client_id = %identity.client_id, topic = %topic, "publish refused: the certificate's policies do not allow {action} to it");
                    // MQTT 5 can say so; with MQTT 3.1.1 AWS IoT Core closes the connection.
                    if protocol == Protocol::V5 {
                        if qos == 1 {
                            self.send(session_id, Outgoing::PubAck { pkid, reason: wire::PubAckReason::NotAuthorized });
                        }
                        return None;
                    }
                    return Some(Ending::Abrupt);
                }
                if qos == 1 {
                    self.send(session_id, Outgoing::PubAck { pkid, reason: wire::PubAckReason::Success });
                }
                self.route(session_id, identity, Published { topic, payload, qos, retain, expiry }).await;
            }
        }
        None
    }
}

/// Reads from the connection, giving up (`None`) after `limit` without a byte.
async fn read_within(
    tls: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    chunk: &mut [u8],
    limit: Option<Duration>,
) -> Option<std::io::Result<usize>> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, tls.read(chunk)).await.ok(),
        None => Some(tls.read(chunk).await),
    }
}

async fn read_connect(
    tls: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    buf: &mut BytesMut,
) -> Option<Incoming> {
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(protocol)) = wire::connect_protocol(buf) {
            if let Ok(Some(packet)) = wire::read(protocol, buf) {
                return Some(packet);
            }
        } else if wire::connect_protocol(buf).is_err() {
            return None;
        }
        let n = tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
