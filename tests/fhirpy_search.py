"""fhirpy, a FHIR client library written by others, searches and pages the platform's
Observations as an app would. Run by tests/fhir_api.rs:

    python tests/fhirpy_search.py <FHIR base URL> <bearer token> <readings of each code>

Prints `ok` when every check holds; an assertion names the one that did not.
"""

import sys

from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

HEART_RATE = "http://loinc.org|8867-4"


def main() -> None:
    base, token, per_code = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = SyncFHIRClient(base, authorization=f"Bearer {token}")
    observations = client.resources("Observation")

    # Every heart rate, 100 to a page, following the server's next links.
    heart_rate = observations.search(patient="pat-1", code=HEART_RATE).limit(100)
    found = heart_rate.fetch_all()
    assert len(found) == per_code, f"{len(found)} of {per_code}"
    assert len({o["id"] for o in found}) == per_code, "each once"
    times = [o["effectiveDateTime"] for o in found]
    assert times == sorted(times, reverse=True), "newest first"
    assert heart_rate.count() == per_code, "count()"

    # Oldest first, one page; a range with prefixes; two codes.
    oldest = observations.search(patient="pat-1", code=HEART_RATE).sort("date").limit(10).fetch()
    assert [o["effectiveDateTime"] for o in oldest] == sorted(times)[:10]
    hour = observations.search(
        subject="Patient/pat-1", code=HEART_RATE, date__ge="2026-11-01T02:00Z", date__lt="2026-11-01T03:00Z"
    ).fetch_all()
    assert len(hour) == 60, len(hour)
    both = observations.search(patient="pat-1", code=f"{HEART_RATE},http://loinc.org|8310-5").limit(200).fetch_all()
    assert len(both) == 2 * per_code, len(both)

    # A read by reference, with its version.
    read = client.reference("Observation", found[0]["id"]).to_resource()
    assert read["id"] == found[0]["id"] and read["meta"]["versionId"], read

    # A parameter the server does not serve is an OperationOutcome, not a silent wider search.
    try:
        observations.search(patient="pat-1", flavour="mint").fetch()
        raise AssertionError("an unknown parameter was accepted")
    except OperationOutcome as outcome:
        assert "flavour" in str(outcome), outcome
    print("ok")


if __name__ == "__main__":
    main()
