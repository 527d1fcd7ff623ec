#!/usr/bin/env bash
# CI check of templates/plugin, called by .ci/run as root from the repository root:
#
#   bash templates/ci-check.sh
#
# 1. installs cargo-generate (pinned, the newest line that builds on our rustc) and
#    kubernetes-validate (PyPI; it carries the Kubernetes schemas, so it works offline) if
#    missing;
# 2. generates the template non-interactively into a temporary directory outside the
#    workspace, once per variant (main, chained, ipam), with the cni-sdk dependency pointing at
#    this checkout; checks that without `sdk_path` the dependency is cni-sdk of this checkout's
#    version from crates.io;
# 3. runs `cargo fmt --check` and `cargo clippy --all-targets -D warnings` on each, builds the
#    tests as root and runs the test binaries as uid/gid 65534, and prints the test counts
#    ("template: N passed, 0 failed"); validates each DaemonSet manifest against the Kubernetes
#    schemas (strict) and the configuration lists as JSON;
# 4. builds the three plugins and cnitool and drives them for real, inside a private "node"
#    network namespace so the host's own network is not touched: `main` with Go's host-local
#    (`cnitool run`, then add/check/del step by step), `main` with the generated `ipam` plugin
#    (`cnitool run`), and `chained` after Go's bridge and host-local (add/check/del); afterwards
#    no namespace, link, route or lease may be left.
#
# Cleans up on any exit (trap). Exits non-zero on any failure.
#
# Environment: TEMPLATE_CI_TARGET (cargo target dir for the generated crates; default
# <repo target>/template-ci, kept between runs so later runs are incremental),
# TEMPLATE_CI_KEEP=1 (keep the generated crates).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
export CARGO_TERM_COLOR=never

CARGO_GENERATE_VERSION=0.23.14
NOBODY=65534
SUBNET_PREFIX=10.231.7   # host-local range 10.231.7.0/24, only ever inside our namespaces
SUBNET_PREFIX2=10.231.9  # the generated IPAM plugin's range
SUBNET_PREFIX3=10.231.8  # bridge + the chained plugin

step() { printf '\n--> template: %s (%ss)\n' "$*" "$SECONDS"; }
fail() {
	printf 'template: FAILED: %s\n' "$*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || fail "must run as root (namespaces, setpriv)"

repo_target=${CARGO_TARGET_DIR:-$repo/target}
gen_target=${TEMPLATE_CI_TARGET:-$repo_target/template-ci}
unset CARGO_TARGET_DIR

step "tools"
for tool in jq setpriv nsenter ip; do
	if ! command -v "$tool" >/dev/null; then
		case $tool in
		jq) pkg=jq ;;
		ip) pkg=iproute2 ;;
		*) pkg=util-linux ;;
		esac
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
	fi
done
for go_plugin in host-local bridge; do
	[[ -x /usr/lib/cni/$go_plugin ]] || fail "/usr/lib/cni/$go_plugin missing (Debian package containernetworking-plugins)"
done
if ! command -v cargo-generate >/dev/null; then
	step "installing cargo-generate $CARGO_GENERATE_VERSION (about 5 minutes, once)"
	cargo install cargo-generate --locked --version "$CARGO_GENERATE_VERSION"
fi
cargo-generate --version
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
	step "installing kubernetes-validate (PyPI)"
	python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore kubernetes-validate
fi
python3 -m kubernetes_validate --version

work=$(mktemp -d /tmp/cni-template-ci.XXXXXX)
chmod 0755 "$work"
node_ns=tplci-node-$$
ctr_ns=tplci-ctr-$$
netns_before=$(ls /var/run/netns 2>/dev/null | sort || true)
host_links_before=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)

