//! Per-namespace sysctls.

use cni_sdk::net::NetErrorKind;

use super::{Env, err_kind, suite};

async fn sysctls(env: Env) {
    let n = &env.a;
    // A new namespace inherits IPv4 forwarding from the host's (kernel default with
    // devconf_inherit_init_net=0), so flip whatever it is.
    let before = n.sysctl("net.ipv4.ip_forward").await.unwrap();
    assert_eq!(env.b.sysctl("net.ipv4.ip_forward").await.unwrap(), before);
    let flipped = if before == "1" { "0" } else { "1" };
    n.set_sysctl("net.ipv4.ip_forward", flipped).await.unwrap();
    assert_eq!(n.sysctl("net/ipv4/ip_forward").await.unwrap(), flipped);
    assert_eq!(n.sysctl("net.ipv4.conf.all.forwarding").await.unwrap(), flipped);
    // The other namespace is untouched.
    assert_eq!(env.b.sysctl("net.ipv4.ip_forward").await.unwrap(), before);
    let (v, _) = n.veth("sy0", "sy1").execute().await.unwrap();
    let key = format!("net/ipv6/conf/{}/accept_ra", v.name);
    assert_eq!(n.sysctl(&key).await.unwrap(), "1");
    n.set_sysctl(&key, "0").await.unwrap();
    assert_eq!(n.sysctl(&key).await.unwrap(), "0");
    assert_eq!(n.sysctl("net.ipv6.conf.sy0.disable_ipv6").await.unwrap(), "0");
    assert_eq!(err_kind(n.sysctl("net.ipv4.no_such_key").await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.set_sysctl("net.ipv4.no_such_key", "1").await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.sysctl("net/ipv6/conf/nosuchdev/accept_ra").await), NetErrorKind::NotFound);
    assert_eq!(err_kind(n.sysctl("kernel.hostname").await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(n.sysctl("net/../kernel/hostname").await), NetErrorKind::InvalidArgument);
    assert_eq!(err_kind(n.set_sysctl("net.ipv4.ip_forward", "abc").await), NetErrorKind::InvalidArgument);
    // Per-link keys go with the link.
    n.delete_link(v.index).await.unwrap();
    assert_eq!(err_kind(n.sysctl(&key).await), NetErrorKind::NotFound);
}

async fn per_link_sysctls_follow_a_rename(env: Env) {
    let n = &env.a;
    let (v, _) = n.veth("sr0", "sr1").execute().await.unwrap();
    n.set_sysctl("net/ipv4/conf/sr0/arp_notify", "1").await.unwrap();
    n.set_sysctl("net/ipv6/conf/sr0/ndisc_notify", "1").await.unwrap();
    n.rename_link(v.index, "sr9").await.unwrap();
    assert_eq!(n.sysctl("net/ipv4/conf/sr9/arp_notify").await.unwrap(), "1");
    assert_eq!(n.sysctl("net/ipv6/conf/sr9/ndisc_notify").await.unwrap(), "1");
    assert_eq!(err_kind(n.sysctl("net/ipv4/conf/sr0/arp_notify").await), NetErrorKind::NotFound);
    // A moved link starts over in its new namespace.
    let moved = n.move_link(v.index, &env.b).await.unwrap();
    assert_eq!(env.b.sysctl(&format!("net/ipv4/conf/{}/arp_notify", moved.name)).await.unwrap(), "0");
}

suite!(sysctls, per_link_sysctls_follow_a_rename);
