//! One behaviour suite for `cni_sdk::net`, run against both backends.
//!
//! Every check is an `async fn(Env)` in a concern module under `tests/net/` (links, kinds,
//! moves, lookups, addresses, routes, route tables, rules, tc, sysctls). The `suite!` macro of
//! each module runs its checks against a [`FakeNetwork`](cni_sdk::net::fake::FakeNetwork) (no
//! privileges needed) and against two throwaway kernel namespaces (`nt-<pid>-<n>`); the kernel
//! half needs root and is ignored by default:
//!
//! ```text
//! cargo test -p cni-sdk --test net_behaviour -- --include-ignored
//! ```
//!
//! The kernel half never changes the host namespace: `a` and `b` are fresh namespaces that are
//! removed (with everything in them) when the test ends, even on failure. Addresses come from
//! 10.220.0.0/16 and fd00:220::/32; the route table, rule and tc checks use namespaces named
//! `nt2-<pid>-<n>` and 10.221.0.0/16 and fd00:221::/32.
//!
//! This kernel lacks dummy, ipvlan, vlan and vrf: their checks run on the fake only (named
//! `fake_only_*`), and one root test per kind (`kernel_lacks_*`) asserts that the kernel backend
//! reports them as not supported.

mod net;
