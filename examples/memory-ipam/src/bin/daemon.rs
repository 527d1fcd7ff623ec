//! The daemon: `memory-ipamd [SOCKET]` serves until SIGTERM/SIGINT.
use std::process::ExitCode;

fn main() -> ExitCode {
    let socket = std::env::args().nth(1).unwrap_or_else(|| memory_ipam::SOCKET.to_owned());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let served = rt.block_on(async {
        cni_sdk::daemon::Daemon::builder(memory_ipam::MemoryIpam::default())
            .options(memory_ipam::options())
            .socket(socket)
            .build()?
            .serve_until_signal()
            .await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory-ipamd: {e}");
            ExitCode::FAILURE
        }
    }
}
