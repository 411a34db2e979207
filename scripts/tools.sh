#!/usr/bin/env bash
# Installs the chart tools into <repo>/.cache (nothing is added to go.mod):
#   helm        helm.sh/helm/v3/cmd/helm                      (go install, pinned)
#   kubeconform github.com/yannh/kubeconform/cmd/kubeconform  (go install, pinned)
#   Kubernetes JSON schemas for kubeconform, offline.
#
#   scripts/tools.sh          install what is missing (idempotent, fast when cached)
#   scripts/tools.sh env      print export lines (PATH, schema location)
#
# Schemas: kubeconform fetches them from GitHub by default, which these
# machines cannot reach. The PyPI package kubernetes-validate ships the same
# JSON schemas (generated from each Kubernetes release's OpenAPI) for many
# Kubernetes versions; we download its wheel with pip, take one version, and
# rewrite its "$ref"s ("/api/_definitions.json#...", resolved against an
# https $id) into file-relative ones so kubeconform resolves them on disk.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_VERSION="v3.22.0"
KUBECONFORM_VERSION="v0.8.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
K8S_VERSION="${AUTHZ_K8S_SCHEMA_VERSION:-1.33.0}"

BIN="$ROOT/.cache/bin"
SCHEMAS="$ROOT/.cache/k8s-schemas"
# kubeconform -schema-location template for these schemas (-strict picks the -strict set).
SCHEMA_LOCATION="$SCHEMAS/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"

log() { printf 'tools: %s\n' "$*" >&2; }
die() { printf 'tools: ERROR: %s\n' "$*" >&2; exit 1; }

go_install() { # name pkg version [ldflags]
	local name=$1 pkg=$2 ver=$3 ldflags="${4:-}" marker="$BIN/.$1-version"
	if [ -x "$BIN/$name" ] && [ "$(cat "$marker" 2>/dev/null)" = "$ver $ldflags" ]; then return 0; fi
	command -v go >/dev/null || die "go not found"
	log "go install $pkg@$ver (one time)"
	mkdir -p "$BIN"
	# Run outside the repo's module so nothing touches our go.mod/go.sum.
	(cd / && GOBIN="$BIN" GOFLAGS=-mod=mod go install -trimpath -ldflags="-s -w $ldflags" "$pkg@$ver") ||
		die "go install $pkg@$ver failed"
	echo "$ver $ldflags" >"$marker"
}

# helm v3.22.0 builds against k8s.io/client-go v0.37.x, i.e. Kubernetes 1.37.
helm_k8s_ldflags() {
	local p
	for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		printf -- '-X %s.k8sVersionMajor=1 -X %s.k8sVersionMinor=37 ' "$p" "$p"
	done
}

schemas() {
	local dest="$SCHEMAS/v$K8S_VERSION-local-strict" marker="$SCHEMAS/.v$K8S_VERSION-from-$KUBERNETES_VALIDATE_VERSION"
	if [ -f "$marker" ] && [ -f "$dest/deployment-apps-v1.json" ]; then return 0; fi
	log "fetching Kubernetes $K8S_VERSION JSON schemas (PyPI kubernetes-validate==$KUBERNETES_VALIDATE_VERSION, one time)"
	local dl="$SCHEMAS/dl"
	mkdir -p "$dl"
	if ! ls "$dl"/kubernetes_validate-"$KUBERNETES_VALIDATE_VERSION"-*.whl >/dev/null 2>&1; then
		python3 -m pip download --quiet --no-deps --only-binary=:all: \
			"kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" -d "$dl" >&2 ||
			die "pip download kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed"
	fi
	local whl
	whl="$(ls "$dl"/kubernetes_validate-"$KUBERNETES_VALIDATE_VERSION"-*.whl | head -n 1)"
	python3 - "$whl" "$K8S_VERSION" "$SCHEMAS" <<'PY' || die "schema extraction failed"
import json, os, re, shutil, sys, zipfile

whl, version, out = sys.argv[1], sys.argv[2], sys.argv[3]
ref = re.compile(r"^/api/_definitions\.json#")

def fix(node):
    # Drop $id so refs resolve against the file's own path, and make the
    # definitions ref file-relative.
    if isinstance(node, dict):
        node.pop("$id", None)
        for k, v in list(node.items()):
            if k == "$ref" and isinstance(v, str):
                node[k] = ref.sub("_definitions.json#", v)
            else:
                fix(v)
    elif isinstance(node, list):
        for v in node:
            fix(v)

with zipfile.ZipFile(whl) as z:
    for flavour in ("local", "local-strict"):
        prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-{flavour}/"
        names = [n for n in z.namelist() if n.startswith(prefix) and n.endswith(".json")]
        if not names:
            sys.exit(f"no schemas for Kubernetes {version} in {os.path.basename(whl)}")
        dest = os.path.join(out, f"v{version}-{flavour}")
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for n in names:
            doc = json.loads(z.read(n))
            fix(doc)
            with open(os.path.join(tmp, os.path.basename(n)), "w") as f:
                json.dump(doc, f, separators=(",", ":"))
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(tmp, dest)
        print(f"tools: {len(names)} schemas -> {dest}", file=sys.stderr)
PY
	touch "$marker"
}

case "${1:-install}" in
install)
	go_install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" "-X main.version=$KUBECONFORM_VERSION"
	# As helm's Makefile does: embed its version and the Kubernetes version its
	# client libraries target (else helm assumes Kubernetes 1.20).
	go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
		"-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean $(helm_k8s_ldflags)"
	schemas
	;;
env)
	echo "export PATH=\"$BIN:\$PATH\""
	echo "export AUTHZ_K8S_VERSION=$K8S_VERSION"
	echo "export AUTHZ_KUBECONFORM_SCHEMA_LOCATION='$SCHEMA_LOCATION'"
	;;
*)
	echo "usage: $0 [install|env]" >&2
	exit 2
	;;
esac
