#!/bin/bash
# Makes the lab's dom0 a Kubernetes node (run in dom0 by hack/lab/e2e, startNode):
# containerd with Debian's runc and the kubelet, from /lab/node (hack/lab/node-assets.sh), against
# the test's API server through QEMU's guestfwd (10.0.2.100:6443). dom0 has no systemd: what a
# distribution's units would do is done here by hand.
set -euo pipefail
N=/lab/node
export PATH=$N:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "[node $(cut -d' ' -f1 /proc/uptime)s] $*"; }

# The kubelet refuses cgroup v1; without systemd nothing mounts v2, and the root's controllers
# must be handed down for the kubelet's kubepods tree.
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true; done
say "cgroup2: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

# The agent's state folder is mounted with Bidirectional propagation, which runc allows only
# on a shared mount; systemd makes / shared at boot, lab-init does not.
mount --make-rshared /

# A host-network pod gets a copy of the host's /etc/hosts; debootstrap's minbase writes none,
# and containerd then fails the pod's sandbox ("open /etc/hosts: no such file or directory").
[[ -f /etc/hosts ]] || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >/etc/hosts

mkdir -p /etc/containerd /etc/cni/net.d /opt/cni/bin /var/lib/kubelet /etc/kubernetes /var/log/node
cat >/etc/containerd/config.toml <<TOML
version = 3
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '$(cat /lab/node/sandbox-image)'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = '$N/runc'
  SystemdCgroup = false
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ['/opt/cni/bin']
  conf_dir = '/etc/cni/net.d'
TOML
# Every pod on this node is on the host's network, so no CNI plugin ever runs; the runtime
# reports its network ready (and the node Ready) only once a configuration is loaded.
cat >/etc/cni/net.d/10-lab.conflist <<'JSON'
{"cniVersion": "1.0.0", "name": "lab-host-network-only", "plugins": [{"type": "loopback"}]}
JSON
setsid containerd --config /etc/containerd/config.toml >/var/log/node/containerd.log 2>&1 </dev/null &
for i in $(seq 120); do [[ -S /run/containerd/containerd.sock ]] && ctr version >/dev/null 2>&1 && break; sleep 0.5; done
ctr version >/dev/null || { tail -n 30 /var/log/node/containerd.log; exit 1; }
say "containerd up"
# --local: through the transfer service (ctr's default since 2.0) the import fails with "no
# unpack platforms defined" unless the config lists them; kind imports its images the same way.
for img in /lab/node/images/*.tar; do
	ctr -n k8s.io images import --local "$img" >/dev/null
done
say "images: $(ctr -n k8s.io images ls -q | tr '\n' ' ')"

# The agent pod reaches the API server as in-cluster clients do, at KUBERNETES_SERVICE_HOST
# (set to 127.0.0.1:6443 by the lab's overlay: the envtest serving certificate names 127.0.0.1):
# on the host's network, that is this forwarder.
setsid socat TCP-LISTEN:6443,bind=127.0.0.1,reuseaddr,fork TCP:10.0.2.100:6443 >/dev/null 2>&1 </dev/null &

cat >/etc/kubernetes/kubelet.yaml <<'YAML'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: cgroupfs
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
readOnlyPort: 0
# dom0's root is a 3 GiB overlay: the default thresholds (10-15 % free) would evict at once.
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
runtimeRequestTimeout: 10m
resolvConf: ""
YAML
setsid kubelet --config=/etc/kubernetes/kubelet.yaml --kubeconfig=/lab/kubelet.kubeconfig \
	--hostname-override="${NODE_NAME:?}" --node-ip=10.0.2.15 --v=2 >/var/log/node/kubelet.log 2>&1 </dev/null &
say "kubelet started"
