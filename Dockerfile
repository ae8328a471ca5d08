# The one image: manager, hostagent and playground are roles of the same binary.
# Build: docker build -t ghcr.io/xenclone/xenclone:dev .
#
# `make image` builds the same files without a container engine (hack/image.sh, an OCI
# archive with a reproducible digest); keep the two in step (docs/image.md). This file gives
# the same contents, not the same digest.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/xenclone .

# What the roles need inside a container, from Debian, pinned: busybox-static as nsenter (the
# agent runs the host's lvm, xl, losetup and mount in PID 1's namespaces through it; busybox
# picks the applet from its name) and the Mozilla CA roots for https template imports. The
# host tools themselves are the host's, never the image's.
FROM debian:bookworm-slim AS debian
ARG BUSYBOX_VERSION=1:1.35.0-4+deb12u1+b1
ARG CA_CERTIFICATES_VERSION=20230311+deb12u1
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static=${BUSYBOX_VERSION} ca-certificates=${CA_CERTIFICATES_VERSION} \
 && mkdir -p /out/usr/bin /out/etc/ssl/certs /out/usr/share/doc/busybox-static /out/usr/share/doc/ca-certificates /out/home/nonroot \
 && mkdir -m 1777 /out/tmp \
 && cp /bin/busybox /out/usr/bin/nsenter \
 && find /usr/share/ca-certificates/mozilla -name '*.crt' | LC_ALL=C sort | xargs cat > /out/etc/ssl/certs/ca-certificates.crt \
 && cp /usr/share/doc/busybox-static/copyright /out/usr/share/doc/busybox-static/ \
 && cp /usr/share/doc/ca-certificates/copyright /out/usr/share/doc/ca-certificates/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /out/etc/group

FROM scratch
COPY --from=debian /out/ /
COPY --from=build /out/xenclone /usr/local/bin/xenclone
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/xenclone"]
