//! The daemon: `memory-ipamd [SOCKET]` serves until SIGTERM/SIGINT. Once the socket accepts
//! connections it prints `listening on <SOCKET>` on stdout (a readiness signal for supervisors
//! and tests).
use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let socket = std::env::args().nth(1).unwrap_or_else(|| memory_ipam::SOCKET.to_owned());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let served = rt.block_on(async {
        let bound = cni_sdk::daemon::Daemon::builder(memory_ipam::MemoryIpam::default())
            .options(memory_ipam::options())
            .socket(&socket)
            .build()?
            .bind()?;
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
