//! A capitalised path given to `init` is a value, not a function: here a constant, and the
//! plugin type is named by a path.
use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

mod plugins {
    pub(crate) struct Fixed {
        pub(crate) mtu: u32,
    }

    pub(crate) const DEFAULT: Fixed = Fixed { mtu: 1500 };
}

#[cni_plugin(init = plugins::DEFAULT)]
impl Plugin for plugins::Fixed {
    type Config = ();

    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        let _ = self.mtu;
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
