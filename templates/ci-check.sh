#!/usr/bin/env bash
# CI check of templates/plugin, called by .ci/run as root from the repository root:
#
#   bash templates/ci-check.sh
#
# 1. installs cargo-generate (pinned, the newest line that builds on our rustc) if missing;
# 2. generates the templates non-interactively into a temporary directory outside the
#    workspace: templates/plugin twice (with IPAM delegation and with static addresses) and
#    templates/ipam, with the cni-sdk
#    dependency pointing at this checkout;
# 3. runs `cargo fmt --check` and `cargo clippy --all-targets -D warnings` on each, builds the
#    tests as root and runs the test binaries as uid/gid 65534, and prints the test counts
#    ("template: N passed, 0 failed");
# 4. builds the IPAM variant's plugin binary, the generated IPAM plugin and cnitool, and drives
#    them for real: the plugin with Go's host-local (`cnitool run -- ip -j addr`, then
#    add/check/del step by step) and with the generated IPAM plugin (`cnitool run`). Everything
#    runs inside a private "node" network namespace, so the host's own network is not touched;
#    afterwards no namespace, link, route or lease may be left.
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
[[ -x /usr/lib/cni/host-local ]] || fail "/usr/lib/cni/host-local missing (Debian package containernetworking-plugins)"
if ! command -v cargo-generate >/dev/null; then
	step "installing cargo-generate $CARGO_GENERATE_VERSION (about 5 minutes, once)"
	cargo install cargo-generate --locked --version "$CARGO_GENERATE_VERSION"
fi
cargo-generate --version

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
		nsenter --net="/var/run/netns/$node_ns" env "${cni_env[@]}" "$cnitool" del tplci-net "/var/run/netns/$ctr_ns" >/dev/null 2>&1
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

# Generates template $1 into $work/$2 with the given defines.
generate() {
	local template=$1 name=$2
	shift 2
	cargo-generate generate --path "$repo/templates/$template" --name "$name" --destination "$work" \
		--silent --vcs none --define sdk_path="$repo/cni-sdk" "$@"
	[[ -f $work/$name/Cargo.toml ]] || fail "cargo-generate produced no $work/$name/Cargo.toml"
	if grep -rn --exclude-dir=target -e '{{' -e '{%' "$work/$name" | grep -v '\${{' >&2; then
		fail "unrendered Liquid in $name"
	fi
	# Start from the workspace's lock file: the same dependency versions as the SDK is tested
	# with, already downloaded; cargo drops what the crate does not use.
	cp "$repo/Cargo.lock" "$work/$name/Cargo.lock"
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

step "generate plugin (IPAM and static variants) and ipam templates into $work"
generate plugin tplci-ipam --define plugin_type=tplci-veth --define ipam=true
generate plugin tplci-static --define plugin_type=tplci-static --define ipam=false
generate ipam tplci-leases --define plugin_type=tplci-leases
check_crate tplci-ipam
check_crate tplci-static
check_crate tplci-leases
echo "template: $passed_total passed, $failed_total failed"
((failed_total == 0 && passed_total > 0)) || fail "generated tests"

step "build the plugins and cnitool"
(cd "$work/tplci-ipam" && CARGO_TARGET_DIR=$gen_target cargo build --quiet)
(cd "$work/tplci-leases" && CARGO_TARGET_DIR=$gen_target cargo build --quiet)
plugin_dir=$gen_target/debug
[[ -x $plugin_dir/tplci-veth && -x $plugin_dir/tplci-leases ]] || fail "no plugin binaries in $plugin_dir"
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
      "hostVethPrefix": "tplci",
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
      "hostVethPrefix": "tplco",
      "ipam": { "type": "tplci-leases", "subnet": "$SUBNET_PREFIX2.0/24", "dataDir": "$work/leases" }
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
ip netns del "$ctr_ns"

step "nothing left behind"
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
