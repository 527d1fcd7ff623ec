//! The runtime is current-thread, so neither the plugin nor its futures need be `Send`.
use std::cell::RefCell;
use std::rc::Rc;

use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

#[derive(Default)]
struct Local {
    seen: Rc<RefCell<Vec<String>>>,
}

#[cni_plugin]
impl Plugin for Local {
    type Config = ();

    async fn add(&self, cx: &Context<()>) -> Result<CniResult> {
        let seen = Rc::clone(&self.seen);
        seen.borrow_mut().push(cx.container_id().to_owned());
        std::future::ready(()).await;
        let _still_held = seen.borrow().len();
        Ok(CniResult::default())
    }

    async fn del(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }

    async fn check(&self, _cx: &Context<()>) -> Result<()> {
        Ok(())
    }
}
