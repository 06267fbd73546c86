#!/usr/bin/env bash
# Builds helm, which the chart tests run (`helm lint`, `helm template` of the chart that
# `fleet operator chart` writes), into ~/.cache/fleet/helm-<version>/helm ($XDG_CACHE_HOME
# respected; $FLEET_HELM_BIN_DIR instead when set), outside the clone, so every checkout on the
# machine reuses it; from the Go module pinned in fixtures/helm (go.mod + go.sum, committed, so
# every machine builds the same sources). testing/helm.ts (helmBin()) finds it there by the
# version in that go.mod. Release tarballs are not reachable here; the Go module proxy is.
#
# Idempotent: a stamp records the version and a hash of the module files, so a rerun with
# nothing changed returns at once. The first build takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.21.4 # helm.sh/helm/v3, pinned in fixtures/helm/go.mod
mods="$PWD/fixtures/helm"
out="${FLEET_HELM_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleet/helm-$HELM_VERSION}"
stamp="$out/.versions"

inputs=$(cat "$mods/go.mod" "$mods/go.sum" | sha256sum | cut -c1-16)
want="helm=$HELM_VERSION modules=$inputs"
if [ -x "$out/helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

grep -q "helm.sh/helm/v3 $HELM_VERSION\$" "$mods/go.mod" ||
  { echo "fixtures/helm/go.mod does not pin helm.sh/helm/v3 $HELM_VERSION" >&2; exit 1; }
command -v go >/dev/null 2>&1 ||
  { echo "Go is needed to build helm (apt-get install golang-go, or Go 1.26 from go.dev)" >&2; exit 1; }

mkdir -p "$out"
rm -f "$stamp"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

# What helm's Makefile stamps: its version (else `helm version` says v3.21 "unreleased") and
# the Kubernetes version of its client-go, which `helm template` and `helm lint` report as
# .Capabilities.KubeVersion.
kube=$(cd "$mods" && go list -f '{{.Version}}' -m k8s.io/client-go) # v0.36.2 -> Kubernetes 1.36
kube_minor=$(echo "$kube" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags="$ldflags -X helm.sh/helm/v3/internal/version.metadata= -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done

echo "==> Building helm $HELM_VERSION (a few minutes on 2 cores the first time)"
(cd "$mods" && go build -trimpath -ldflags "$ldflags" -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm)
mv "$out/helm.tmp" "$out/helm"

echo "$want" > "$stamp"
echo "==> helm is in $out"
