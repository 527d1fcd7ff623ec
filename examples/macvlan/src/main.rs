//! The `macvlan` binary: runs [`macvlan::Macvlan`].
cni_sdk::main!(macvlan::Macvlan);
