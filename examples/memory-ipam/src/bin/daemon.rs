//! The daemon: `memory-ipamd [SOCKET] [--state-dir DIR] [--durability process|power-loss]`
//! serves until SIGTERM/SIGINT. Once the socket accepts connections it prints
//! `listening on <SOCKET>` on stdout (a readiness signal for supervisors and tests).
//!
//! Without `--state-dir` the leases live in memory only and a restart forgets them; with it they
//! are also kept in DIR (flushed to disk before each answer with `--durability power-loss`).
//! Logs go to stderr (`CNI_LOG_LEVEL`, default `info`).
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use memory_ipam::{Durability, MemoryIpam};

struct Args {
    socket: String,
    state_dir: Option<PathBuf>,
    durability: Durability,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args { socket: memory_ipam::SOCKET.to_owned(), state_dir: None, durability: Durability::Process };
    let mut socket = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--state-dir" => out.state_dir = Some(args.next().ok_or("--state-dir needs a directory")?.into()),
            "--durability" => {
                out.durability = match args.next().as_deref() {
                    Some("process") => Durability::Process,
                    Some("power-loss") => Durability::PowerLoss,
                    other => return Err(format!("--durability is process or power-loss, not {other:?}")),
                }
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            path if socket.is_none() => socket = Some(path.to_owned()),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    if let Some(s) = socket {
        out.socket = s;
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "memory-ipamd: {e}\nusage: memory-ipamd [SOCKET] [--state-dir DIR] [--durability process|power-loss]"
            );
            return ExitCode::from(2);
        }
    };
    let mut env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    env.entry(cni_sdk::logging::LOG_LEVEL_ENV.to_owned()).or_insert_with(|| "info".to_owned());
    if let Some(warning) = cni_sdk::logging::init_from_env(&env) {
        eprintln!("{warning}");
    }
    let plugin = match &args.state_dir {
        None => MemoryIpam::default(),
        Some(dir) => match MemoryIpam::persistent(dir, args.durability) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("memory-ipamd: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let socket = args.socket;
    let served = rt.block_on(async {
        let bound =
            cni_sdk::daemon::Daemon::builder(plugin).options(memory_ipam::options()).socket(&socket).build()?.bind()?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {socket}");
        let _ = out.flush();
        drop(out);
        bound.serve_until_signal().await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory-ipamd: {e}");
            ExitCode::FAILURE
        }
    }
}
