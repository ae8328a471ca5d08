# The one image: manager, hostagent and playground are roles of the same binary.
# Build: docker build -t ghcr.io/xenclone/xenclone:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/xenclone .

# Debian slim rather than distroless: the host agent needs nsenter (util-linux) to run the
# host's lvm, xl, losetup and mount in the host's namespaces. The host tools themselves are
# the host's, never the image's.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends util-linux && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/xenclone /usr/local/bin/xenclone
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/xenclone"]
