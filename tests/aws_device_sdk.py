"""Third-party device code against the local gateway: the AWS IoT Device SDK v2 for Python.

Fleet provisioning through the SDK's identity client over MQTT 3.1.1 with the claim
certificate (as AWS's fleet-provisioning sample does), then a measurement to the FHIRIngest
Basic Ingest rule through the SDK's MQTT 5 client with the new certificate. Nothing here knows
it is not talking to AWS IoT Core. Prints one JSON line with what happened; exits 1 on failure.
"""

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import Future

from awscrt import mqtt, mqtt5
from awsiot import iotidentity, mqtt5_client_builder, mqtt_connection_builder

TIMEOUT = 15


def provision(args) -> dict:
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint=args.endpoint, port=args.port, cert_filepath=args.claim_cert,
        pri_key_filepath=args.claim_key, ca_filepath=args.ca,
        client_id=f"provision_sdk-{args.serial}", clean_session=True, keep_alive_secs=30)
    connection.connect().result(TIMEOUT)
    identity = iotidentity.IotIdentityClient(connection)
    created, registered = Future(), Future()

    def settle(future, value):
        if not future.done():
            future.set_result(value)

    subscriptions = [
        identity.subscribe_to_create_keys_and_certificate_accepted(
            iotidentity.CreateKeysAndCertificateSubscriptionRequest(), mqtt.QoS.AT_LEAST_ONCE,
            lambda r: settle(created, ("accepted", r))),
        identity.subscribe_to_create_keys_and_certificate_rejected(
            iotidentity.CreateKeysAndCertificateSubscriptionRequest(), mqtt.QoS.AT_LEAST_ONCE,
            lambda e: settle(created, ("rejected", e))),
        identity.subscribe_to_register_thing_accepted(
            iotidentity.RegisterThingSubscriptionRequest(template_name=args.template), mqtt.QoS.AT_LEAST_ONCE,
            lambda r: settle(registered, ("accepted", r))),
        identity.subscribe_to_register_thing_rejected(
            iotidentity.RegisterThingSubscriptionRequest(template_name=args.template), mqtt.QoS.AT_LEAST_ONCE,
            lambda e: settle(registered, ("rejected", e))),
    ]
    for future, _topic in subscriptions:
        future.result(TIMEOUT)

    identity.publish_create_keys_and_certificate(
        iotidentity.CreateKeysAndCertificateRequest(), mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
    outcome, keys = created.result(TIMEOUT)
    if outcome != "accepted":
        return {"step": "CreateKeysAndCertificate", "rejected": keys.error_message}

    identity.publish_register_thing(
        iotidentity.RegisterThingRequest(
            template_name=args.template,
            certificate_ownership_token=keys.certificate_ownership_token,
            parameters={"SerialNumber": args.serial, "Manufacturer": args.manufacturer,
                        "Name": "sdk device", "Model": "SDK-1"}),
        mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
    outcome, reply = registered.result(TIMEOUT)
    connection.disconnect().result(TIMEOUT)
    if outcome != "accepted":
        return {"step": "RegisterThing", "rejected": {"statusCode": reply.status_code,
                                                     "errorCode": reply.error_code,
                                                     "errorMessage": reply.error_message}}
    return {"thingName": reply.thing_name, "certificatePem": keys.certificate_pem,
            "privateKey": keys.private_key}


def publish_measurement(args, thing: str, cert_path: str, key_path: str) -> None:
    connected, stopped = Future(), Future()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint=args.endpoint, port=args.port, cert_filepath=cert_path, pri_key_filepath=key_path,
        ca_filepath=args.ca, client_id=thing,
        on_lifecycle_connection_success=lambda data: connected.set_result(True),
        on_lifecycle_connection_failure=lambda data: connected.done() or connected.set_exception(
            RuntimeError(f"connection failed: {data.exception}")),
        on_lifecycle_stopped=lambda data: stopped.set_result(True))
    client.start()
    connected.result(TIMEOUT)
    payload = {"value": "120", "unit": "mmHg",
               "coding": [{"code": "8480-6", "system": "http://loinc.org", "display": "Systolic blood pressure"}]}
    publish = client.publish(mqtt5.PublishPacket(
        topic="$aws/rules/FHIRIngest", payload=json.dumps(payload), qos=mqtt5.QoS.AT_LEAST_ONCE))
    result = publish.result(TIMEOUT)
    if result.puback is None or result.puback.reason_code != mqtt5.PubackReasonCode.SUCCESS:
        raise RuntimeError(f"PUBACK not successful: {result.puback}")
    client.stop()
    stopped.result(TIMEOUT)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", default="localhost")
    parser.add_argument("--port", type=int, default=8883)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--claim-cert", required=True)
    parser.add_argument("--claim-key", required=True)
    parser.add_argument("--serial", required=True)
    parser.add_argument("--manufacturer", default="Acme Medical")
    parser.add_argument("--template", default="DefaultProvisioningTemplate")
    args = parser.parse_args()

    result = provision(args)
    if "thingName" not in result:
        print(json.dumps(result))
        return 1
    with tempfile.TemporaryDirectory() as certs:
        cert_path, key_path = os.path.join(certs, "device.pem"), os.path.join(certs, "device.key")
        with open(cert_path, "w") as f:
            f.write(result["certificatePem"])
        with open(key_path, "w") as f:
            f.write(result["privateKey"])
        publish_measurement(args, result["thingName"], cert_path, key_path)
    print(json.dumps({"thingName": result["thingName"], "published": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
