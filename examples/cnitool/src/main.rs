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
use cni_sdk::runtime::{
    CancelToken, CniRuntime, Error, NetworkList, PodNetworks, PodOptions, RuntimeConf, load_all, load_network,
};
use cni_sdk::{Attachment, ErrorKind};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha512};

const ABOUT: &str = "Run CNI plugins for a network namespace, or run a command in a private one";

const LONG_ABOUT: &str = r#"Run CNI plugins for a network namespace, or run a command in a private one.

Configuration comes from NETCONFPATH (default /etc/cni/net.d): .conflist files and legacy
.conf/.json files, loaded with libcni's rules. Plugins are looked up in CNI_PATH (default: the
directory of this binary, then /opt/cni/bin). CNI_ARGS ('K=V;K2=V2') and CAP_ARGS (a JSON object
of capability arguments) are passed to every plugin. The container ID is CNI_CONTAINERID or,
as upstream cnitool does, 'cnitool-' followed by 20 hex digits of the SHA-512 of the netns path.

Errors are printed on stderr, one line per failure naming network, plugin, verb, code, msg and
details (e.g. 'cnitool: network="mynet" plugin="bridge" verb=ADD code=7 (invalid network config)
msg="..." details="..."'), or with --json as one JSON object.

Examples:
  sudo cnitool run -- ip addr                 # private netns on every configured network
  sudo cnitool add mynet /var/run/netns/test  # prints the result
  sudo cnitool del mynet /var/run/netns/test"#;

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
    /// Print errors as a JSON object on stderr instead of text lines.
    #[arg(long, global = true)]
    json: bool,
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
    /// GC: DEL every cached attachment of the network except the --keep ones, then send GC
    /// with the kept ones as the valid attachments (without --keep, as upstream cnitool:
    /// everything of the network is released).
    Gc {
        net: String,
        netns: Option<PathBuf>,
        /// An attachment that is still valid, as CONTAINERID/IFNAME (repeatable).
        #[arg(long = "keep", value_name = "CONTAINERID/IFNAME", value_parser = parse_attachment)]
        keep: Vec<Attachment>,
    },
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
    /// --net ones) at once (eth0, eth1, ... in configuration order; networks with only the
    /// loopback plugin: lo), then detach and remove the namespace, whatever happens.
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

/// `CNI_ARGS` pairs (`K=V;K2=V2`; empty keys and values are rejected, as upstream).
fn cni_args(cli: &Cli) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    if let Some(raw) = cli.cni_args.as_deref().filter(|s| !s.is_empty()) {
        for item in raw.split(';') {
            match item.split_once('=') {
                Some((k, v)) if !k.is_empty() && !v.is_empty() => out.push((k.into(), v.into())),
                _ => return Err(Error::new(ErrorKind::InvalidArgument, format!("bad CNI_ARGS item {item:?}"))),
            }
        }
    }
    Ok(out)
}

/// `CAP_ARGS`, a JSON object.
fn cap_args(cli: &Cli) -> Result<Map<String, Value>, Error> {
    match cli.cap_args.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(Map::new()),
        Some(raw) => {
            serde_json::from_str(raw).map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("bad CAP_ARGS: {e}")))
        }
    }
}

fn runtime_conf(cli: &Cli, netns: &Path, ifname: &str) -> Result<RuntimeConf, Error> {
    let mut rt = RuntimeConf::new(&container_id(cli, netns), &netns.display().to_string(), ifname);
    rt.args = cni_args(cli)?;
    rt.capability_args = cap_args(cli)?;
    Ok(rt)
}

fn runtime(cli: &Cli) -> Result<CniRuntime, Error> {
    CniRuntime::builder().plugin_dirs(plugin_dirs(cli)).cache_dir(&cli.cache_dir).build()
}

/// One text line for one failure: `network=".." plugin=".." verb=.. code=N (desc) msg=".."
/// details=".."` (keys that are unknown are left out).
fn error_line(e: &Error) -> String {
    let mut parts = Vec::new();
    if let Some(n) = e.network().filter(|n| !n.is_empty()) {
        parts.push(format!("network={n:?}"));
    }
    if let Some(p) = e.plugin() {
        parts.push(format!("plugin={:?}", p.plugin_type));
        if let Some(name) = &p.name {
            parts.push(format!("pluginName={name:?}"));
        }
    }
    if let Some(v) = e.verb() {
        parts.push(format!("verb={v}"));
    }
    if let Some(a) = e.attachment() {
        parts.push(format!("ifname={:?}", a.ifname));
    }
    parts.push(format!("code={}", e.code()));
    parts.push(format!("msg={:?}", e.msg()));
    if let Some(d) = e.details() {
        parts.push(format!("details={d:?}"));
    }
    parts.join(" ")
}

