//! `multi`: a minimal Multus-style meta plugin. Each entry of `delegates` is a plugin
//! configuration; the first gets `CNI_IFNAME`, the others `net1`, `net2`, …; their results are
//! merged. If any delegate fails, every delegate already added is deleted again.

use cni_sdk::{CniResult, Context, Error, Plugin, Result, cni_plugin};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The plugin's own keys.
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    /// The delegate configurations, one per interface.
    pub delegates: Vec<Map<String, Value>>,
}

#[derive(Default, Debug)]
pub struct Multi;

/// One delegate call: its type, stdin and interface name.
struct Call {
    plugin_type: String,
    stdin: Vec<u8>,
    ifname: String,
}

fn calls(cx: &Context<Config>) -> Result<Vec<Call>> {
    let delegates = &cx.plugin_config().delegates;
    if delegates.is_empty() {
        return Err(Error::invalid_config("\"delegates\" must list at least one plugin configuration"));
    }
    delegates
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let plugin_type = d.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
            if plugin_type.is_empty() {
                return Err(Error::invalid_config(format!("delegate {i} has no \"type\"")));
            }
            let mut conf = d.clone();
            conf.insert("name".into(), Value::String(cx.config().name.clone()));
            conf.insert("cniVersion".into(), Value::String(cx.config().cni_version.clone()));
            let ifname = if i == 0 { cx.ifname().to_owned() } else { format!("net{i}") };
            Ok(Call { plugin_type, stdin: serde_json::to_vec(&conf).expect("JSON"), ifname })
        })
        .collect()
}

async fn del_all(cx: &Context<Config>, calls: &[Call]) -> Result<()> {
    let mut first_error = None;
    for c in calls.iter().rev() {
        let r = cx.delegate(&c.plugin_type).stdin(c.stdin.clone()).env("CNI_IFNAME", &c.ifname).del().await;
        if let Err(e) = r {
            first_error.get_or_insert(e.context(format!("DEL of delegate {:?} ({})", c.plugin_type, c.ifname)));
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn merge(into: &mut CniResult, mut part: CniResult) {
    let offset = into.interfaces.len();
    for ip in &mut part.ips {
        ip.interface = ip.interface.map(|i| i + offset);
    }
    into.interfaces.append(&mut part.interfaces);
    into.ips.append(&mut part.ips);
    into.routes.append(&mut part.routes);
    if into.dns.is_empty() {
        into.dns = part.dns;
    }
}

#[cni_plugin(about = "CNI multi (meta) plugin v0.1.0", main = false)]
impl Plugin for Multi {
    type Config = Config;

    async fn add(&self, cx: &Context<Config>) -> Result<CniResult> {
        let calls = calls(cx)?;
        let mut merged = CniResult::default();
        for (i, c) in calls.iter().enumerate() {
            let added = cx.delegate(&c.plugin_type).stdin(c.stdin.clone()).env("CNI_IFNAME", &c.ifname).add().await;
            match added {
                Ok(part) => merge(&mut merged, part),
                Err(e) => {
                    // DEL must follow every ADD, the failed one included.
                    if let Err(cleanup) = del_all(cx, &calls[..=i]).await {
                        tracing_free_warn(&cleanup);
                    }
                    return Err(e.context(format!("delegate {i} ({:?}) failed", c.plugin_type)));
                }
            }
        }
        Ok(merged)
    }

    async fn del(&self, cx: &Context<Config>) -> Result<()> {
        del_all(cx, &calls(cx)?).await
    }

    async fn check(&self, cx: &Context<Config>) -> Result<()> {
        let net = cx.container_net().await?;
        for c in calls(cx)? {
            net.link(&c.ifname).await.map_err(|e| Error::from(e).context(format!("delegate {:?}", c.plugin_type)))?;
        }
        Ok(())
    }

    async fn status(&self, cx: &Context<Config>) -> Result<()> {
        for c in calls(cx)? {
            cx.delegate(&c.plugin_type).stdin(c.stdin).status().await?;
        }
        Ok(())
    }
}

fn tracing_free_warn(e: &Error) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "multi: cleanup after a failed ADD: {e}");
}

#[cfg(test)]
mod tests;
