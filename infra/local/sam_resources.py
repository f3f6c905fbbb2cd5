"""Counts the resources of template.yaml as SAM expands it, and fails over CloudFormation's limit.

cfn-lint checks the template as written; CloudFormation counts what the SAM transform makes of
it (a function is also its role, its permissions, its event source mappings...), and refuses a
stack over 500 resources at deploy time. This runs the transform itself (aws-sam-translator, the
library `sam deploy` uses) offline, with placeholder code locations, and prints the count by type.
    .venv-sam/bin/python infra/local/sam_resources.py template.yaml
"""

import json
import os
import sys
from collections import Counter

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

LIMIT = 500  # CloudFormation: resources per stack


class NoManagedPolicies:
    """The transform asks for AWS managed policy ARNs only for policy names it cannot resolve."""

    def load(self):
        return {}


def expand(path):
    template, errors = decode(path)
    if errors:
        sys.exit(f"{path}: {errors[0]}")
    template = json.loads(json.dumps(template, default=str))
    # `sam build` replaces each CodeUri with the S3 location of the built package.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://placeholder/code.zip"
    # The transform resolves pseudo parameters; any region gives the same resources.
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    return transform(template, {}, NoManagedPolicies())


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    resources = expand(path)["Resources"]
    by_type = Counter(r["Type"] for r in resources.values())
    print(f"{path} as SAM expands it: {len(resources)} resources (CloudFormation's limit: {LIMIT})")
    for kind, count in by_type.most_common(6):
        print(f"  {count:4} {kind}")
    if len(resources) > LIMIT:
        sys.exit(f"{path}: {len(resources)} resources after the SAM transform, over CloudFormation's {LIMIT}")


if __name__ == "__main__":
    main()
