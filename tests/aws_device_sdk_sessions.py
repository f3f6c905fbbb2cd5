"""MQTT 5 session expiry through the AWS IoT Device SDK v2 for Python's MQTT 5 client.

A client asks for a session that outlives its connection (Session Expiry Interval 3600), then
stops with a DISCONNECT: one that says nothing about the session keeps it (the client rejoins
it), one that sets the Session Expiry Interval to 0 ends it (the client starts afresh). A last
will with a Message Expiry Interval is given too; it is not published after a DISCONNECT.
Prints one JSON line with what the client saw on each return; exits 1 on failure.
"""

import argparse
import json
import sys
from concurrent.futures import Future

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

TIMEOUT = 15


def session(args, behavior, disconnect: mqtt5.DisconnectPacket, subscribe: bool) -> bool:
    """Connects, optionally subscribes, stops with `disconnect`; whether the session was rejoined."""
    connected, stopped = Future(), Future()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint=args.endpoint, port=args.port, cert_filepath=args.cert, pri_key_filepath=args.key,
        ca_filepath=args.ca, client_id=args.client_id, session_behavior=behavior,
        connect_options=mqtt5.ConnectPacket(
            keep_alive_interval_sec=30, session_expiry_interval_sec=3600,
            will=mqtt5.PublishPacket(topic="ward/7/lost", payload="gone", qos=mqtt5.QoS.AT_LEAST_ONCE,
                                     message_expiry_interval_sec=60)),
        on_lifecycle_connection_success=lambda data: connected.done() or connected.set_result(
            data.negotiated_settings.rejoined_session),
        on_lifecycle_connection_failure=lambda data: connected.done() or connected.set_exception(
            RuntimeError(f"connection failed: {data.exception}")),
        on_lifecycle_stopped=lambda data: stopped.set_result(True))
    client.start()
    rejoined = connected.result(TIMEOUT)
    if subscribe:
        suback = client.subscribe(mqtt5.SubscribePacket(
            subscriptions=[mqtt5.Subscription(topic_filter="ward/7/alerts", qos=mqtt5.QoS.AT_LEAST_ONCE)])).result(TIMEOUT)
        if suback.reason_codes != [mqtt5.SubackReasonCode.GRANTED_QOS_1]:
            raise RuntimeError(f"subscription refused: {suback.reason_codes}")
    client.stop(disconnect)
    stopped.result(TIMEOUT)
    return rejoined


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", default="localhost")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-id", default="session-sdk")
    args = parser.parse_args()

    clean, rejoin = mqtt5.ClientSessionBehaviorType.CLEAN, mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS
    first = session(args, clean, mqtt5.DisconnectPacket(), subscribe=True)
    kept = session(args, rejoin, mqtt5.DisconnectPacket(session_expiry_interval_sec=0), subscribe=False)
    after_zero = session(args, rejoin, mqtt5.DisconnectPacket(), subscribe=False)
    print(json.dumps({"first": first, "kept": kept, "afterZero": after_zero}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