cleanup() {
	local rc=$?
	set +e
	if [[ -e /var/run/netns/$ctr_ns && -e /var/run/netns/$node_ns && -n ${cnitool:-} ]]; then
		# A failed run may have left an attachment: DEL releases its lease too.
		for net in tplci-net tplci-chain; do
			nsenter --net="/var/run/netns/$node_ns" env "${cni_env[@]}" "$cnitool" del "$net" "/var/run/netns/$ctr_ns" >/dev/null 2>&1
		done
	fi
	for ns in "$ctr_ns" "$node_ns"; do
		[[ -e /var/run/netns/$ns ]] && ip netns del "$ns"
	done
	if [[ ${TEMPLATE_CI_KEEP:-0} == 1 ]]; then
		echo "template: kept $work"
	else
		rm -rf "$work"
	fi
	((rc == 0)) || echo "template: FAILED (exit $rc)" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Generates variant $1 of the template into $work/$2 with plugin type $3 and a path dependency
# on this checkout's cni-sdk.
generate() {
	local variant=$1 name=$2 plugin_type=$3
	generate_bare "$variant" "$name" "$plugin_type" --define sdk_path="$repo/cni-sdk"
	# Start from the workspace's lock file: the same dependency versions as the SDK is tested
	# with, already downloaded; cargo drops what the crate does not use.
	cp "$repo/Cargo.lock" "$work/$name/Cargo.lock"
}

# Generates variant $1 into $work/$2 (plugin type $3) with the defines that follow.
generate_bare() {
	local variant=$1 name=$2 plugin_type=$3
	shift 3
	cargo-generate generate --path "$repo/templates/plugin" --name "$name" --destination "$work" \
		--silent --vcs none --define variant="$variant" --define plugin_type="$plugin_type" "$@"
	[[ -f $work/$name/Cargo.toml ]] || fail "cargo-generate produced no $work/$name/Cargo.toml"
	if grep -rn --exclude-dir=target -e '{{' -e '{%' "$work/$name" | grep -v '\${{' >&2; then
		fail "unrendered Liquid in $name"
	fi
	[[ -f $work/$name/src/main.rs && -f $work/$name/src/tests.rs && -f $work/$name/deploy/10-$plugin_type.conflist ]] ||
		fail "$name: the $variant variant's files were not moved into place"
	[[ ! -e $work/$name/variants && ! -e $work/$name/variant.rhai ]] || fail "$name: template machinery left in the crate"
}

# The generated crate's manifests: the DaemonSet against the Kubernetes schemas (strict: no
# unknown keys), its embedded configuration list and the sample one as JSON.
check_manifests() {
	local name=$1 plugin_type=$2 dir=$work/$1
	step "$name: kubernetes-validate deploy/daemonset.yaml, conflists"
	python3 -m kubernetes_validate --strict --quiet "$dir/deploy/daemonset.yaml" || fail "$name: daemonset.yaml is invalid"
	python3 - "$dir/deploy/daemonset.yaml" "10-$plugin_type.conflist" <<'PY' || fail "$name: the ConfigMap's conflist is not JSON"
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "ConfigMap"]
conflist = json.loads(docs[0]["data"][sys.argv[2]])
assert conflist["plugins"], "no plugins"
PY
	jq -e '.plugins | length > 0' "$dir/deploy/10-$plugin_type.conflist" >/dev/null || fail "$name: sample conflist"
}

passed_total=0
failed_total=0

