//! Every option at once; `init` names a constructor, so the plugin needs no `Default`.
use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

struct Bridge {
    name: String,
}

impl Bridge {
    fn new() -> Self {
        Self {
            name: "cni0".to_owned(),
        }
    }
}

#[cni_plugin(
    about = "CNI bridge plugin v0.1",
    versions = ["0.4.0", "1.0.0", "1.1.0"],
    go_strict,
    init = Bridge::new,
    crate = ::cni_sdk,
)]
impl Plugin for Bridge {
    type Config = ();

    async fn add(&self, _cx: &Context<()>) -> Result<CniResult> {
        let _ = &self.name;
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
