#!/usr/bin/env bash
# Puts the clinician console (console/) on AWS, behind the stack's CloudFront distribution:
# reads the stack's outputs, builds the console, writes its config.json (the HTTP API, the staff
# pool's issuer and client, the hosted UI's endpoints), uploads the files to the console bucket
# and invalidates what names a build. Deploy the stack first (sam deploy).
#   scripts/deploy-console.sh <stack-name> [--region R]
# Needs the AWS CLI with credentials for the stack's account (AWS_PROFILE is honoured), and npm.
#
# Order of the upload, so that a browser never gets an index.html whose assets are missing:
# the hashed assets first (immutable: cached by browsers and CloudFront for a year), then
# config.json and index.html (no-cache: CloudFront does not cache them, browsers revalidate),
# and only then are files of earlier builds deleted (they stay as old versions for 30 days).
set -euo pipefail

usage() { echo "usage: $0 <stack-name> [--region R]" >&2; exit 2; }

stack=""
region_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --region) [ $# -ge 2 ] || usage; region_args=(--region "$2"); shift 2 ;;
    --region=*) region_args=(--region "${1#--region=}"); shift ;;
    -h|--help) usage ;;
    -*) echo "deploy-console: unknown option $1" >&2; usage ;;
    *) [ -z "$stack" ] || usage; stack="$1"; shift ;;
  esac
done
[ -n "$stack" ] || usage

for tool in aws npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    case "$tool" in
      aws) echo "deploy-console: needs the AWS CLI (https://docs.aws.amazon.com/cli/), configured for the stack's account" >&2 ;;
      npm) echo "deploy-console: needs npm (Node.js) to build the console" >&2 ;;
    esac
    exit 1
  fi
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dist="console/dist"

# (The array is expanded so that an empty one passes under set -u in bash 3.2, macOS's.)
aws_() { aws ${region_args[@]+"${region_args[@]}"} "$@"; }

# The stack's outputs, one "key<TAB>value" a line.
echo "deploy-console: reading the outputs of stack $stack" >&2
outputs="$(aws_ cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text)"
output() {
  local value
  value="$(printf '%s\n' "$outputs" | awk -F '\t' -v key="$1" '$1 == key { print $2; exit }')"
  if [ -z "$value" ]; then
    echo "deploy-console: stack $stack has no output $1 (deploy the current template.yaml first)" >&2
    exit 1
  fi
  printf '%s' "$value"
}
api_url="$(output HttpApiUrl)"
issuer="$(output StaffUserPoolIssuer)"
client_id="$(output StaffUserPoolClientId)"
auth_domain="$(output StaffAuthDomain)"
bucket="$(output ConsoleBucketName)"
distribution="$(output ConsoleDistributionId)"
console_url="$(output ConsoleUrl)"

echo "deploy-console: building the console" >&2
(cd console && npm ci && npm run build)

# Written after the build (Vite empties dist/). The values are ids and URLs from the stack:
# nothing in them needs escaping in JSON.
cat >"$dist/config.json" <<EOF
{
  "apiUrl": "$api_url",
  "environment": "aws",
  "auth": {
    "issuer": "$issuer",
    "clientId": "$client_id",
    "authorizationEndpoint": "$auth_domain/oauth2/authorize",
    "tokenEndpoint": "$auth_domain/oauth2/token",
    "endSessionEndpoint": "$auth_domain/logout",
    "scope": "openid email profile"
  }
}
EOF

echo "deploy-console: uploading to s3://$bucket" >&2
# An asset's name holds a hash of its content: one already there is the same file.
aws_ s3 sync "$dist" "s3://$bucket/" --exclude '*' --include 'assets/*' --size-only \
  --cache-control "public,max-age=31536000,immutable"
# Files outside assets/ that Vite copies as they are (none yet): not hashed, so revalidated.
aws_ s3 sync "$dist" "s3://$bucket/" --exclude 'assets/*' --exclude index.html --exclude config.json \
  --cache-control no-cache
aws_ s3 cp "$dist/config.json" "s3://$bucket/config.json" --cache-control no-cache --content-type application/json
aws_ s3 cp "$dist/index.html" "s3://$bucket/index.html" --cache-control no-cache --content-type "text/html; charset=utf-8"
# Everything is uploaded and unchanged in size: this pass only deletes files of earlier builds.
aws_ s3 sync "$dist" "s3://$bucket/" --delete --size-only

# / is cached under its own key by the default behaviour (for a second at least); index.html
# and config.json are not cached by the distribution, and invalidated all the same (it is free
# and holds if their cache behaviour ever changes).
echo "deploy-console: invalidating /, /index.html and /config.json on distribution $distribution" >&2
aws_ cloudfront create-invalidation --distribution-id "$distribution" \
  --paths / /index.html /config.json --query 'Invalidation.Id' --output text

echo "deploy-console: the console is at $console_url" >&2
