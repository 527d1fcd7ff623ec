//! `netwire` CLI: wire a named network namespace to the host (needs root).
//!
//! ```text
//! ip netns add app
//! netwire up /var/run/netns/app --host-ifname nw-app --address 10.1.0.2/24 --gateway 10.1.0.1
//! netwire verify /var/run/netns/app --host-ifname nw-app --address 10.1.0.2/24
//! netwire down /var/run/netns/app --host-ifname nw-app
//! ```

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cni_sdk::net::Net;
use ipnet::IpNet;
use netwire::{Wiring, unwire, verify, wire};

#[derive(Parser, Debug)]
#[command(name = "netwire", version, about = "Wire a network namespace to the host with a veth pair")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create and configure the pair.
    Up(Spec),
    /// Check the pair against the given settings.
    Verify(Spec),
    /// Remove the pair (succeeds when there is nothing to remove).
    Down(Spec),
}

#[derive(Args, Debug)]
struct Spec {
    /// The namespace, e.g. /var/run/netns/app.
    netns: PathBuf,
    /// Name of the namespace end.
    #[arg(long, default_value = "eth0")]
    ifname: String,
    /// Name of the host end.
    #[arg(long)]
    host_ifname: String,
    /// Address of the namespace end (repeatable).
    #[arg(long = "address")]
    addresses: Vec<IpNet>,
    /// Default gateway (also put on the host end).
    #[arg(long)]
    gateway: Option<IpAddr>,
    /// MTU of both ends.
    #[arg(long)]
    mtu: Option<u32>,
}

impl Spec {
    fn wiring(&self) -> Wiring {
        Wiring {
            host_ifname: self.host_ifname.clone(),
            ifname: self.ifname.clone(),
            mtu: self.mtu,
            addresses: self.addresses.clone(),
            gateway: self.gateway,
        }
    }
}

async fn run(cli: Cli) -> Result<String, Box<dyn std::error::Error>> {
    let host = Net::host().await?;
    match cli.cmd {
        Cmd::Up(spec) => {
            let ns = Net::open_path(&spec.netns).await?;
            let wired = wire(&host, &ns, &spec.wiring()).await?;
            Ok(format!("{} (host) <-> {} (index {})", wired.host.name, wired.inner.name, wired.inner.index))
        }
        Cmd::Verify(spec) => {
            let ns = Net::open_path(&spec.netns).await?;
            verify(&host, &ns, &spec.wiring()).await?;
            Ok("ok".to_owned())
        }
        Cmd::Down(spec) => {
            let ns = match Net::open_path(&spec.netns).await {
                Ok(ns) => Some(ns),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            };
            let removed = unwire(&host, ns.as_ref(), &spec.wiring()).await?;
            Ok(if removed { "removed" } else { "nothing to remove" }.to_owned())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(msg) => {
            let _ = writeln!(std::io::stdout(), "{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "netwire: {e}");
            ExitCode::FAILURE
        }
    }
}
