//! The `ipvlan` binary: runs [`ipvlan::Ipvlan`].
cni_sdk::main!(ipvlan::Ipvlan);
