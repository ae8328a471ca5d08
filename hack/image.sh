#!/usr/bin/env bash
# Builds xenclone's one image (manager, hostagent and playground are roles of one binary) as an
# OCI archive, without a container engine: `make image` runs it.
#
#   hack/image.sh [OUT]     OUT defaults to bin/xenclone-image.tar
#
# The image holds only what the roles need inside a container:
#   /usr/local/bin/xenclone           the static binary (CGO off, -trimpath, version stamped)
#   /usr/bin/nsenter                  Debian's busybox-static, pinned: the agent runs the host's
#                                     lvm, xl, losetup and mount in PID 1's namespaces through it
#                                     (busybox picks its nsenter applet from the name)
#   /etc/ssl/certs/ca-certificates.crt  Debian's Mozilla roots, pinned: template imports over
#                                     https without a caBundle
#   /etc/passwd, /etc/group, /tmp     root and the nonroot user 65532 the manager runs as
# lvm2 and xl are never in the image: they are the host's.
#
# Reproducible: the same source, Go toolchain and pinned packages give the same digest (files
# owned by root, times set to the commit's). Knobs: IMG (the name in the archive), VERSION,
# BUSYBOX_VERSION, CA_CERTIFICATES_VERSION (Debian versions; `apt-cache policy` lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

out=${1:-bin/xenclone-image.tar}
tag=${IMG:-ghcr.io/xenclone/xenclone:latest}
version=${VERSION:-dev}
busybox=${BUSYBOX_VERSION:-1:1.35.0-4+deb12u1+b1}
cacerts=${CA_CERTIFICATES_VERSION:-20230311+deb12u1}
cache=${XENCLONE_CACHE:-$HOME/.cache/xenclone}/image
arch=$(go env GOARCH)
created=$(git log -1 --format=%ct 2>/dev/null || echo 0)

# deb NAME VERSION VAR: the package's files, downloaded once into the cache and unpacked.
deb() {
	local d="$cache/${1}_${2//:/%3a}_$arch"
	if [[ ! -f $d/.done ]]; then
		rm -rf "$d" && mkdir -p "$d/deb"
		if ! (cd "$d/deb" && apt-get download -q "$1:$arch=$2" >/dev/null 2>&1); then
			[[ $(id -u) == 0 ]] && apt-get update -qq >/dev/null 2>&1 || true
			(cd "$d/deb" && apt-get download -q "$1:$arch=$2" >/dev/null) || {
				echo "image: cannot download Debian package $1=$2 for $arch; set $3 to a version 'apt-cache policy $1' lists (after apt-get update)" >&2
				exit 1
			}
		fi
		dpkg-deb -x "$d"/deb/*.deb "$d/root"
		touch "$d/.done"
	fi
	echo "$d/root"
}

bb=$(deb busybox-static "$busybox" BUSYBOX_VERSION)
ca=$(deb ca-certificates "$cacerts" CA_CERTIFICATES_VERSION)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$version" -o "$work/xenclone" .
# The bundle update-ca-certificates would write, in a fixed order.
find "$ca/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat >"$work/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$work/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$work/group"

mkdir -p "$(dirname "$out")"
go run ./hack/image -out "$out" -tag "$tag" -arch "$arch" -created "$created" \
	-file "usr/local/bin/xenclone=$work/xenclone:0755" \
	-file "usr/bin/nsenter=$bb/bin/busybox:0755" \
	-file "usr/share/doc/busybox-static/copyright=$bb/usr/share/doc/busybox-static/copyright:0644" \
	-file "etc/ssl/certs/ca-certificates.crt=$work/ca-certificates.crt:0644" \
	-file "usr/share/doc/ca-certificates/copyright=$ca/usr/share/doc/ca-certificates/copyright:0644" \
	-file "etc/passwd=$work/passwd:0644" \
	-file "etc/group=$work/group:0644" \
	-dir "tmp:1777" -dir "home/nonroot:0755" \
	-label "org.opencontainers.image.source=https://github.com/xenclone/xenclone" \
	-label "org.opencontainers.image.version=$version" \
	-label "dev.xenclone.debian.busybox-static=$busybox" \
	-label "dev.xenclone.debian.ca-certificates=$cacerts"
