#!/usr/bin/env bash
# Builds the sluice image without pulling anything: the static binary is
# built on this host, laid out in build/rootfs, and deploy/Dockerfile.offline
# (FROM scratch, the root Dockerfile's final stage) is built around it.
# usage: deploy/build-image.sh [tag]   (default sluice:dev)
# With a Go image at hand, `docker build -t sluice .` does the same in a
# multi-stage build.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-sluice:dev}
rootfs=build/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/etc/sluice" "$rootfs/var/lib/sluice" "$rootfs/var/run/sluice"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o "$rootfs/sluice" ./cmd/agent
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
cp deploy/agent.yml "$rootfs/etc/sluice/agent.yml"
docker build -q -t "$tag" -f deploy/Dockerfile.offline build/