# fmt, clippy, tests (as uid 65534) of the generated crate $1.
check_crate() {
	local name=$1 dir=$work/$1
	step "$name: cargo fmt --check"
	(cd "$dir" && cargo fmt --check)
	step "$name: cargo clippy --all-targets -- -D warnings"
	(cd "$dir" && CARGO_TARGET_DIR=$gen_target cargo clippy --all-targets --quiet -- -D warnings)
	step "$name: build tests (root), run them as uid $NOBODY"
	local exes
	exes=$(cd "$dir" && CARGO_TARGET_DIR=$gen_target cargo test --no-run --message-format=json --quiet |
		jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null) | .executable')
	[[ -n $exes ]] || fail "$name: no test binaries"
	mkdir -p "$work/bin-$name"
	local exe log passed failed
	while read -r exe; do
		# Copies in a world-readable directory: the target dir need not be readable by nobody.
		install -m 0755 "$exe" "$work/bin-$name/"
		exe=$work/bin-$name/$(basename "$exe")
		log=$work/bin-$name/$(basename "$exe").log
		[[ $(setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups id -u) == "$NOBODY" ]] || fail "setpriv"
		if ! (cd "$work" && HOME=/nonexistent setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups \
			"$exe" --test-threads=2) >"$log" 2>&1; then
			cat "$log"
			fail "$name: tests failed (as uid $NOBODY)"
		fi
		grep -E '^test |^test result' "$log"
		passed=$(sed -n 's/^test result: .* \([0-9]\+\) passed; \([0-9]\+\) failed.*/\1/p' "$log" | tail -1)
		failed=$(sed -n 's/^test result: .* \([0-9]\+\) passed; \([0-9]\+\) failed.*/\2/p' "$log" | tail -1)
		[[ -n $passed && -n $failed ]] || fail "$name: no test summary in $log"
		passed_total=$((passed_total + passed))
		failed_total=$((failed_total + failed))
		echo "template ($name): $passed passed, $failed failed (uid $NOBODY)"
	done <<<"$exes"
}

step "generate the three variants into $work"
generate main tplci-main tplci-veth
generate chained tplci-chained tplci-routes
generate ipam tplci-leases tplci-leases
# Without sdk_path the crate depends on this version of cni-sdk from crates.io.
generate_bare main tplci-registry tplci-registry
sdk_version=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
	jq -r '.packages[] | select(.name == "cni-sdk") | .version')
grep -qx "cni-sdk = \"$sdk_version\"" "$work/tplci-registry/Cargo.toml" ||
	fail "the template's default dependency is not cni-sdk = \"$sdk_version\": $(grep cni-sdk "$work/tplci-registry/Cargo.toml")"
grep -q "description = .*veth" "$work/tplci-main/Cargo.toml" && grep -q "description = .*chained" "$work/tplci-chained/Cargo.toml" &&
	grep -q "description = .*IPAM" "$work/tplci-leases/Cargo.toml" || fail "descriptions do not follow the variant"
check_manifests tplci-main tplci-veth
check_manifests tplci-chained tplci-routes
check_manifests tplci-leases tplci-leases
check_crate tplci-main
check_crate tplci-chained
check_crate tplci-leases
echo "template: $passed_total passed, $failed_total failed"
((failed_total == 0 && passed_total > 0)) || fail "generated tests"

step "build the plugins and cnitool"
for crate in tplci-main tplci-chained tplci-leases; do
	(cd "$work/$crate" && CARGO_TARGET_DIR=$gen_target cargo build --quiet)
done
plugin_dir=$gen_target/debug
[[ -x $plugin_dir/tplci-veth && -x $plugin_dir/tplci-routes && -x $plugin_dir/tplci-leases ]] ||
	fail "no plugin binaries in $plugin_dir"
CARGO_TARGET_DIR=$repo_target cargo build --quiet -p cnitool
cnitool=$repo_target/debug/cnitool

