#!/usr/bin/env bash
# Provisions one Vagrant VM: container runtime, build tools, bosun. Runs as root, idempotent.
set -euo pipefail
node_ip="$1"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq containerd runc containernetworking-plugins iptables conntrack curl build-essential cmake \
  protobuf-compiler golang >/dev/null
if ! command -v cargo >/dev/null; then
  apt-get install -y -qq cargo >/dev/null
fi
cd /vagrant
cargo build --release
install -m 0755 target/release/bosun /usr/local/bin/bosun
# The Kubernetes binaries are built by the test suite's script and installed where a package would put them.
bin_dir=$(tests/e2e/build-kubernetes | tail -n 1)
install -m 0755 "$bin_dir"/kubelet "$bin_dir"/kubectl "$bin_dir"/kubeadm /usr/bin/
# The kubelet must advertise the private-network address, not the NAT interface Vagrant adds first.
mkdir -p /etc/default
echo "KUBELET_EXTRA_ARGS=--node-ip=${node_ip}" > /etc/default/kubelet
