use std::marker::PhantomData;

use cni_sdk::{Context, CniResult, Plugin, Result, cni_plugin};

#[derive(Default)]
struct MyPlugin<T>(PhantomData<T>);

#[cni_plugin]
impl<T> Plugin for MyPlugin<T> {
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