step "real namespaces: cnitool run with host-local IPAM"
mkdir -p "$work/conf" "$work/ipam" "$work/cache"
cat >"$work/conf/10-tplci.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "tplci-net",
  "plugins": [
    {
      "type": "tplci-veth",
      "mtu": 1400,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$SUBNET_PREFIX.0/24" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$work/ipam"
      }
    }
  ]
}
EOF
# The two generated plugins together: the veth plugin delegating to the generated IPAM plugin.
cat >"$work/conf/20-tplci-own.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "tplci-own",
  "plugins": [
    {
      "type": "tplci-veth",
      "ipam": { "type": "tplci-leases", "subnet": "$SUBNET_PREFIX2.0/24", "dataDir": "$work/leases" }
    }
  ]
}
EOF
# The chained variant after Go's bridge (with host-local): the bridge creates eth0, the chained
# plugin adds routes through it.
cat >"$work/conf/30-tplci-chained.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "tplci-chain",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "tplci-br0",
      "isGateway": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$SUBNET_PREFIX3.0/24" }]],
        "dataDir": "$work/ipam"
      }
    },
    {
      "type": "tplci-routes",
      "routes": [{ "dst": "10.231.200.0/24" }, { "dst": "10.231.201.0/24", "gw": "$SUBNET_PREFIX3.254" }]
    }
  ]
}
EOF
cni_env=(NETCONFPATH="$work/conf" CNI_PATH="$plugin_dir:/usr/lib/cni" CNI_CACHE_DIR="$work/cache")
# The plugin's "host" side is this namespace, not the machine's. (Debian's Go plugins support
# spec versions up to 1.0.0, hence the conflist's version.)
ip netns add "$node_ns"
ip -n "$node_ns" link set lo up
in_node() { nsenter --net="/var/run/netns/$node_ns" env "${cni_env[@]}" "$@"; }

in_node "$cnitool" run --net tplci-net -- ip -j addr show >"$work/run.json"
jq -e --arg p "$SUBNET_PREFIX." '
	[.[] | select(.ifname == "eth0" and .mtu == 1400 and (.flags | index("UP")))
	     | .addr_info[] | select(.family == "inet" and (.local | startswith($p)) and .prefixlen == 24)] | length == 1
' "$work/run.json" >/dev/null || {
	cat "$work/run.json"
	fail "cnitool run: eth0 with a $SUBNET_PREFIX.x/24 address did not appear"
}
addr=$(jq -r '.[] | select(.ifname == "eth0") | .addr_info[] | select(.family == "inet") | .local' "$work/run.json")
echo "template: cnitool run: eth0 got $addr/24 from host-local inside the namespace"

step "real namespaces: cnitool run with both generated plugins (veth + generated IPAM)"
in_node "$cnitool" run --net tplci-own -- ip -j addr show >"$work/run-own.json"
jq -e --arg p "$SUBNET_PREFIX2." '[.[] | select(.ifname == "eth0") | .addr_info[]
	| select(.family == "inet" and (.local | startswith($p)))] | length == 1' "$work/run-own.json" >/dev/null || {
	cat "$work/run-own.json"
	fail "cnitool run (tplci-own): eth0 without a $SUBNET_PREFIX2.x address"
}
echo "template: cnitool run: eth0 got $(jq -r '.[] | select(.ifname == "eth0") | .addr_info[] | select(.family == "inet") | .local' "$work/run-own.json") from the generated IPAM plugin"

step "real namespaces: cnitool add / check / del"
ip netns add "$ctr_ns"
in_node "$cnitool" add tplci-net "/var/run/netns/$ctr_ns" >"$work/add.json"
jq -e '.ips[0].address | startswith("'"$SUBNET_PREFIX"'.")' "$work/add.json" >/dev/null || {
	cat "$work/add.json"
	fail "ADD result has no address"
}
# (Output is captured before grep: `cmd | grep -q` can fail under pipefail when grep exits early.)
out=$(ip -n "$ctr_ns" route show default)
grep -q "via $SUBNET_PREFIX.1 dev eth0" <<<"$out" || fail "no default route in the container: $out"
host_veth=$(jq -r '.interfaces[0].name' "$work/add.json")
out=$(ip -n "$node_ns" -o addr show dev "$host_veth")
grep -q "inet $SUBNET_PREFIX.1/32" <<<"$out" || fail "gateway not on $host_veth: $out"
out=$(ip -n "$node_ns" route show)
grep -q "^$(jq -r '.ips[0].address | split("/")[0]' "$work/add.json") dev $host_veth" <<<"$out" ||
	fail "no host route to the container: $out"
