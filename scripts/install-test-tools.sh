#!/usr/bin/env bash
# Installs the tools the interoperability tests drive: skopeo and umoci
# (Debian packages), crane and cosign (Go module proxy, pinned to the
# versions of the libraries in go.mod). A tool that cannot be installed is
# reported here and its tests skip, saying why.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

need_apt=()
for t in skopeo umoci; do command -v "$t" >/dev/null || need_apt+=("$t"); done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"; } >/tmp/mlenv-apt.log 2>&1; then
    echo "install-test-tools: apt-get install ${need_apt[*]} failed (their tests will skip):"; tail -5 /tmp/mlenv-apt.log
  fi
fi

modver() { go list -m -f '{{.Version}}' "$1"; }
command -v crane >/dev/null || go install "github.com/google/go-containerregistry/cmd/crane@$(modver github.com/google/go-containerregistry)" \
  || echo "install-test-tools: crane failed to install (its tests will skip)"
command -v cosign >/dev/null || go install "github.com/sigstore/cosign/v2/cmd/cosign@$(modver github.com/sigstore/cosign/v2)" \
  || echo "install-test-tools: cosign failed to install (its tests will skip)"
for t in skopeo umoci crane cosign; do printf 'install-test-tools: %-7s %s\n' "$t" "$(command -v "$t" || echo 'not installed')"; done
