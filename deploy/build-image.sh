#!/usr/bin/env bash
# Builds the sluice image FROM scratch around a static binary.
# usage: deploy/build-image.sh [tag]   (default sluice:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-sluice:dev}
mkdir -p build
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o build/sluice ./cmd/agent
cp /etc/ssl/certs/ca-certificates.crt build/
cp deploy/agent.yml build/
docker build -q -t "$tag" -f Dockerfile build/
