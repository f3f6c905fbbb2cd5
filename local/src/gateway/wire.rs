//! MQTT 3.1.1 and 5 on the wire, through rumqttc's packet codecs (`mqttbytes` v4 and v5), so
//! the session loop handles one small set of packets whatever the client speaks.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// Largest packet accepted (AWS IoT Core allows 128 KiB payloads).
pub const MAX_PACKET: usize = 256 * 1024;

/// The protocol version a client connected with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

/// A client's last will: published if its connection ends without a clean DISCONNECT.
#[derive(Debug, Clone, PartialEq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5's Message Expiry Interval of the will, seconds.
    pub expiry: Option<u32>,
}

/// A client's CONNECT.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    pub client_id: String,
    pub keep_alive: u16,
    pub protocol: Protocol,
    pub will: Option<Will>,
    /// 3.1.1's Clean Session or 5's Clean Start.
    pub clean: bool,
    /// MQTT 5's Session Expiry Interval the client asked for (0 for 3.1.1).
    pub session_expiry: u32,
    /// MQTT 5's Receive Maximum: how many unacknowledged QoS 1 messages the client takes at once.
    pub receive_maximum: Option<u16>,
}

/// A packet from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Connect(Connect),
    /// `topic_alias`: MQTT 5's Topic Alias (the topic is empty when the alias stands for it);
    /// `expiry`: MQTT 5's Message Expiry Interval, seconds.
    Publish { topic: String, qos: u8, pkid: u16, payload: Bytes, retain: bool, topic_alias: Option<u16>, expiry: Option<u32> },
    Subscribe { pkid: u16, filters: Vec<(String, u8)> },
    Unsubscribe { pkid: u16, filters: Vec<String> },
    PubAck { pkid: u16 },
    PingReq,
    /// `with_will`: MQTT 5's reason 0x04, "disconnect with will message"; `session_expiry`:
    /// MQTT 5's new Session Expiry Interval for the session it leaves.
    Disconnect { with_will: bool, session_expiry: Option<u32> },
    /// QoS 2 and other packets the gateway does not serve (AWS IoT Core has no QoS 2).
    Unsupported(&'static str),
}

/// The answer to a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCode {
    Accepted,
    NotAuthorized,
    /// The client id is not one AWS IoT Core takes (over 128 bytes).
    ClientIdNotValid,
}

/// What AWS IoT Core tells an MQTT 5 client in its CONNACK (`docs/local/aws-iot-core-mqtt.md`).
pub mod connack {
    /// Maximum QoS: AWS IoT Core has no QoS 2.
    pub const MAXIMUM_QOS: u8 = 1;
    /// Topic aliases per connection.
    pub const TOPIC_ALIAS_MAXIMUM: u16 = 8;
    /// In-flight QoS 1 messages from a client (AWS's quota of 100).
    pub const RECEIVE_MAXIMUM: u16 = 100;
    /// 128 KiB of payload with room for the topic and properties (146 KiB, AWS's packet quota as
    /// third parties quote it; AWS documents only the 128 KB payload).
    pub const MAXIMUM_PACKET_SIZE: u32 = 146 * 1024;
}

/// MQTT 5 DISCONNECT reasons the gateway sends before it closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    SessionTakenOver,
    TopicNameInvalid,
    TopicAliasInvalid,
    PacketTooLarge,
    KeepAliveTimeout,
}

/// A packet to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// `server_keep_alive`: the keep-alive AWS applies when it is not the client's;
    /// `session_expiry`: the session expiry granted, when the client asked for one.
    ConnAck { code: ConnectCode, session_present: bool, server_keep_alive: Option<u16>, session_expiry: Option<u32> },
    /// MQTT 5 only (a 3.1.1 connection is just closed): the reason, and its words.
    Disconnect(DisconnectReason, String),
    SubAck { pkid: u16, granted: Vec<Option<u8>> },
    UnsubAck { pkid: u16, count: usize },
    PubAck { pkid: u16, reason: PubAckReason },
    /// `retain`: a retained message sent because of a new subscription; `expiry`: the seconds
    /// left of its Message Expiry Interval (MQTT 5).
    Publish { topic: String, qos: u8, pkid: u16, payload: Bytes, retain: bool, expiry: Option<u32> },
    PingResp,
}

