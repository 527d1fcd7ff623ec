//! `dhcp daemon [flags]`: the long-running side.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use cni_sdk::daemon::Daemon;
use cni_sdk::{PluginEntry as _, Services};

use crate::flags::{self, DaemonFlags, FlagsError};
use crate::server::DhcpDaemon;

/// The arguments after `daemon` when this process was started as the daemon: `dhcp daemon ...`,
/// or `cni-plugins dhcp daemon ...` for a multi-call binary invoked under its own name.
pub(crate) fn daemon_args() -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args().collect();
    let called = args.first().and_then(|a| std::path::Path::new(a).file_name()).and_then(|n| n.to_str());
    let skip = match (called, args.get(1).map(String::as_str), args.get(2).map(String::as_str)) {
        (_, Some("daemon"), _) => 2,
        (Some(name), Some("dhcp"), Some("daemon")) if name != "dhcp" => 3,
        _ => return None,
    };
    Some(args[skip..].to_vec())
}

/// Runs the daemon with the arguments after `daemon` and exits: 0 after SIGTERM/SIGINT, 1 when
/// it cannot start, 2 for a bad command line (Go's `flag.ExitOnError`).
#[allow(clippy::exit)]
pub(crate) fn main(args: Vec<String>) -> ! {
    let flags = match flags::parse(&args) {
        Ok(f) => f,
        Err(FlagsError::Help) => {
            eprint!("{}", flags::usage());
            std::process::exit(0)
        }
        Err(FlagsError::Invalid(msg)) => {
            eprint!("{msg}\n{}", flags::usage());
            std::process::exit(2)
        }
    };
    // Lossy: std::env::vars() panics on a variable that is not UTF-8.
    let mut env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    env.entry(cni_sdk::logging::LOG_LEVEL_ENV.to_owned()).or_insert_with(|| "info".to_owned());
    if let Some(warning) = cni_sdk::logging::init_from_env(&env) {
        eprintln!("{warning}");
    }
    let code = match run(&flags) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{e}");
            1
        }
    };
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

fn write_pidfile(flags: &DaemonFlags) -> Result<(), String> {
    let Some(path) = &flags.pidfile else { return Ok(()) };
    if !path.is_absolute() {
        return Err(format!("Error writing pidfile {:?}: path not absolute", path.display().to_string()));
    }
    std::fs::write(path, std::process::id().to_string())
        .map_err(|e| format!("Error writing pidfile {:?}: {e}", path.display().to_string()))
}

fn run(flags: &DaemonFlags) -> Result<(), String> {
    write_pidfile(flags)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start the async runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    let served = rt.block_on(local.run_until(async {
        let services = Services::system();
        let plugin = DhcpDaemon::new(flags.clone(), services.clone());
        // One ADD may retry for the whole -resendtimeout, each attempt waiting -timeout.
        let budget = flags.resend_timeout + flags.timeout * 2 + Duration::from_secs(30);
        // Bound first: a second daemon fails here, before it touches the state directory.
        let bound = Daemon::builder(plugin.clone())
            .options(crate::Dhcp::options())
            .socket(flags.socket())
            .request_timeout(budget)
            .services(services)
            .build()
            .and_then(Daemon::bind)
            .map_err(|e| {
                let detail = e.details().map(|d| format!(" ({d})")).unwrap_or_default();
                format!("Error getting listener: {}{detail}", e.message())
            })?;
        let restored = plugin
            .restore()
            .await
            .map_err(|e| format!("Error loading leases from {}: {e}", flags.state_dir().display()))?;
        if restored > 0 {
            tracing::info!("resumed {restored} lease(s) from {}", flags.state_dir().display());
        }
        bound.serve_until_signal().await.map_err(|e| {
            let detail = e.details().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("Error getting listener: {}{detail}", e.message())
        })
    }));
    if let Some(p) = &flags.pidfile {
        let _ = std::fs::remove_file(p);
    }
    served
}
