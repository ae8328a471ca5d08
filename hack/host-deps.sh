#!/usr/bin/env bash
# Installs, as root, the host tools that the host-real tests drive for real: lvm2 on loop
# devices, partitioning (sfdisk), filesystems (ext4, xfs, btrfs), and the userspace tools that
# build and check cloud-init seed images (vfat via mtools, iso9660 via genisoimage/isoinfo), and
# qemu-img (qemu-utils) for template imports from qcow2 images.
#
# Idempotent and quick when everything is present. Without root it only says what is missing:
# the tests that need those tools then skip loudly (and fail under CI=true).
set -euo pipefail

# command -> Debian package
declare -A want=(
  [lvm]=lvm2
  [sfdisk]=fdisk
  [mkfs.ext4]=e2fsprogs
  [mkfs.xfs]=xfsprogs
  [mkfs.btrfs]=btrfs-progs
  [mkfs.vfat]=dosfstools
  [mcopy]=mtools
  [genisoimage]=genisoimage
  [isoinfo]=genisoimage
  [losetup]=mount
  [blkid]=util-linux
  [qemu-img]=qemu-utils
)

missing=()
for cmd in "${!want[@]}"; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" != 0 ]; then
  echo "host-deps: not root; host-real tests will skip. Missing packages: ${missing[*]}" >&2
  exit 0
fi

echo "host-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
