#!/usr/bin/env bash
# Builds gocni-tool (gocni-tool.go: containerd's go-cni from Debian, over Debian's libcni) and
# prints its path. Offline: GOPATH mode, no module proxy; installs the Debian packages it needs
# when they are missing (root). Idempotent: rebuilds only when the source is newer than OUTPUT.
#
# Usage: build-gocni.sh [OUTPUT]      default OUTPUT: ./target/interop/gocni-tool
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$PWD/target/interop/gocni-tool}"
pkgs=(golang-go golang-github-containerd-go-cni-dev golang-github-appc-cni-dev containernetworking-plugins)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "gocni-tool: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
src="$here/gocni-tool.go"
if [[ -x "$out" && "$out" -nt "$src" && "$out" -nt "${BASH_SOURCE[0]}" ]]; then
	echo "$out"
	exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gopath/src/gocni-tool" "$(dirname "$out")"
cp "$src" "$work/gopath/src/gocni-tool/main.go"
(
	cd "$work/gopath/src/gocni-tool"
	env GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local \
		GOPATH="$work/gopath:/usr/share/gocode" GOCACHE="$work/gocache" \
		CGO_ENABLED=0 go build -trimpath -o "$out.tmp" .
)
mv "$out.tmp" "$out"
echo "$out"
