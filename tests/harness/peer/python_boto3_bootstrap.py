"""The cold-start peer: a Python 3 Lambda function of fhir-ingest's shape, on a custom runtime.

At init it imports boto3 and builds the DynamoDB client it would file readings with (as a
Python handler does at module level), then asks the Runtime API for its first event: the
moment the Rust functions' cold start is measured to. It uses the standard library's HTTP
client for the Runtime API, which is lighter than AWS's own runtime interface client, so the
comparison favours Python. Run by `cargo run -p vitalwire-tests --bin cold-start -- --python-peer`.
"""

import os
import urllib.request

import boto3

dynamodb = boto3.client("dynamodb")
observations_table = os.environ.get("OBSERVATIONS_TABLE", "Observations")

# Lambda gives `host:port`; the local stand-in a URL.
api = os.environ["AWS_LAMBDA_RUNTIME_API"].removeprefix("http://")
while True:
    with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as event:
        request_id = event.headers["Lambda-Runtime-Aws-Request-Id"]
        event.read()
    urllib.request.urlopen(urllib.request.Request(
        f"http://{api}/2018-06-01/runtime/invocation/{request_id}/response", data=b"{}", method="POST"))
