//! `main = false` with the binary's `main` written by `cni_sdk::main!`, as a plugin library and
//! its one-line binary do; `name` sets the installed name.
use cni_sdk::{CniResult, Context, Plugin, PluginEntry, Result, cni_plugin};

#[derive(Default)]
pub struct Lib;

#[cni_plugin(about = "CNI lib plugin", name = "lib-plugin", main = false)]
impl Plugin for Lib {
    type Config = ();
    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        Ok(CniResult::default())
    }
    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}

const _: () = assert!(matches!(<Lib as PluginEntry>::NAME.as_bytes(), b"lib-plugin"));

cni_sdk::main!(Lib);