/// Prints every failure (and failed rollback step) of `e`: a line each, or one JSON object
/// (the first failure's fields, plus `more` and `rollback` arrays when there are others).
fn report(e: &Error, json: bool) {
    let mut err = std::io::stderr().lock();
    if json {
        let mut doc = e.to_json();
        let more: Vec<Value> = e.failures().skip(1).map(Error::to_json).collect();
        let rollback: Vec<Value> = e.rollback_failures().iter().map(Error::to_json).collect();
        if let Some(obj) = doc.as_object_mut() {
            if !more.is_empty() {
                obj.insert("more".into(), Value::Array(more));
            }
            if !rollback.is_empty() {
                obj.insert("rollback".into(), Value::Array(rollback));
            }
        }
        let _ = writeln!(err, "{doc}");
        return;
    }
    for f in e.failures() {
        let _ = writeln!(err, "cnitool: {}", error_line(f));
    }
    for f in e.rollback_failures() {
        let _ = writeln!(err, "cnitool: rollback: {}", error_line(f));
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
    let load = |net: &str| load_network(&cli.netconfpath, net);
    match &cli.cmd {
        Cmd::Add { net, netns } => {
            let out = cni.add(&load(net)?, &runtime_conf(cli, netns, &cli.ifname)?).await?;
            print_json(&out.raw);
        }
        Cmd::Check { net, netns } => cni.check(&load(net)?, &runtime_conf(cli, netns, &cli.ifname)?).await?,
        Cmd::Del { net, netns } => cni.del(&load(net)?, &runtime_conf(cli, netns, &cli.ifname)?).await?,
        Cmd::Gc { net, keep, .. } => {
            let valid = (!keep.is_empty()).then_some(keep.as_slice());
            cni.gc(&load(net)?, valid).await?;
        }
        Cmd::Status { net, .. } => println!("{}", cni.status(&load(net)?).await?),
        Cmd::Version { plugin } => {
            let info = cni.version_info(plugin).await?;
            print_json(&serde_json::to_value(info).expect("serialises"));
        }
        Cmd::Validate { net } => {
            let caps = cni.validate(&load(net)?).await?;
            println!("ok, capabilities: {caps:?}");
        }
        Cmd::Run { nets, command } => return run(cli, &cni, nets, command).await,
    }
    Ok(0)
}

/// Parses `--keep CONTAINERID/IFNAME`.
fn parse_attachment(s: &str) -> Result<Attachment, String> {
    match s.split_once('/') {
        Some((id, ifname)) if !id.is_empty() && !ifname.is_empty() && !ifname.contains('/') => {
            Ok(Attachment { container_id: id.to_owned(), ifname: ifname.to_owned() })
        }
        _ => Err(format!("expected CONTAINERID/IFNAME, got {s:?}")),
    }
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

/// The pod of `run`: each network gets `eth<n>`, except networks made only of the loopback
/// plugin, which get `lo`.
fn run_pod(cni: &CniRuntime, networks: Vec<NetworkList>) -> Result<PodNetworks, Error> {
    let mut pod = PodNetworks::builder(cni.clone());
    for net in networks {
        let loopback_only = (0..net.list.plugins.len()).all(|i| net.list.plugin_type(i) == Some("loopback"));
        pod = if loopback_only { pod.network_with_ifname(net, "lo") } else { pod.network(net) };
    }
    pod.build()
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

/// Signals received while `run` is in progress (0 = none); the first one also cancels `cancel`
/// (an attachment in progress is stopped and rolled back).
fn watch_signals(cancel: &CancelToken) -> Result<Arc<AtomicI32>, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let got = Arc::new(AtomicI32::new(0));
    for kind in [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()] {
        let mut s = signal(kind)
            .map_err(|e| Error::new(ErrorKind::Internal, "cannot install signal handlers").with_source(e))?;
        let (got, cancel) = (got.clone(), cancel.clone());
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                got.store(kind.as_raw_value(), Ordering::SeqCst);
                cancel.cancel();
            }
        });
    }
    Ok(got)
}

async fn run(cli: &Cli, cni: &CniRuntime, names: &[String], command: &[String]) -> Result<u8, Error> {
    let cancel = CancelToken::new();
    let signals = watch_signals(&cancel)?;
    let pod = run_pod(cni, run_networks(cli, names)?)?;
    let (args, caps) = (cni_args(cli)?, cap_args(cli)?);
    let ns = NamedNetns::create(&format!("cnitool-{}", random_suffix())).map_err(|e| {
        Error::new(ErrorKind::PermissionDenied, "cannot create a network namespace (run as root)").with_source(e)
    })?;
    let netns_path = ns.path().to_owned();
    let mut opts = PodOptions::new(&container_id(cli, &netns_path), &netns_path);
    for (k, v) in args {
        opts = opts.arg(&k, &v);
    }
    for (k, v) in caps {
        opts = opts.capability(&k, v);
    }
    // All networks at once; a failed setup has already rolled back what it attached.
    let outcome = match pod.setup(&opts.clone().cancel(cancel)).await {
        Ok(_) => Some(exec_in(&ns, command, &signals).await),
        Err(e) => {
            report(&e, cli.json);
            None
        }
    };
    let mut cleanup_failed = false;
    if outcome.is_some() {
        // Detach everything, continuing past failures, without the (maybe cancelled) token.
        if let Err(e) = pod.remove(&opts).await {
            report(&e, cli.json);
            cleanup_failed = true;
        }
    }
    if let Err(e) = ns.remove() {
        report(&Error::new(ErrorKind::Internal, format!("removing {}", netns_path.display())).with_source(e), cli.json);
        cleanup_failed = true;
    }
    match outcome {
        None => Ok(1),
        Some(Ok(code)) if cleanup_failed && code == 0 => Ok(1),
        Some(other) => other,
    }
}

/// Runs the command with the caller's stdio inside `ns`; returns its exit code (128 + signal
/// when it was killed). Signals to cnitool are forwarded to the command.
async fn exec_in(ns: &NamedNetns, command: &[String], signals: &AtomicI32) -> Result<u8, Error> {
    let netns = ns.netns().map_err(|e| Error::new(ErrorKind::Internal, "cannot open the namespace").with_source(e))?;
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
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(ErrorKind::NotFound, format!("cannot run {:?}", command[0])).with_source(e))?;
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let mut forwarded = 0;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status
                    .map_err(|e| Error::new(ErrorKind::Internal, "waiting for the command").with_source(e))?;
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
            report(&Error::new(ErrorKind::Internal, "cannot start the async runtime").with_source(e), cli.json);
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(&cli));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e, cli.json);
            ExitCode::FAILURE
        }
    }
}
