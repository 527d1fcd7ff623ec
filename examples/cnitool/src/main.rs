//! `cnitool`: run CNI plugins by hand, or run a command in a private network namespace joined to
//! CNI networks (the CNI README's `priv-net-run.sh` flow), on the `cni_sdk::runtime` library.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use clap::{Parser, Subcommand};
use cni_sdk::netns::NamedNetns;
use cni_sdk::runtime::{CniRuntime, NetworkList, RuntimeConf, load_all, load_network};
use cni_sdk::{Attachment, Error};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha512};

const ABOUT: &str = "Run CNI plugins for a network namespace, or run a command in a private one";

const LONG_ABOUT: &str = "\
Run CNI plugins for a network namespace, or run a command in a private one.

Configuration comes from NETCONFPATH (default /etc/cni/net.d): .conflist files and legacy
.conf/.json files, loaded with libcni's rules. Plugins are looked up in CNI_PATH (default: the
directory of this binary, then /opt/cni/bin). CNI_ARGS ('K=V;K2=V2') and CAP_ARGS (a JSON object
of capability arguments) are passed to every plugin. The container ID is CNI_CONTAINERID or,
as upstream cnitool does, 'cnitool-' followed by 20 hex digits of the SHA-512 of the netns path.

Examples:
  sudo cnitool run -- ip addr                 # private netns on every configured network
  sudo cnitool add mynet /var/run/netns/test  # prints the result
  sudo cnitool del mynet /var/run/netns/test";

#[derive(Parser, Debug)]
#[command(name = "cnitool", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// Directory with network configurations.
    #[arg(long, env = "NETCONFPATH", default_value = "/etc/cni/net.d", global = true)]
    netconfpath: PathBuf,
    /// Plugin search path (colon separated).
    #[arg(long, env = "CNI_PATH", global = true)]
    cni_path: Option<String>,
    /// Extra plugin arguments, `K=V;K2=V2`.
    #[arg(long, env = "CNI_ARGS", global = true)]
    cni_args: Option<String>,
    /// Capability arguments as a JSON object, e.g. '{"portMappings":[...]}'.
    #[arg(long, env = "CAP_ARGS", global = true)]
    cap_args: Option<String>,
    /// Interface name in the container (add/check/del).
    #[arg(long, env = "CNI_IFNAME", default_value = "eth0", global = true)]
    ifname: String,
    /// Container ID (default: derived from the netns path).
    #[arg(long, env = "CNI_CONTAINERID", global = true)]
    container_id: Option<String>,
    /// Result cache directory.
    #[arg(long, env = "CNI_CACHE_DIR", default_value = cni_sdk::runtime::DEFAULT_CACHE_DIR, global = true)]
    cache_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// ADD the network to the namespace and print the result.
    Add { net: String, netns: PathBuf },
    /// CHECK the namespace's attachment to the network.
    Check { net: String, netns: PathBuf },
    /// DEL the network from the namespace.
    Del { net: String, netns: PathBuf },
    /// GC: delete every cached attachment of the network (as upstream cnitool, no valid list).
    Gc { net: String, netns: Option<PathBuf> },
    /// STATUS of the network's plugins.
    Status { net: String, netns: Option<PathBuf> },
    /// Print the versions a plugin supports.
    Version {
        /// Plugin type (binary name).
        plugin: String,
    },
    /// Check that every plugin of the network exists and supports its version.
    Validate { net: String },
    /// Run COMMAND in a new network namespace attached to every configured network (or the
    /// --net ones), then detach and remove the namespace, whatever happens.
    Run {
        /// Networks to join, in order (default: all, in configuration order).
        #[arg(long = "net", value_name = "NAME")]
        nets: Vec<String>,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
}

/// The networks `run` uses when the configuration directory has none: the CNI README's `mynet`
/// (bridge cni0 with a gateway, masquerading, host-local 10.22.0.0/16, default route) and
/// loopback.
const DEFAULT_NETWORKS: [&str; 2] = [
    r#"{"cniVersion":"1.0.0","name":"mynet","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","subnet":"10.22.0.0/16","routes":[{"dst":"0.0.0.0/0"}]}}]}"#,
    r#"{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}"#,
];

