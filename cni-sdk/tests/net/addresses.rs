//! IP addresses.

use cni_sdk::net::{Address, NetErrorKind};

use super::{Env, err_kind, net, suite, user_addrs};

async fn lo_up_gets_loopback_addresses(env: Env) {
    env.a.set_up(1).await.unwrap();
    assert!(env.a.link("lo").await.unwrap().up);
    let addrs = user_addrs(env.a.link_addresses(1).await.unwrap());
    let want = vec![Address { index: 1, addr: net("127.0.0.1/8") }, Address { index: 1, addr: net("::1/128") }];
    assert_eq!(addrs, want);
    // Loopback routes live in the local table, not in main.
    assert!(super::user_routes(env.a.routes().await.unwrap()).is_empty());
}

async fn addresses_v4_and_v6(env: Env) {
    let br = env.a.bridge("br2").execute().await.unwrap();
    let i = br.index;
    let v4 = net("10.220.1.5/24");
    let v6 = net("fd00:220:1::5/64");
    env.a.add_address(i, v4).await.unwrap();
    env.a.add_address(i, v6).await.unwrap();
    let want = vec![Address { index: i, addr: v4 }, Address { index: i, addr: v6 }];
    assert_eq!(user_addrs(env.a.link_addresses(i).await.unwrap()), want);
    assert_eq!(user_addrs(env.a.addresses().await.unwrap()), want);
    assert_eq!(err_kind(env.a.add_address(i, v4).await), NetErrorKind::Exists);
    assert_eq!(err_kind(env.a.add_address(i, v6).await), NetErrorKind::Exists);
    env.a.delete_address(i, v4).await.unwrap();
    env.a.delete_address(i, v6).await.unwrap();
    assert!(user_addrs(env.a.link_addresses(i).await.unwrap()).is_empty());
    assert_eq!(err_kind(env.a.delete_address(i, v4).await), NetErrorKind::NotFound);
    assert_eq!(err_kind(env.a.delete_address(i, v6).await), NetErrorKind::NotFound);
}

suite!(lo_up_gets_loopback_addresses, addresses_v4_and_v6);
