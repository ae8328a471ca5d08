#!/usr/bin/env bash
# The host lab: real Xen 4.17 and real LVM under QEMU (TCG), cached outside the clone.
#   lab.sh build     install host packages, build (or reuse) the dom0 rootfs and the images
#   lab.sh test      build, then run the Go e2e (hack/lab/e2e) against the lab: the control plane and the
#                    controller here, dom0 a real kubelet's node, the agent there as the DaemonSet pod
#                    (hack/lab/node-assets.sh builds the kubelet and containerd, cached)
#   lab.sh fixtures  build, then capture real lvm/xl outputs into hostagent/{lvm,xen}/testdata/real-lab/
#   lab.sh stress    build, then run a SIMD/TLS stress program in dom0 (checks the CPU model; XENCLONE_LAB_STRESS=4m)
#   lab.sh hold DIR  build, then boot and keep dom0 up for debugging: hack/lab/rpc.sh $(cat DIR/port) 'xl list';
#                    touch DIR/stop to end it (30 min at most)
# Recipe and traps: docs/host-lab.md (and ../shared/research/host-lab.md).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${XENCLONE_LAB_CACHE:-$HOME/.cache/xenclone/lab}
export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH

log() { printf '[lab %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
pkgline() { awk -v k="$1" '$1==k {$1=""; sub(/^ /,""); print}' "$HERE/packages.txt"; }

# The Debian mirror this machine's apt already uses.
mirror() {
	local m
	m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -oE '^(URIs:|deb) +[^ ]+' |
		awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
	echo "${m:-http://deb.debian.org/debian}"
}

host_packages() {
	local missing=()
	for p in $(pkgline host); do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
	((${#missing[@]} == 0)) && return 0
	log "installing host packages: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# The dom0 root filesystem tree, keyed by packages.txt and the mirror. ~5 min cold, network-bound.
build_rootfs() {
	local key dir
	key=$( (cat "$HERE/packages.txt"; mirror; sed -n '/^build_rootfs()/,/^}/p' "$HERE/lab.sh") | sha256sum | cut -c1-16)
	dir=$CACHE/rootfs-$key
	ROOTFS=$dir/tree
	[[ -f $dir/done ]] && { log "rootfs cached: $dir"; return 0; }
	rm -rf "$dir"; mkdir -p "$dir"
	log "debootstrap $(pkgline suite) into $dir (cold: ~4-5 min)"
	timeout 1800 debootstrap --variant=minbase --include="$(pkgline include)" "$(pkgline suite)" "$ROOTFS" "$(mirror)" >"$dir/debootstrap.log" 2>&1 ||
		{ tail -n 30 "$dir/debootstrap.log"; die "debootstrap"; }
	log "installing kernel, lvm2, xen into the rootfs"
	cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
	mount --bind /proc "$ROOTFS/proc" 2>/dev/null || true
	trap 'umount "$ROOTFS/proc" 2>/dev/null || true' RETURN
	timeout 1800 chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(pkgline install) >"$dir/install.log" 2>&1 ||
		{ tail -n 30 "$dir/install.log"; die "chroot apt-get install"; }
	chroot "$ROOTFS" apt-get clean
	touch "$dir/done"
	log "rootfs built: $(du -sh "$ROOTFS" | cut -f1)"
}

# The lab's template guest disk: MBR, one ext4 partition holding a tiny guest whose /etc carries
# the machine-specific data a clone must not inherit. Built from a directory (mkfs.ext4 -d): no
# loop device, no mount.
build_guest_disk() {
	local out=$1 work=$2 t=$2/guest-tree
	mkdir -p "$t"/{bin,sbin,dev,proc,sys,mnt,tmp,run,root,var/lib/xclab,var/lib/dhclient}
	mkdir -p "$t"/etc/{sysconfig/network-scripts,ssh,udev/rules.d,NetworkManager/system-connections}
	cp /bin/busybox "$t/bin/busybox"
	for a in sh mount umount sed grep cat ls mkdir sleep sync wc head cut dd tr ip ping nc uname; do ln -s busybox "$t/bin/$a"; done
	install -m755 "$HERE/guest/init" "$t/sbin/init"
	install -m755 "$HERE/guest/poweroff" "$t/sbin/poweroff"
	# xenstore-read/-list/-watch/-write from the rootfs's xen-utils (one binary, linked against
	# libxenstore), with the libraries the rootfs's own loader resolves for it: the guest reads
	# the host agent's guest data with them (hack/lab/guest/init xcalive) and writes what a
	# guest agent would (xcagent).
	local lib
	mkdir -p "$t/usr/bin"
	cp "$ROOTFS/usr/bin/xenstore" "$t/usr/bin/xenstore"
	for a in read list watch exists write; do ln -s xenstore "$t/usr/bin/xenstore-$a"; done
	for lib in $(chroot "$ROOTFS" ldd /usr/bin/xenstore | awk '$2=="=>" {print $3} $1 ~ /^\// {print $1}'); do
		install -D -m755 "$ROOTFS$(chroot "$ROOTFS" readlink -f "$lib")" "$t$lib"
	done
	echo golden-template >"$t/etc/hostname"
	printf '127.0.0.1 localhost\n127.0.1.1 golden-template\n' >"$t/etc/hosts"
	echo 7e3b5c1d9a2f4e6b8c0d1a2b3c4d5e6f >"$t/etc/machine-id"
	cat >"$t/etc/sysconfig/network-scripts/ifcfg-eth0" <<-'IFCFG'
	DEVICE=eth0
	HWADDR=52:54:00:de:ad:01
	BOOTPROTO=dhcp
	ONBOOT=yes
	IFCFG
	cat >"$t/etc/udev/rules.d/70-persistent-net.rules" <<-'UDEV'
	# This file was automatically generated by the /lib/udev/write_net_rules program
	SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="52:54:00:de:ad:01", ATTR{type}=="1", KERNEL=="eth*", NAME="eth0"
	UDEV
	echo 'lease { interface "eth0"; fixed-address 192.0.2.10; }' >"$t/var/lib/dhclient/dhclient-eth0.leases"
	head -c 512 /dev/urandom >"$t/var/lib/systemd-random-seed" 2>/dev/null || true
	for k in rsa ecdsa ed25519; do ssh-keygen -q -t $k -N '' -C golden-template -f "$t/etc/ssh/ssh_host_${k}_key"; done
	mkfs.ext4 -q -F -L guestroot -d "$t" "$work/guest-part.img" 60M
	rm -f "$out" && truncate -s 64M "$out"
	printf 'label: dos\nstart=2048, size=%s, type=83\n' $((60 * 2048)) | sfdisk -q "$out"
	dd if="$work/guest-part.img" of="$out" bs=1M seek=1 conv=notrunc,sparse status=none
}

# The domU's initramfs: host busybox-static plus the PV block/net drivers and ext4/vfat from the
# dom0 rootfs's kernel, in load order (modules.dep resolved by the rootfs's own modprobe).
build_domu_initrd() {
	local out=$1 work=$2 kver=$3 d=$2/domu-initrd m
	mkdir -p "$d"/{bin,lib/modules}
	cp /bin/busybox "$d/bin/busybox"
	install -m755 "$HERE/guest/initramfs-init" "$d/init"
	: >"$d/modules.order"
	for m in $(chroot "$ROOTFS" modprobe -S "$kver" --show-depends -a xen-blkfront xen-netfront crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859-1 2>/dev/null |
		awk '$1=="insmod" {print $2}' | awk '!seen[$0]++'); do
		local base=${m##*/} f
		f=$d/lib/modules/${base%.xz}; f=${f%.zst}
		case $m in
		*.xz) xz -dc "$ROOTFS$m" >"$f" ;;
		*.zst) zstd -qdc "$ROOTFS$m" >"$f" ;;
		*) cp "$ROOTFS$m" "$f" ;;
		esac
		echo "${f##*/}" >>"$d/modules.order"
	done
	grep -q xen-blkfront "$d/modules.order" || die "domU initrd: xen-blkfront not found in $kver"
	(cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
}

# Images, keyed by the rootfs and by every lab file baked into them.
build_images() {
	local key kver work
	key=$( (echo "$ROOTFS"; cat "$HERE"/dom0/* "$HERE"/guest/*; sed -n '/^build_guest_disk()/,/^}/p;/^build_domu_initrd()/,/^}/p;/^build_images()/,/^}/p' "$HERE/lab.sh") | sha256sum | cut -c1-16)
	IMAGES=$CACHE/images-$key
	[[ -f $IMAGES/done ]] && { log "images cached: $IMAGES"; return 0; }
	rm -rf "$IMAGES"; mkdir -p "$IMAGES"; work=$IMAGES/work; mkdir -p "$work"
	kver=$(ls "$ROOTFS/lib/modules" | sort -V | tail -n1)
	log "building images (kernel $kver)"
	install -m755 "$HERE/dom0/lab-init" "$ROOTFS/sbin/lab-init"
	install -m755 "$HERE/dom0/lab-rpc" "$ROOTFS/usr/local/sbin/lab-rpc"
	echo labdom0 >"$ROOTFS/etc/hostname"
	build_domu_initrd "$IMAGES/domu-initrd.gz" "$work" "$kver"
	install -D -m644 "$IMAGES/domu-initrd.gz" "$ROOTFS/var/lib/xclab/domu-initrd.gz"
	ln -sf "vmlinuz-$kver" "$ROOTFS/boot/vmlinuz-domu"
	build_guest_disk "$IMAGES/guest.img" "$work"
	mkfs.ext4 -q -F -L labroot -d "$ROOTFS" "$IMAGES/root.img" 3G
	zcat "$ROOTFS/boot/xen-4.17-amd64.gz" >"$IMAGES/xen"
	cp "$ROOTFS/boot/vmlinuz-$kver" "$IMAGES/vmlinuz"
	cp "$ROOTFS/boot/initrd.img-$kver" "$IMAGES/initrd.img"
	echo "$kver" >"$IMAGES/kernel-version"
	rm -rf "$work"
	touch "$IMAGES/done"
	log "images built: $IMAGES ($(du -sh "$IMAGES" | cut -f1))"
	prune_images
}

# Each change to a lab file makes a new ~0.9 GB images folder: keep the three newest.
prune_images() {
	local old
	for old in $(ls -1dt "$CACHE"/images-* 2>/dev/null | tail -n +4); do
		[[ $old != "$IMAGES" ]] || continue
		log "removing old images $old"
		rm -rf "$old"
	done
}

main() {
	local cmd=${1:-build}
	mkdir -p "$CACHE"
	case $cmd in
	build) host_packages; build_rootfs; build_images ;;
	test)
		host_packages; build_rootfs; build_images
		[[ -n ${KUBEBUILDER_ASSETS:-} ]] || KUBEBUILDER_ASSETS=$("$ROOT/hack/envtest-assets.sh")
		node=$("$HERE/node-assets.sh")
		log "e2e: controller here, the agent as the DaemonSet pod on dom0's kubelet (timeout 50m)"
		cd "$ROOT" && XENCLONE_LAB_IMAGES=$IMAGES XENCLONE_LAB_NODE=$node KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS \
			go test -tags lab -count=1 -timeout 50m -v -run "${LAB_RUN:-TestClones}" ./hack/lab/e2e/ ;;
	fixtures)
		host_packages; build_rootfs; build_images
		log "capturing lvm and xl outputs into hostagent/{lvm,xen}/testdata/real-lab/"
		cd "$ROOT" && XENCLONE_LAB_IMAGES=$IMAGES XENCLONE_LAB_FIXTURES=$ROOT/hostagent \
			go test -tags lab -count=1 -timeout 20m -v -run TestCaptureFixtures ./hack/lab/e2e/ ;;
	stress)
		host_packages; build_rootfs; build_images
		cd "$ROOT" && XENCLONE_LAB_IMAGES=$IMAGES go test -tags lab -count=1 -timeout 20m -v -run TestCPUStress ./hack/lab/e2e/ ;;
	hold)
		[[ -n ${2:-} ]] || die "usage: lab.sh hold DIR"
		host_packages; build_rootfs; build_images
		mkdir -p "$2"
		cd "$ROOT" && XENCLONE_LAB_IMAGES=$IMAGES XENCLONE_LAB_HOLD=$(cd "$2" && pwd) go test -tags lab -count=1 -timeout 45m -v -run TestLabHold ./hack/lab/e2e/ ;;
	*) die "usage: lab.sh build|test|fixtures|stress|hold DIR" ;;
	esac
}
main "$@"