fn container_id(cli: &Cli, netns: &Path) -> String {
    if let Some(id) = &cli.container_id {
        return id.clone();
    }
    let abs = std::path::absolute(netns).unwrap_or_else(|_| netns.to_owned());
    let sum = Sha512::digest(abs.as_os_str().as_encoded_bytes());
    let hex: String = sum[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

fn plugin_dirs(cli: &Cli) -> Vec<PathBuf> {
    if let Some(p) = cli.cni_path.as_deref().filter(|p| !p.is_empty()) {
        return std::env::split_paths(p).filter(|p| !p.as_os_str().is_empty()).collect();
    }
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_owned)) {
        dirs.push(dir);
    }
    dirs.push(PathBuf::from("/opt/cni/bin"));
    dirs
}

fn runtime_conf(cli: &Cli, netns: &Path, ifname: &str) -> Result<RuntimeConf, Error> {
    let mut rt = RuntimeConf::new(&container_id(cli, netns), &netns.display().to_string(), ifname);
    if let Some(raw) = cli.cni_args.as_deref().filter(|s| !s.is_empty()) {
        for item in raw.split(';') {
            match item.split_once('=') {
                Some((k, v)) if !k.is_empty() && !v.is_empty() => rt.args.push((k.into(), v.into())),
                _ => return Err(Error::invalid_config(format!("bad CNI_ARGS item {item:?}"))),
            }
        }
    }
    if let Some(raw) = cli.cap_args.as_deref().filter(|s| !s.is_empty()) {
        let caps: Map<String, Value> =
            serde_json::from_str(raw).map_err(|e| Error::invalid_config(format!("bad CAP_ARGS: {e}")))?;
        rt.capability_args = caps;
    }
    Ok(rt)
}

fn runtime(cli: &Cli) -> Result<CniRuntime, Error> {
    CniRuntime::builder().plugin_dirs(plugin_dirs(cli)).cache_dir(&cli.cache_dir).build()
}

fn report(e: &Error) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "cnitool: {} (CNI error code {})", e.message(), e.code());
    if let Some(d) = e.details() {
        let _ = writeln!(err, "  details: {d}");
    }
}

fn print_json(v: &Value) {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    serde::Serialize::serialize(v, &mut ser).expect("JSON values serialise");
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out);
    let _ = stdout.write_all(b"\n");
}

async fn dispatch(cli: &Cli) -> Result<u8, Error> {
    let cni = runtime(cli)?;
    match &cli.cmd {
        Cmd::Add { net, netns } => {
            let list = load_network(&cli.netconfpath, net)?;
            let out = cni.add(&list, &runtime_conf(cli, netns, &cli.ifname)?).await?;
            print_json(&out.raw);
        }
        Cmd::Check { net, netns } => {
            cni.check(&load_network(&cli.netconfpath, net)?, &runtime_conf(cli, netns, &cli.ifname)?).await?
        }
        Cmd::Del { net, netns } => {
            cni.del(&load_network(&cli.netconfpath, net)?, &runtime_conf(cli, netns, &cli.ifname)?).await?
        }
        Cmd::Gc { net, .. } => cni.gc(&load_network(&cli.netconfpath, net)?, None::<&[Attachment]>).await?,
        Cmd::Status { net, .. } => cni.status(&load_network(&cli.netconfpath, net)?).await?,
        Cmd::Version { plugin } => {
            let info = cni.version_info(plugin).await?;
            print_json(&serde_json::to_value(info).expect("serialises"));
        }
        Cmd::Validate { net } => {
            let caps = cni.validate(&load_network(&cli.netconfpath, net)?).await?;
            println!("ok, capabilities: {caps:?}");
        }
        Cmd::Run { nets, command } => return run(cli, &cni, nets, command).await,
    }
    Ok(0)
}

