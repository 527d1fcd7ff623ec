//! Overriding the optional `status` and `gc`, one of them as `fn -> impl Future`.
use std::future::Future;

use cni_sdk::{Context, CniResult, Error, Plugin, Result, cni_plugin};

#[derive(Default)]
struct Full {
    ready: bool,
}

#[cni_plugin(versions = ["1.1.0"])]
impl Plugin for Full {
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

    async fn status(&self, _cx: &Context<()>) -> Result<()> {
        if self.ready {
            Ok(())
        } else {
            Err(Error::try_again_later("still starting"))
        }
    }

    fn gc(&self, cx: &Context<()>) -> impl Future<Output = Result<()>> {
        let keep = cx.gc_attachments().len();
        async move {
            let _ = keep;
            Ok(())
        }
    }
}