ip -n "$ctr_ns" -4 route get "$SUBNET_PREFIX.1" >/dev/null || fail "gateway unroutable in the container"
in_node "$cnitool" check tplci-net "/var/run/netns/$ctr_ns"
echo "template: ADD and CHECK ok ($host_veth <-> eth0)"
in_node "$cnitool" del tplci-net "/var/run/netns/$ctr_ns"
in_node "$cnitool" del tplci-net "/var/run/netns/$ctr_ns" # idempotent
out=$(ip -n "$ctr_ns" -o link show)
grep -v ': lo:' <<<"$out" && fail "links left in the container after DEL"

step "real namespaces: the chained variant after bridge: cnitool add / check / del"
in_node "$cnitool" add tplci-chain "/var/run/netns/$ctr_ns" >"$work/chain.json"
jq -e --arg gw "$SUBNET_PREFIX3.1" '[.routes[] | select(.dst == "10.231.200.0/24" and .gw == $gw)] | length == 1' \
	"$work/chain.json" >/dev/null || {
	cat "$work/chain.json"
	fail "the chained plugin's route is not in the final result"
}
out=$(ip -n "$ctr_ns" route show)
grep -q "^10.231.200.0/24 via $SUBNET_PREFIX3.1 dev eth0" <<<"$out" || fail "chained route 1 missing in the container: $out"
grep -q "^10.231.201.0/24 via $SUBNET_PREFIX3.254 dev eth0" <<<"$out" || fail "chained route 2 missing in the container: $out"
# CHECK runs bridge's CHECK (which verifies every route of the final result, the chained
# plugin's too) and the chained plugin's.
in_node "$cnitool" check tplci-chain "/var/run/netns/$ctr_ns"
ip -n "$ctr_ns" route del 10.231.200.0/24
if in_node "$cnitool" check tplci-chain "/var/run/netns/$ctr_ns" 2>"$work/check-broken.err"; then
	fail "CHECK passed with a chained route missing"
fi
echo "template: chained: routes added after bridge, CHECK passes, and fails once a route is gone ($(head -c 200 "$work/check-broken.err"))"
in_node "$cnitool" del tplci-chain "/var/run/netns/$ctr_ns"
in_node "$cnitool" del tplci-chain "/var/run/netns/$ctr_ns" # idempotent
out=$(ip -n "$ctr_ns" -o link show)
grep -v ': lo:' <<<"$out" && fail "links left in the container after the chain's DEL"
ip netns del "$ctr_ns"

step "nothing left behind"
# Go's bridge leaves its bridge on DEL, as designed; it goes with the node namespace.
ip -n "$node_ns" link del tplci-br0
leftover_links=$(ip -n "$node_ns" -o link show | awk -F': ' '{print $2}' | grep -vx lo || true)
[[ -z $leftover_links ]] || fail "links left in the node namespace: $leftover_links"
[[ -z $(ip -n "$node_ns" route show) ]] || fail "routes left in the node namespace: $(ip -n "$node_ns" route show)"
leases=$(find "$work/ipam" "$work/leases" -type f -name "10.231.*" 2>/dev/null || true)
[[ -z $leases ]] || fail "host-local leases left: $leases"
ip netns del "$node_ns"
netns_after=$(ls /var/run/netns 2>/dev/null | sort || true)
# Other jobs on this machine may create cnitool-* namespaces meanwhile: ours would hold the
# plugin's eth0 with an address of our subnet.
for ns in $(comm -13 <(echo "$netns_before") <(echo "$netns_after") | grep -E '^(cnitool-|tplci-)' || true); do
	if [[ $ns == tplci-* ]] || grep -q "inet 10\.231\." <<<"$(ip -n "$ns" -o addr show 2>/dev/null)"; then
		fail "namespace left: $ns"
	fi
done
host_links_after=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)
new_links=$(comm -13 <(echo "$host_links_before") <(echo "$host_links_after") | grep -E '^tplci' || true)
[[ -z $new_links ]] || fail "links left on the host: $new_links"
echo "template: no namespace, link, route or lease left"

step "ok: template: $passed_total passed, $failed_total failed"