/// Picks the networks for `run`.
fn run_networks(cli: &Cli, names: &[String]) -> Result<Vec<NetworkList>, Error> {
    if !names.is_empty() {
        return names.iter().map(|n| load_network(&cli.netconfpath, n)).collect();
    }
    let all = load_all(&cli.netconfpath)?;
    if !all.is_empty() {
        return Ok(all);
    }
    DEFAULT_NETWORKS.iter().map(|s| NetworkList::from_bytes(s.as_bytes())).collect()
}

fn random_suffix() -> String {
    let mut buf = [0u8; 6];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf));
    if ok.is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        buf.copy_from_slice(&(nanos as u64 ^ u64::from(std::process::id())).to_le_bytes()[..6]);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signals received while `run` is in progress (0 = none).
fn watch_signals() -> Result<Arc<AtomicI32>, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let got = Arc::new(AtomicI32::new(0));
    for kind in [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()] {
        let mut s = signal(kind).map_err(|e| Error::internal("cannot install signal handlers").with_source(e))?;
        let got = got.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                got.store(kind.as_raw_value(), Ordering::SeqCst);
            }
        });
    }
    Ok(got)
}

async fn run(cli: &Cli, cni: &CniRuntime, names: &[String], command: &[String]) -> Result<u8, Error> {
    let signals = watch_signals()?;
    let networks = run_networks(cli, names)?;
    let ns = NamedNetns::create(&format!("cnitool-{}", random_suffix()))
        .map_err(|e| Error::internal("cannot create a network namespace (run as root)").with_source(e))?;
    let netns_path = ns.path().to_owned();
    let mut attached: Vec<(&NetworkList, RuntimeConf)> = Vec::new();
    let outcome = async {
        for (i, net) in networks.iter().enumerate() {
            let rt = runtime_conf(cli, &netns_path, &format!("eth{i}"))?;
            // DEL must follow every ADD, also a failed one.
            attached.push((net, rt.clone()));
            cni.add(net, &rt).await.map_err(|e| e.context(format!("attaching network {:?}", net.name())))?;
            if signals.load(Ordering::SeqCst) != 0 {
                return Err(Error::internal("interrupted"));
            }
        }
        exec_in(&ns, command, &signals).await
    }
    .await;
    let mut cleanup_failed = false;
    for (net, rt) in attached.iter().rev() {
        if let Err(e) = cni.del(net, rt).await {
            report(&e.context(format!("detaching network {:?}", net.name())));
            cleanup_failed = true;
        }
    }
    if let Err(e) = ns.remove() {
        report(&Error::internal(format!("removing {}", netns_path.display())).with_source(e));
        cleanup_failed = true;
    }
    match outcome {
        Ok(code) if cleanup_failed && code == 0 => Ok(1),
        other => other,
    }
}

/// Runs the command with the caller's stdio inside `ns`; returns its exit code (128 + signal
/// when it was killed). Signals to cnitool are forwarded to the command.
async fn exec_in(ns: &NamedNetns, command: &[String], signals: &AtomicI32) -> Result<u8, Error> {
    let netns = ns.netns().map_err(|e| Error::internal("cannot open the namespace").with_source(e))?;
    let fd = std::os::fd::AsFd::as_fd(&netns).as_raw_fd();
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
    // SAFETY: setns is async-signal-safe; the fd stays open (owned by `netns`) until the child
    // has been spawned, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(std::os::fd::BorrowedFd::borrow_raw(fd), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::internal(format!("cannot run {:?}", command[0])).with_source(e))?;
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let mut forwarded = 0;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| Error::internal("waiting for the command").with_source(e))?;
                use std::os::unix::process::ExitStatusExt as _;
                let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1);
                return Ok(u8::try_from(code).unwrap_or(1));
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                let sig = signals.load(Ordering::SeqCst);
                if sig != 0 && sig != forwarded {
                    forwarded = sig;
                    if let (Some(pid), Ok(sig)) = (pid, nix::sys::signal::Signal::try_from(sig)) {
                        let _ = nix::sys::signal::kill(pid, sig);
                    }
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            report(&Error::internal("cannot start the async runtime").with_source(e));
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(&cli));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}
