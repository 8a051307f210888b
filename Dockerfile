# Sluice agent image, multi-stage: `docker build -t sluice .` on a host that
# can pull the Go image. Hosts that cannot pull anything use the offline
# path, deploy/build-image.sh: the same final stage (deploy/Dockerfile.offline)
# around a binary built on the host. test/deploy checks that the final
# stages of the two files agree line by line.
ARG GO_IMAGE=golang:1.26-bookworm
FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The root filesystem of the image, as deploy/build-image.sh lays it out:
# the static binary, CA certificates, the default config, and the data and
# socket directories owned by the non-root user 65532.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /rootfs/sluice ./cmd/agent \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/etc/sluice /rootfs/var/lib/sluice /rootfs/var/run/sluice \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && cp deploy/agent.yml /rootfs/etc/sluice/agent.yml

# --- final stage (keep identical to deploy/Dockerfile.offline) ---
FROM scratch
COPY --from=build /rootfs/sluice /sluice
COPY --from=build /rootfs/etc/ /etc/
COPY --from=build --chown=65532:65532 /rootfs/var/lib/sluice/ /var/lib/sluice/
COPY --from=build --chown=65532:65532 /rootfs/var/run/sluice/ /var/run/sluice/
# Root by default: the default config tails Docker's json-file logs (root
# only, 0640) and Docker's, ECS's and FireLens's socket directories are
# root's. With a forward-only config and the image's own socket directory
# (or a volume owned by 65532) run it as --user 65532:65532.
USER 0:0
# Forward input (TCP and UDP heartbeat).
EXPOSE 24224 24224/udp
VOLUME ["/var/lib/sluice"]
ENTRYPOINT ["/sluice"]
CMD ["run", "--config", "/etc/sluice/agent.yml"]
