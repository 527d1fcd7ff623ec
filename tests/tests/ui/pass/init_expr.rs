//! `init` takes any expression that makes the plugin value; `go_strict = false` is explicit.
use std::collections::HashMap;

use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

struct Cached {
    leases: HashMap<String, u32>,
    limit: usize,
}

#[cni_plugin(init = Cached { leases: HashMap::new(), limit: 16 }, go_strict = false)]
impl Plugin for Cached {
    type Config = ();

    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        let _ = (self.leases.len(), self.limit);
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