/// How a PUBACK answers a client's QoS 1 publish (MQTT 5 says which; 3.1.1 only acknowledges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubAckReason {
    Success,
    /// The certificate's policies do not allow the publish.
    NotAuthorized,
    /// Over AWS's publish rate per connection: the message was discarded.
    QuotaExceeded,
}

/// A malformed or oversized packet.
#[derive(Debug, thiserror::Error)]
#[error("malformed MQTT packet: {0}")]
pub struct WireError(pub String);

/// The protocol level of a CONNECT at the head of `buf`, once enough bytes have arrived.
pub fn connect_protocol(buf: &[u8]) -> Result<Option<Protocol>, WireError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] >> 4 != 1 {
        return Err(WireError("the first packet must be CONNECT".into()));
    }
    // Skip the remaining-length varint (1-4 bytes).
    let mut i = 1;
    loop {
        let Some(b) = buf.get(i) else { return Ok(None) };
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(WireError("bad remaining length".into()));
        }
    }
    // Protocol name "MQTT" (2-byte length + 4 bytes), then the level.
    match buf.get(i + 6) {
        None => Ok(None),
        Some(4) => Ok(Some(Protocol::V311)),
        Some(5) => Ok(Some(Protocol::V5)),
        Some(level) => Err(WireError(format!("unsupported protocol level {level}"))),
    }
}

fn qos_v4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        _ => rumqttc::QoS::AtLeastOnce,
    }
}

fn qos_v5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        _ => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    }
}

/// Reads one packet from `buf`; `Ok(None)` when more bytes are needed.
pub fn read(protocol: Protocol, buf: &mut BytesMut) -> Result<Option<Incoming>, WireError> {
    match protocol {
        Protocol::V311 => match v4::Packet::read(buf, MAX_PACKET) {
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(WireError(e.to_string())),
            Ok(packet) => Ok(Some(match packet {
                v4::Packet::Connect(c) => Incoming::Connect(Connect {
                    client_id: c.client_id,
                    keep_alive: c.keep_alive,
                    protocol,
                    will: c.last_will.map(|w| Will { topic: w.topic, payload: w.message, qos: w.qos as u8, retain: w.retain, expiry: None }),
                    clean: c.clean_session,
                    session_expiry: 0,
                    receive_maximum: None,
                }),
                v4::Packet::Publish(p) => {
                    Incoming::Publish { topic: p.topic, qos: p.qos as u8, pkid: p.pkid, payload: p.payload, retain: p.retain, topic_alias: None, expiry: None }
                }
                v4::Packet::Subscribe(s) => {
                    Incoming::Subscribe { pkid: s.pkid, filters: s.filters.into_iter().map(|f| (f.path, f.qos as u8)).collect() }
                }
                v4::Packet::Unsubscribe(u) => Incoming::Unsubscribe { pkid: u.pkid, filters: u.topics },
                v4::Packet::PubAck(a) => Incoming::PubAck { pkid: a.pkid },
                v4::Packet::PingReq => Incoming::PingReq,
                v4::Packet::Disconnect => Incoming::Disconnect { with_will: false, session_expiry: None },
                _ => Incoming::Unsupported("packet type"),
            })),
        },
        // MQTT 5 §3.14.2.1: a DISCONNECT may leave out its property length (remaining length 1)
        // and, when normal, its reason code too (remaining length 0), as mosquitto's clients
        // send it; rumqttc's reader takes the first for a missing payload and waits for more
        // bytes after the second.
        Protocol::V5 if buf.len() >= 2 && buf[0] == 0xE0 && buf[1] <= 1 => {
            let short = buf.split_to(2);
            let reason = match short[1] {
                0 => 0x00,
                _ if buf.is_empty() => {
                    buf.unsplit(short);
                    return Ok(None);
                }
                _ => buf.split_to(1)[0],
            };
            Ok(Some(Incoming::Disconnect { with_will: reason == 0x04, session_expiry: None }))
        }
        Protocol::V5 => match v5::Packet::read(buf, Some(MAX_PACKET as u32)) {
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(WireError(e.to_string())),
            Ok(packet) => Ok(Some(match packet {
                v5::Packet::Connect(c, will, _) => Incoming::Connect(Connect {
                    session_expiry: c.properties.as_ref().and_then(|p| p.session_expiry_interval).unwrap_or(0),
                    receive_maximum: c.properties.as_ref().and_then(|p| p.receive_maximum),
                    clean: c.clean_start,
                    client_id: c.client_id,
                    keep_alive: c.keep_alive,
                    protocol,
                    will: will.map(|w| Will {
                        topic: String::from_utf8_lossy(&w.topic).into_owned(),
                        payload: w.message,
                        qos: w.qos as u8,
                        retain: w.retain,
                        expiry: w.properties.as_ref().and_then(|p| p.message_expiry_interval),
                    }),
                }),
                v5::Packet::Publish(p) => Incoming::Publish {
                    topic_alias: p.properties.as_ref().and_then(|props| props.topic_alias),
                    expiry: p.properties.as_ref().and_then(|props| props.message_expiry_interval),
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    qos: p.qos as u8,
                    pkid: p.pkid,
                    payload: p.payload,
                    retain: p.retain,
                },
                v5::Packet::Subscribe(s) => {
                    Incoming::Subscribe { pkid: s.pkid, filters: s.filters.into_iter().map(|f| (f.path, f.qos as u8)).collect() }
                }
                v5::Packet::Unsubscribe(u) => Incoming::Unsubscribe { pkid: u.pkid, filters: u.filters },
                v5::Packet::PubAck(a) => Incoming::PubAck { pkid: a.pkid },
                v5::Packet::PingReq(_) => Incoming::PingReq,
                v5::Packet::Disconnect(d) => Incoming::Disconnect {
                    with_will: d.reason_code == v5::DisconnectReasonCode::DisconnectWithWillMessage,
                    session_expiry: d.properties.and_then(|p| p.session_expiry_interval),
                },
                _ => Incoming::Unsupported("packet type"),
            })),
        },
    }
}

