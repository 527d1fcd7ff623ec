//! The dispatcher end to end (`dispatch::run_with`, no process, no kernel): an arbitrary
//! environment and stdin for a small plugin with typed keys. Whatever comes in, the run must
//! not panic, must print at most one document, and that document must be the one the exit code
//! promises: a result (or nothing) on exit 0, a CNI error object with a code on exit 1.
#![no_main]

use std::collections::BTreeMap;

use cni_sdk::dispatch::{Invocation, run_with};
use cni_sdk::{CniResult, Context, Error, Plugin, PluginOptions, Result, Services};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    fail: bool,
}

#[derive(Debug)]
struct Probe;

impl Plugin for Probe {
    type Config = Conf;

    async fn add(&self, cx: &Context<Conf>) -> Result<CniResult> {
        let conf = cx.plugin_config();
        if conf.fail {
            return Err(Error::invalid_config(format!(
                "asked to fail (mtu {:?}, {} names)",
                conf.mtu,
                conf.names.len()
            )));
        }
        let _ = (cx.args().get("IP"), cx.runtime_config(), cx.netns(), cx.cni_path().len());
        Ok(cx.prev_result().cloned().unwrap_or_default())
    }

    async fn del(&self, cx: &Context<Conf>) -> Result<()> {
        let _ = (cx.prev_result(), cx.args().ip());
        Ok(())
    }

    async fn check(&self, cx: &Context<Conf>) -> Result<()> {
        match cx.prev_result() {
            Some(_) => Ok(()),
            None => Err(Error::invalid_config("CHECK needs prevResult")),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    command: u8,
    /// Raw command string, used when `command` selects none of the verbs.
    raw_command: String,
    container_id: String,
    netns: String,
    ifname: String,
    args: String,
    path: String,
    /// Which of the variables above are set at all (bit per variable).
    present: u8,
    extra: Vec<(String, String)>,
    stdin: Vec<u8>,
}

const VERBS: [&str; 6] = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"];

fuzz_target!(|input: Input| {
    let mut env = BTreeMap::new();
    for (k, v) in input.extra {
        env.insert(k, v);
    }
    let command = VERBS.get(usize::from(input.command)).map_or(input.raw_command, |v| (*v).to_owned());
    let vars = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", input.container_id),
        ("CNI_NETNS", input.netns),
        ("CNI_IFNAME", input.ifname),
        ("CNI_ARGS", input.args),
        ("CNI_PATH", input.path),
    ];
    for (i, (k, v)) in vars.into_iter().enumerate() {
        if input.present & (1 << i) == 0 || i == 0 {
            env.insert(k.to_owned(), v);
        }
    }
    let options = PluginOptions::new("fuzz probe").max_stdin_bytes(64 << 10);
    let mut stdin: &[u8] = &input.stdin;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let io = Invocation { env, stdin: &mut stdin, stdout: &mut stdout, stderr: &mut stderr };
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let code = rt.block_on(run_with(&Probe, &options, io, Services::unavailable()));
    let text = std::str::from_utf8(&stdout).expect("stdout is UTF-8");
    if text.trim().is_empty() {
        assert_eq!(code, 0, "a failure always prints an error object");
        return;
    }
    let doc: serde_json::Value = serde_json::from_str(text).expect("stdout is one JSON document");
    if code == 0 {
        assert!(doc.get("code").is_none(), "exit 0 with an error object: {text}");
    } else {
        assert_eq!(code, 1);
        assert!(doc["code"].as_u64().is_some_and(|c| c > 0), "exit {code} without an error code: {text}");
        assert!(doc["msg"].is_string(), "error object without msg: {text}");
    }
});
