"""Third-party device code against the local gateway's IoT Jobs: the AWS IoT Device SDK v2 for
Python's `IotJobsClientV2` (request-response over MQTT 5, replies matched by clientToken), as
a firmware agent written for AWS IoT Core would use it.

Lists pending jobs, starts the next one, downloads the document's presigned URL and checks the
SHA-256, describes the execution, reports SUCCEEDED (or FAILED) with the expected version, and
checks that a stale version is refused. Prints one JSON line; exits 1 on failure.
"""

import argparse
import hashlib
import json
import sys
import urllib.request
from concurrent.futures import Future

import awsiot
from awscrt import mqtt_request_response
from awsiot import iotjobs, mqtt5_client_builder

TIMEOUT = 15


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", default="localhost")
    parser.add_argument("--port", type=int, default=8883)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--thing", required=True)
    args = parser.parse_args()

    connected, stopped, next_changed = Future(), Future(), Future()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint=args.endpoint, port=args.port, cert_filepath=args.cert, pri_key_filepath=args.key,
        ca_filepath=args.ca, client_id=args.thing,
        on_lifecycle_connection_success=lambda data: connected.set_result(True),
        on_lifecycle_connection_failure=lambda data: connected.done() or connected.set_exception(
            RuntimeError(f"connection failed: {data.exception}")),
        on_lifecycle_stopped=lambda data: stopped.set_result(True))
    client.start()
    connected.result(TIMEOUT)
    jobs = iotjobs.IotJobsClientV2(client, mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=4, max_streaming_subscriptions=2, operation_timeout_in_seconds=TIMEOUT))

    def on_next_changed(event):
        if not next_changed.done():
            next_changed.set_result(event.execution.job_id if event.execution else None)

    stream = jobs.create_next_job_execution_changed_stream(
        iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=args.thing),
        awsiot.ServiceStreamOptions(incoming_event_listener=on_next_changed))
    stream.open()

    pending = jobs.get_pending_job_executions(
        iotjobs.GetPendingJobExecutionsRequest(thing_name=args.thing)).result(TIMEOUT)
    queued = [j.job_id for j in pending.queued_jobs or []]
    started = jobs.start_next_pending_job_execution(
        iotjobs.StartNextPendingJobExecutionRequest(thing_name=args.thing, step_timeout_in_minutes=5,
                                                    status_details={"step": "downloading"})).result(TIMEOUT)
    execution = started.execution
    document = execution.job_document
    image = urllib.request.urlopen(document["firmwareUrl"], timeout=TIMEOUT).read()
    checksum_ok = hashlib.sha256(image).hexdigest() == document["sha256"]

    described = jobs.describe_job_execution(iotjobs.DescribeJobExecutionRequest(
        thing_name=args.thing, job_id=execution.job_id, include_job_document=True)).result(TIMEOUT)
    updated = jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
        thing_name=args.thing, job_id=execution.job_id,
        status=iotjobs.JobStatus.SUCCEEDED if checksum_ok else iotjobs.JobStatus.FAILED,
        status_details={"version": document["version"]}, expected_version=described.execution.version_number,
        include_job_execution_state=True)).result(TIMEOUT)
    try:
        jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name=args.thing, job_id=execution.job_id, status=iotjobs.JobStatus.IN_PROGRESS,
            expected_version=described.execution.version_number)).result(TIMEOUT)
        stale = "accepted"
    except awsiot.V2ServiceException as e:
        stale = e.modeled_error.code if e.modeled_error else str(e.inner_error)

    # After the job ended, notify-next says there is nothing next.
    after = None
    try:
        after = next_changed.result(TIMEOUT)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        after = f"no notify-next: {e}"
    # Release the request-response client and its stream before stopping the MQTT client they
    # run on (awscrt tears them down natively).
    del stream, jobs
    client.stop()
    stopped.result(TIMEOUT)
    print(json.dumps({
        "queued": queued,
        "jobId": execution.job_id,
        "operation": document.get("operation"),
        "startedStatus": execution.status,
        "describedStatus": described.execution.status,
        "checksumOk": checksum_ok,
        "finalStatus": updated.execution_state.status,
        "finalDetails": updated.execution_state.status_details,
        "staleUpdate": stale,
        "nextAfterwards": after,
    }))
    return 0 if checksum_ok else 1


if __name__ == "__main__":
    sys.exit(main())
