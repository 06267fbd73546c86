#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd the Kubernetes tests run against, and the
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and CoreDNS of the single-node
# cluster (testing/kube_node.ts), into
# ~/.cache/fleet/kube-<version>-etcd-<version>/ ($XDG_CACHE_HOME respected; $FLEET_KUBE_BIN_DIR
# instead when set), outside the clone, so every checkout on the machine reuses them; from the
# Go modules pinned in fixtures/kube-apiserver (go.mod + go.sum, committed, so every machine
# builds the same sources). testing/kube_apiserver.ts (kubeBinDir()) finds them there by the
# versions in those go.mod files. Release tarballs are not reachable here; the Go module
# proxy is, and DESIGN §7 allows it for exactly this.
#
# etcd comes from the module proxy too, not from Debian: bookworm's etcd-server is 3.4,
# too old for kube-apiserver 1.34 (it needs 3.5+), and trixie's would drag in a newer libc6.
#
# Idempotent: a stamp records the pinned versions and a hash of the module files, so a
# rerun with nothing changed returns at once. The first build takes ~15 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=v1.34.4 # k8s.io/kubernetes; its staging modules are pinned to v0.34.4 in go.mod
ETCD_VERSION=v3.6.16 # go.etcd.io/etcd/server/v3, a module of its own (see etcd/tools.go)
mods="$PWD/fixtures/kube-apiserver"
out="${FLEET_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleet/kube-$KUBE_VERSION-etcd-$ETCD_VERSION}"
stamp="$out/.versions"

inputs=$(cat "$mods/go.mod" "$mods/go.sum" "$mods/etcd/go.mod" "$mods/etcd/go.sum" \
  "$mods/coredns/go.mod" "$mods/coredns/go.sum" "$mods/coredns/main.go" | sha256sum | cut -c1-16)
want="kube-apiserver=$KUBE_VERSION etcd=$ETCD_VERSION modules=$inputs"
kube_programs="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
built=yes
for p in etcd coredns $kube_programs; do [ -x "$out/$p" ] || built=no; done
if [ "$built" = yes ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

# The pins in this script and in go.mod must agree, or the stamp would lie.
grep -q "k8s.io/kubernetes $KUBE_VERSION\$" "$mods/go.mod" ||
  { echo "fixtures/kube-apiserver/go.mod does not pin k8s.io/kubernetes $KUBE_VERSION" >&2; exit 1; }
grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$mods/etcd/go.mod" ||
  { echo "fixtures/kube-apiserver/etcd/go.mod does not pin etcd $ETCD_VERSION" >&2; exit 1; }
command -v go >/dev/null 2>&1 ||
  { echo "Go is needed to build kube-apiserver and etcd (apt-get install golang-go, or Go 1.26 from go.dev)" >&2; exit 1; }

mkdir -p "$out"
rm -f "$stamp"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

echo "==> Building etcd $ETCD_VERSION (about a minute the first time)"
(cd "$mods/etcd" && go build -trimpath -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
mv "$out/etcd.tmp" "$out/etcd"

echo "==> Building CoreDNS, the test cluster's DNS (fixtures/kube-apiserver/coredns)"
(cd "$mods/coredns" && go build -trimpath -ldflags "-s -w" -o "$out/coredns.tmp" .)
mv "$out/coredns.tmp" "$out/coredns"

# `go build` cannot stamp the release version the way Kubernetes' own build does; without
# these the server reports v0.0.0-master at /version.
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X $pkg.gitTreeState=clean"
done
# Each takes about 5 minutes on 2 cores the first time; they share most packages, so the
# Go build cache makes the later ones quicker.
for p in $kube_programs; do
  echo "==> Building $p $KUBE_VERSION"
  (cd "$mods" && go build -trimpath -ldflags "$ldflags" -o "$out/$p.tmp" "k8s.io/kubernetes/cmd/$p")
  mv "$out/$p.tmp" "$out/$p"
done

echo "$want" > "$stamp"
echo "==> etcd, coredns and $kube_programs are in $out"
