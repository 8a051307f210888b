# Sluice agent image. No base image can be pulled on our build hosts, so the
# image is FROM scratch around a static binary built first:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o build/sluice ./cmd/agent
#   cp /etc/ssl/certs/ca-certificates.crt build/ && cp deploy/agent.yml build/
#   docker build -t sluice:dev -f Dockerfile build/
#
# (deploy/build-image.sh does exactly this.)
FROM scratch
COPY sluice /sluice
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY agent.yml /etc/sluice/agent.yml
# Forward input (TCP and UDP heartbeat).
EXPOSE 24224 24224/udp
VOLUME ["/var/lib/sluice"]
ENTRYPOINT ["/sluice"]
CMD ["run", "--config", "/etc/sluice/agent.yml"]