/// Encodes one packet onto `buf`.
pub fn write(protocol: Protocol, packet: Outgoing, buf: &mut BytesMut) -> Result<(), WireError> {
    let e = |e: &dyn std::fmt::Display| WireError(e.to_string());
    match protocol {
        Protocol::V311 => {
            let p = match packet {
                Outgoing::ConnAck { code, session_present, .. } => v4::Packet::ConnAck(v4::ConnAck::new(
                    match code {
                        ConnectCode::Accepted => v4::ConnectReturnCode::Success,
                        ConnectCode::NotAuthorized => v4::ConnectReturnCode::NotAuthorized,
                        ConnectCode::ClientIdNotValid => v4::ConnectReturnCode::BadClientId,
                    },
                    session_present,
                )),
                // MQTT 3.1.1 has no DISCONNECT from the server: the connection is just closed.
                Outgoing::Disconnect(..) => return Ok(()),
                Outgoing::SubAck { pkid, granted } => v4::Packet::SubAck(v4::SubAck::new(
                    pkid,
                    granted
                        .into_iter()
                        .map(|g| g.map_or(v4::SubscribeReasonCode::Failure, |q| v4::SubscribeReasonCode::Success(qos_v4(q))))
                        .collect(),
                )),
                Outgoing::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(pkid)),
                // MQTT 3.1.1 has no negative PUBACK; the session closes the connection instead.
                Outgoing::PubAck { pkid, .. } => v4::Packet::PubAck(v4::PubAck::new(pkid)),
                Outgoing::Publish { topic, qos, pkid, payload, retain, .. } => {
                    let mut p = v4::Publish::new(topic, qos_v4(qos), payload.to_vec());
                    p.pkid = pkid;
                    p.retain = retain;
                    v4::Packet::Publish(p)
                }
                Outgoing::PingResp => v4::Packet::PingResp,
            };
            p.write(buf, MAX_PACKET).map(|_| ()).map_err(|x| e(&x))
        }
        Protocol::V5 => {
            let p = match packet {
                Outgoing::ConnAck { code, session_present, server_keep_alive, session_expiry } => v5::Packet::ConnAck(v5::ConnAck {
                    session_present,
                    code: match code {
                        ConnectCode::Accepted => v5::ConnectReturnCode::Success,
                        ConnectCode::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
                        ConnectCode::ClientIdNotValid => v5::ConnectReturnCode::ClientIdentifierNotValid,
                    },
                    properties: (code == ConnectCode::Accepted).then(|| v5::ConnAckProperties {
                        session_expiry_interval: session_expiry,
                        receive_max: Some(connack::RECEIVE_MAXIMUM),
                        max_qos: Some(connack::MAXIMUM_QOS),
                        retain_available: Some(1),
                        max_packet_size: Some(connack::MAXIMUM_PACKET_SIZE),
                        assigned_client_identifier: None,
                        topic_alias_max: Some(connack::TOPIC_ALIAS_MAXIMUM),
                        reason_string: None,
                        user_properties: Vec::new(),
                        wildcard_subscription_available: Some(1),
                        subscription_identifiers_available: Some(0),
                        shared_subscription_available: Some(1),
                        server_keep_alive,
                        response_information: None,
                        server_reference: None,
                        authentication_method: None,
                        authentication_data: None,
                    }),
                }),
                Outgoing::Disconnect(reason, words) => v5::Packet::Disconnect(v5::Disconnect {
                    reason_code: match reason {
                        DisconnectReason::SessionTakenOver => v5::DisconnectReasonCode::SessionTakenOver,
                        DisconnectReason::TopicNameInvalid => v5::DisconnectReasonCode::TopicNameInvalid,
                        DisconnectReason::TopicAliasInvalid => v5::DisconnectReasonCode::TopicAliasInvalid,
                        DisconnectReason::PacketTooLarge => v5::DisconnectReasonCode::PacketTooLarge,
                        DisconnectReason::KeepAliveTimeout => v5::DisconnectReasonCode::KeepAliveTimeout,
                    },
                    properties: Some(v5::DisconnectProperties {
                        session_expiry_interval: None,
                        reason_string: Some(words),
                        user_properties: Vec::new(),
                        server_reference: None,
                    }),
                }),
                Outgoing::SubAck { pkid, granted } => v5::Packet::SubAck(v5::SubAck {
                    pkid,
                    return_codes: granted
                        .into_iter()
                        .map(|g| g.map_or(v5::SubscribeReasonCode::NotAuthorized, |q| v5::SubscribeReasonCode::Success(qos_v5(q))))
                        .collect(),
                    properties: None,
                }),
                Outgoing::UnsubAck { pkid, count } => v5::Packet::UnsubAck(v5::UnsubAck {
                    pkid,
                    reasons: vec![v5::UnsubAckReason::Success; count],
                    properties: None,
                }),
                Outgoing::PubAck { pkid, reason } => v5::Packet::PubAck(v5::PubAck {
                    pkid,
                    reason: match reason {
                        PubAckReason::Success => v5::PubAckReason::Success,
                        PubAckReason::NotAuthorized => v5::PubAckReason::NotAuthorized,
                        PubAckReason::QuotaExceeded => v5::PubAckReason::QuotaExceeded,
                    },
                    properties: None,
                }),
                Outgoing::Publish { topic, qos, pkid, payload, retain, expiry } => {
                    let properties = expiry.map(|e| v5::PublishProperties { message_expiry_interval: Some(e), ..Default::default() });
                    let mut p = v5::Publish::new(topic, qos_v5(qos), payload, properties);
                    p.pkid = pkid;
                    p.retain = retain;
                    v5::Packet::Publish(p)
                }
                Outgoing::PingResp => v5::Packet::PingResp(v5::PingResp),
            };
            p.write(buf, Some(MAX_PACKET as u32)).map(|_| ()).map_err(|x| e(&x))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_mqtt5_disconnect_is_a_normal_disconnect_and_what_follows_stays() {
        let mut buf = BytesMut::from(&[0xE0u8, 0x00, 0xC0, 0x00][..]);
        assert!(matches!(read(Protocol::V5, &mut buf), Ok(Some(Incoming::Disconnect { with_will: false, session_expiry: None }))));
        assert!(matches!(read(Protocol::V5, &mut buf), Ok(Some(Incoming::PingReq))), "the next packet is read as before");
        let mut partial = BytesMut::from(&[0xE0u8, 0x01][..]);
        assert!(matches!(read(Protocol::V5, &mut partial), Ok(None)));
        assert_eq!(&partial[..], [0xE0, 0x01], "kept until its reason code arrives");
        let mut with_will = BytesMut::from(&[0xE0u8, 0x01, 0x04][..]);
        assert!(matches!(read(Protocol::V5, &mut with_will), Ok(Some(Incoming::Disconnect { with_will: true, session_expiry: None }))));
    }
}
