#!/usr/bin/env bash
# Installs what Fleet needs on a Debian bookworm machine (idempotent, quick when done):
#   - Deno 2.9.5 from npm (the same version exists for amd64 and arm64), checked against the
#     SHA-512 pinned in packaging/deno-runtime.sha512
#   - podman + runc + netavark from Debian, busybox-static for the local test image; for the
#     tests also qemu-user-static and the arm64 libc/libgcc (the arm64 package runs under qemu)
#   - for the VM tests: qemu-system (x86 and arm, with the aarch64 UEFI firmware), qemu-utils,
#     debootstrap, dosfstools and mtools (`fleet vm image build` / `fleet vm provision`), and
#     libvirt's daemon, qemu driver and virsh without recommends (the --driver libvirt story
#     starts its own libvirtd; no systemd units), with the libvirt-qemu user the packaged
#     daemon's configuration (libvirt-daemon-system, which pulls in systemd) would create
#   - nats-server 2.10 built with `go install` (bookworm ships 2.9, which has no auth callout),
#     cached in ~/.cache/fleet/nats-server-<version>/ (outside the clone, so every checkout on
#     the machine reuses it) and installed into /usr/local/bin
#   - for the tests (`install.sh test`, the default): kube-apiserver, etcd and a node's programs
#     (kubelet, kube-controller-manager, kube-scheduler, kube-proxy) built from the Go module
#     proxy (scripts/build-kube-test-bins.sh); `install.sh demo` skips that build
# Usage: bash scripts/install.sh [test|demo]
set -euo pipefail
purpose="${1:-test}"
case "$purpose" in
  test | demo) ;;
  *) echo "usage: bash scripts/install.sh [test|demo] (got \"$purpose\")" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.5
NATS_SERVER_VERSION=v2.10.27
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

say() { printf '==> %s\n' "$*"; }

apt_pkgs=(podman runc netavark aardvark-dns busybox-static uidmap slirp4netns iptables curl)
# The package tests run the arm64 package's program under qemu-user; the enroll tests talk to
# a real sshd; the VM tests build a Debian image (debootstrap) and boot it under qemu-system.
if [ "$purpose" = test ]; then apt_pkgs+=(qemu-user-static libc6-arm64-cross libgcc-s1-arm64-cross openssh-server qemu-system-x86 qemu-system-arm qemu-efi-aarch64 qemu-utils debootstrap dosfstools mtools); fi
# The wss:// tests terminate TLS in HAProxy in front of nats-server, as the OpenShift router does.
if [ "$purpose" = test ]; then apt_pkgs+=(haproxy); fi
# The single-node cluster of the Kubernetes tests (testing/kube_node.ts) runs pods on Debian's
# containerd (1.6: kubelet 1.34 still accepts it) and CNI plugins; kube-proxy uses conntrack.
if [ "$purpose" = test ]; then apt_pkgs+=(containerd containernetworking-plugins conntrack); fi
# Installs those of the packages that are missing; apt-get options (--...) may come first.
apt_updated=""
apt_install_missing() {
  local options=() missing=() pkg
  while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do options+=("$1"); shift; done
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "Installing from Debian: ${missing[*]}"
  [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${options[@]}" "${missing[@]}" >/dev/null
}
apt_install_missing "${apt_pkgs[@]}"

if [ "$purpose" = test ]; then
  # Recommends would pull in lvm2 and the xen, lxc and vbox drivers.
  apt_install_missing --no-install-recommends libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  # libvirtd's qemu driver refuses to start without the user it runs guests as.
  getent passwd libvirt-qemu >/dev/null ||
    $SUDO useradd --system --user-group --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
fi

# Deno is the executable of its platform's npm package, checked against the SHA-512 pinned in
# packaging/deno-runtime.sha512 (which the .deb packages are held to as well). Not `npm install
# deno`: that package runs a postinstall script.
deno_arch=$(dpkg --print-architecture)
deno_sha512=$(awk -v f="$DENO_VERSION/$deno_arch/deno" '$2 == f { print $1 }' packaging/deno-runtime.sha512)
if [ -z "$deno_sha512" ]; then
  echo "No SHA-512 is pinned for Deno $DENO_VERSION on $deno_arch in packaging/deno-runtime.sha512" >&2
  exit 1
fi
deno_ok() {
  command -v deno >/dev/null 2>&1 &&
    [ "$(sha512sum "$(readlink -f "$(command -v deno)")" | cut -d' ' -f1)" = "$deno_sha512" ]
}
if ! deno_ok; then
  case "$deno_arch" in
    amd64) deno_npm=@deno/linux-x64-glibc ;;
    arm64) deno_npm=@deno/linux-arm64-glibc ;;
  esac
  say "Installing Deno $DENO_VERSION from npm ($deno_npm), checked against its pinned SHA-512"
  deno_tmp=$(mktemp -d)
  npm pack --ignore-scripts --silent "$deno_npm@$DENO_VERSION" --pack-destination "$deno_tmp" >/dev/null
  tar -xzf "$deno_tmp"/*.tgz -C "$deno_tmp" package/deno
  if ! echo "$deno_sha512  $deno_tmp/package/deno" | sha512sum --check --status; then
    echo "The deno executable in $deno_npm@$DENO_VERSION from npm is not the one pinned in" \
      "packaging/deno-runtime.sha512; it was not installed" >&2
    rm -rf "$deno_tmp"
    exit 1
  fi
  $SUDO install -m 0755 "$deno_tmp/package/deno" /usr/local/bin/deno
  rm -rf "$deno_tmp"
  if ! deno_ok; then
    echo "$(command -v deno) comes before /usr/local/bin/deno on PATH and is not the pinned Deno" >&2
    exit 1
  fi
fi

nats_ok() {
  command -v nats-server >/dev/null 2>&1 &&
    [ "$(nats-server --version | sed 's/.*v//')" = "${NATS_SERVER_VERSION#v}" ]
}
if ! nats_ok; then
  bin="${XDG_CACHE_HOME:-$HOME/.cache}/fleet/nats-server-$NATS_SERVER_VERSION"
  if [ ! -x "$bin/nats-server" ]; then
    say "Building nats-server $NATS_SERVER_VERSION with go install (about a minute)"
    mkdir -p "$bin"
    GOBIN="$bin" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
  fi
  $SUDO install -m 0755 "$bin/nats-server" /usr/local/bin/nats-server
fi

# Deno runs no npm lifecycle script (preinstall, install, postinstall) unless given
# --allow-scripts, which this never is: what runs is only what deno.lock pins.
say "Fetching the program's npm dependencies (pinned in deno.lock; their scripts are not run)"
deno install --frozen >/dev/null 2>&1 || deno install --frozen

if [ "$purpose" = test ]; then bash scripts/build-kube-test-bins.sh; fi
if [ "$purpose" = test ]; then bash scripts/build-helm.sh; fi

say "Ready: $(deno --version | head -1), nats-server $(nats-server --version | sed 's/.*v/v/'), podman $(podman --version | awk '{print $3}')"
