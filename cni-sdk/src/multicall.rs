//! Multi-call binaries: several plugins in one executable, selected by the name it is invoked
//! under (see [`multicall!`](crate::multicall!)), and their installer.
//!
//! A multi-call binary `cni-plugins` answers:
//!
//! | invocation | does |
//! |---|---|
//! | `<dir>/bridge` (a symlink or hardlink to the binary) | runs the plugin `bridge` |
//! | `cni-plugins bridge` | the same |
//! | `cni-plugins install DIR [--only a,b] [--skip a,b] [--hardlink]` | installs the binary into `DIR` with one link per plugin ([`install`]) |
//! | `cni-plugins list` | prints the plugin names, one per line |
//!
//! Installing is what a Kubernetes DaemonSet's init container does when it lays out a node's
//! `/opt/cni/bin`: every file appears atomically (written under a temporary name in `DIR`, then
//! renamed over the old one), so a runtime that executes a plugin while the installer runs sees
//! the old file or the new one, never a partial one. Files of plugins the binary does not contain
//! are left alone.
//!
//! # In-process delegation
//!
//! With feature `exec`, a plugin run by a multi-call binary delegates to the plugins compiled
//! into the same binary without starting a process: when the executable found for the delegate's
//! type in `CNI_PATH` (libcni's lookup, [`find_in_path`](crate::exec::find_in_path)) is the
//! running executable itself (same device and inode as `/proc/self/exe`, through symlinks; a
//! hardlink counts too) and the binary has a plugin of that name, the delegate runs in this
//! process, on its own OS thread with its own current-thread tokio runtime, through the same
//! dispatcher a process would run. It gets the same environment map and stdin bytes a child
//! would get; its stdout, exit code and stderr go through the same checks as a child's
//! ([`check_output`](crate::exec::check_output), the executor's stderr sink), and the request's
//! timeout stops it at its next `.await` (reported as for a killed child). Its `tracing` events
//! go to the subscriber this process has installed. Every other case (another file in
//! `CNI_PATH`, a name this binary lacks, a failed lookup) executes the file as before.
//!
//! Setting [`NO_INPROC_ENV`] (`CNI_SDK_NO_INPROC=1`) in the environment of the multi-call binary
//! turns this off: every delegate is then executed as a process. Debug logging
//! (`CNI_LOG_LEVEL=debug`) says for each delegation which way it went.
//!
//! One difference remains: code of a delegate that reads the *process* environment
//! (`std::env::var`) instead of its request's sees the caller's, and a delegate that kills its
//! process kills the caller too.

use std::ffi::OsString;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The environment variable that turns in-process delegation off (any value but empty or `0`):
/// every delegate of a multi-call binary is then executed as a process.
pub const NO_INPROC_ENV: &str = "CNI_SDK_NO_INPROC";

/// How [`install`] lays out the plugins.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct InstallOptions {
    /// Only these plugins (all when empty).
    pub only: Vec<String>,
    /// Not these plugins.
    pub skip: Vec<String>,
    /// Hard links instead of symbolic links (for runtimes that refuse symlinks).
    pub hardlink: bool,
}

/// Copies the running executable into `dir` as `binary` and makes each plugin name in `names`
/// (filtered by `options`) a link to it, every file replaced atomically. Returns the paths
/// created or replaced, the binary first.
///
/// ```no_run
/// use cni_sdk::multicall::{install, InstallOptions};
/// let done = install("cni-plugins", &["bridge", "host-local"], "/opt/cni/bin".as_ref(), &InstallOptions::default())?;
/// assert_eq!(done.len(), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn install(binary: &str, names: &[&str], dir: &Path, options: &InstallOptions) -> io::Result<Vec<PathBuf>> {
    for name in options.only.iter().chain(&options.skip) {
        if !names.contains(&name.as_str()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{binary} has no plugin {name:?} (it has: {})", names.join(", ")),
            ));
        }
    }
    std::fs::create_dir_all(dir)?;
    let exe = std::env::current_exe()?;
    let target = dir.join(binary);
    let mut done = Vec::new();
    // The binary itself; skipped when running from the target already (re-install in place).
    if !same_file(&exe, &target) {
        let tmp = temp_name(dir, binary);
        let copied = copy_executable(&exe, &tmp).and_then(|()| std::fs::rename(&tmp, &target));
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&tmp);
            return Err(with_path(e, &target));
        }
    }
    done.push(target.clone());
    for name in names {
        let wanted = options.only.is_empty() || options.only.iter().any(|o| o == name);
        if !wanted || options.skip.iter().any(|s| s == name) {
            continue;
        }
        let path = dir.join(name);
        let tmp = temp_name(dir, name);
        let linked =
            if options.hardlink { std::fs::hard_link(&target, &tmp) } else { std::os::unix::fs::symlink(binary, &tmp) };
        let placed = linked.and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(with_path(e, &path));
        }
        done.push(path);
    }
    // Make the renames durable before reporting success.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(done)
}

fn temp_name(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.install-{}", std::process::id()))
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn copy_executable(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o755).open(to)?;
    io::copy(&mut src, &mut dst)?;
    dst.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    dst.sync_all()
}

/// The device and inode of a file (through symlinks).
#[cfg(feature = "exec")]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The executor of a plugin run by a multi-call binary: delegates to plugins of this binary
/// in-process (see the [module docs](self)), everything else through [`ProcessExec`].
///
/// [`ProcessExec`]: crate::exec::ProcessExec
#[cfg(feature = "exec")]
#[derive(Clone, Debug)]
pub(crate) struct MulticallExec {
    process: crate::exec::ProcessExec,
    entries: std::sync::Arc<[crate::__private::MulticallEntry]>,
    /// Device and inode of the running executable (`None`: unknown, never in-process).
    exe: Option<(u64, u64)>,
    /// Off by [`NO_INPROC_ENV`].
    enabled: bool,
}

/// Why a delegation runs as a process.
#[cfg(feature = "exec")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecReason {
    /// [`NO_INPROC_ENV`] is set.
    Disabled,
    /// The binary has no plugin of that name.
    NotCompiledIn,
    /// The running executable could not be identified.
    OwnExeUnknown,
    /// The lookup in `CNI_PATH` failed (the process executor reports it).
    NotFound,
    /// `CNI_PATH` leads to another file.
    OtherFile,
}

#[cfg(feature = "exec")]
impl MulticallExec {
    /// For the running multi-call binary: its plugins, its executable, and the opt-out from the
    /// process environment.
    pub(crate) fn from_process(entries: &[crate::__private::MulticallEntry]) -> Self {
        let disabled = std::env::var_os(NO_INPROC_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        Self::new(entries, file_id(Path::new("/proc/self/exe")), !disabled)
    }

    pub(crate) fn new(entries: &[crate::__private::MulticallEntry], exe: Option<(u64, u64)>, enabled: bool) -> Self {
        Self { process: crate::exec::ProcessExec::new(), entries: entries.into(), exe, enabled }
    }

    /// The in-process entry to serve `request` with, or why it runs as a process.
    pub(crate) fn choose(
        &self,
        request: &crate::exec::ExecRequest,
    ) -> Result<crate::__private::MulticallEntry, ExecReason> {
        if !self.enabled {
            return Err(ExecReason::Disabled);
        }
        let entry = self.entries.iter().find(|e| e.name == request.plugin_type).ok_or(ExecReason::NotCompiledIn)?;
        let exe = self.exe.ok_or(ExecReason::OwnExeUnknown)?;
        let path =
            crate::exec::find_in_path(&request.plugin_type, &request.cni_path).map_err(|_| ExecReason::NotFound)?;
        if file_id(&path) != Some(exe) {
            return Err(ExecReason::OtherFile);
        }
        Ok(*entry)
    }

    /// Runs `entry` on its own thread, as the process would run.
    async fn run_in_process(
        &self,
        entry: crate::__private::MulticallEntry,
        request: crate::exec::ExecRequest,
    ) -> crate::Result<crate::exec::RawOutput> {
        use crate::exec::RawOutput;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<RawOutput>();
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
        let call = crate::__private::InProcessRequest {
            env: request.env.clone(),
            stdin: request.stdin.clone(),
            // Its own delegations go the same way.
            services: crate::Services::system().with_exec(self.clone()),
            cancel: cancel_rx,
        };
        let span = tracing::Span::current();
        let run = entry.in_process;
        let spawned = std::thread::Builder::new()
            .name(format!("cni-{}", request.plugin_type))
            // As much stack as a process's main thread gets.
            .stack_size(8 << 20)
            .spawn(move || {
                let _entered = span.enter();
                // The dispatcher turns a handler's panic into an error object; a panic before
                // it (making the plugin value) ends the run as it ends a Rust process.
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(call))).unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic payload".to_owned());
                    RawOutput {
                        code: Some(101),
                        stdout: Vec::new(),
                        stderr: format!("panicked: {what}\n").into_bytes(),
                    }
                });
                let _ = done_tx.send(out);
            });
        if let Err(e) = spawned {
            let msg = format!("failed to run plugin {:?} in-process", request.plugin_type);
            return Err(crate::Error::internal(msg).with_source(e));
        }
        let finished = tokio::time::timeout(request.timeout, done_rx).await;
        // Dropping the sender stops a run still going (timeout) at its next `.await`; so does
        // dropping this future.
        drop(cancel_tx);
        match finished {
            Ok(Ok(out)) => {
                let stderr = self.process.deliver_stderr(&request, &out.stderr);
                Ok(RawOutput { stderr, ..out })
            }
            Ok(Err(_)) => Err(crate::Error::internal(format!(
                "in-process plugin {:?} ended without an outcome",
                request.plugin_type
            ))),
            Err(_) => Err(crate::Error::timeout(format!(
                "plugin {:?} timed out after {:?} and was killed",
                request.plugin_type, request.timeout
            ))),
        }
    }
}

#[cfg(feature = "exec")]
impl crate::exec::Exec for MulticallExec {
    async fn exec(&self, request: crate::exec::ExecRequest) -> crate::Result<crate::exec::RawOutput> {
        match self.choose(&request) {
            Ok(entry) => {
                tracing::debug!(plugin = %request.plugin_type, "delegate runs in-process (same executable)");
                self.run_in_process(entry, request).await
            }
            Err(reason) => {
                tracing::debug!(plugin = %request.plugin_type, ?reason, "delegate runs as a process");
                crate::exec::Exec::exec(&self.process, request).await
            }
        }
    }
}

/// What the multi-call binary was asked to do.
pub(crate) enum Invocation {
    /// Run this plugin.
    Plugin(String),
    /// `install DIR ...`.
    Install(PathBuf, InstallOptions),
    /// `list`.
    List,
    /// No or unusable arguments; print this problem and the usage.
    Usage(String),
}

/// Reads the command line of a multi-call binary named `binary`.
pub(crate) fn parse(binary: &str, args: &[OsString]) -> Invocation {
    let argv0 = args.first().cloned().unwrap_or_default();
    let called = Path::new(&argv0).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if called != binary {
        return Invocation::Plugin(called);
    }
    let rest: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    match rest.first().map(String::as_str) {
        None => Invocation::Usage("no plugin given".to_owned()),
        Some("list") => Invocation::List,
        Some("install") => {
            let mut dir = None;
            let mut options = InstallOptions::default();
            let mut it = rest[1..].iter();
            while let Some(arg) = it.next() {
                let list = |v: Option<&String>| -> Option<Vec<String>> {
                    v.map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
                };
                match arg.as_str() {
                    "--only" => match list(it.next()) {
                        Some(l) => options.only = l,
                        None => return Invocation::Usage("--only needs a list of plugin names".to_owned()),
                    },
                    "--skip" => match list(it.next()) {
                        Some(l) => options.skip = l,
                        None => return Invocation::Usage("--skip needs a list of plugin names".to_owned()),
                    },
                    "--hardlink" => options.hardlink = true,
                    flag if flag.starts_with('-') => return Invocation::Usage(format!("unknown option {flag:?}")),
                    path if dir.is_none() => dir = Some(PathBuf::from(path)),
                    extra => return Invocation::Usage(format!("unexpected argument {extra:?}")),
                }
            }
            match dir {
                Some(dir) => Invocation::Install(dir, options),
                None => Invocation::Usage("install needs a directory".to_owned()),
            }
        }
        Some(plugin) => Invocation::Plugin(plugin.to_owned()),
    }
}

/// The usage text.
pub(crate) fn usage(binary: &str, names: &[&str]) -> String {
    format!(
        "usage: {binary} PLUGIN            run a plugin (or invoke this binary through a link named like it)\n       \
         {binary} install DIR [--only a,b] [--skip a,b] [--hardlink]\n       \
         {binary} list\nplugins: {}\n",
        names.join(", ")
    )
}

/// Runs an `install` or `list` invocation; returns the exit code.
pub(crate) fn run_command(binary: &str, names: &[&str], invocation: Invocation) -> i32 {
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    match invocation {
        Invocation::List => {
            for n in names {
                let _ = writeln!(out, "{n}");
            }
            0
        }
        Invocation::Install(dir, options) => match install(binary, names, &dir, &options) {
            Ok(done) => {
                for p in done {
                    let _ = writeln!(out, "installed {}", p.display());
                }
                0
            }
            Err(e) => {
                let _ = writeln!(err, "{binary} install: {e}");
                1
            }
        },
        Invocation::Usage(problem) => {
            let _ = write!(err, "{binary}: {problem}\n{}", usage(binary, names));
            1
        }
        Invocation::Plugin(name) => {
            let _ = writeln!(
                err,
                "{binary}: invoked as {name:?}; install this binary (symlink or hardlink) under one of these names: {}",
                names.join(", ")
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn command_lines() {
        assert!(
            matches!(parse("cni-plugins", &args(&["/opt/cni/bin/bridge"])), Invocation::Plugin(p) if p == "bridge")
        );
        assert!(
            matches!(parse("cni-plugins", &args(&["cni-plugins", "ptp", "x"])), Invocation::Plugin(p) if p == "ptp")
        );
        assert!(matches!(parse("cni-plugins", &args(&["cni-plugins"])), Invocation::Usage(_)));
        assert!(matches!(parse("cni-plugins", &args(&["cni-plugins", "list"])), Invocation::List));
        match parse("cni-plugins", &args(&["cni-plugins", "install", "/d", "--only", "a,b", "--hardlink"])) {
            Invocation::Install(dir, o) => {
                assert_eq!(dir, Path::new("/d"));
                assert_eq!(o.only, ["a", "b"]);
                assert!(o.hardlink);
            }
            _ => panic!("install expected"),
        }
        assert!(matches!(parse("x", &args(&["x", "install"])), Invocation::Usage(m) if m.contains("directory")));
        assert!(
            matches!(parse("x", &args(&["x", "install", "/d", "--bogus"])), Invocation::Usage(m) if m.contains("--bogus"))
        );
    }

    #[test]
    fn install_replaces_atomically_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        // An older file of one plugin and a foreign plugin are there already.
        std::fs::write(dir.path().join("a"), b"old").unwrap();
        std::fs::write(dir.path().join("foreign"), b"keep").unwrap();
        let opts = InstallOptions { skip: vec!["c".into()], ..InstallOptions::default() };
        let done = install("multi", &["a", "b", "c"], dir.path(), &opts).unwrap();
        assert_eq!(done.len(), 3);
        assert_eq!(std::fs::read_link(dir.path().join("a")).unwrap(), Path::new("multi"));
        assert_eq!(std::fs::read_link(dir.path().join("b")).unwrap(), Path::new("multi"));
        assert!(!dir.path().join("c").exists());
        assert_eq!(std::fs::read(dir.path().join("foreign")).unwrap(), b"keep");
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("multi")).unwrap(), exe);
        // Again, with hard links: replaces the symlinks; no temporary files remain.
        let opts = InstallOptions { hardlink: true, ..InstallOptions::default() };
        install("multi", &["a", "b", "c"], dir.path(), &opts).unwrap();
        assert!(!std::fs::symlink_metadata(dir.path().join("a")).unwrap().file_type().is_symlink());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        let err =
            install("multi", &["a"], dir.path(), &InstallOptions { only: vec!["z".into()], ..Default::default() });
        assert!(err.unwrap_err().to_string().contains("no plugin \"z\""));
    }

    #[cfg(feature = "exec")]
    mod in_process {
        use std::collections::BTreeMap;
        use std::os::unix::fs::PermissionsExt as _;
        use std::time::Duration;

        use super::super::*;
        use crate::__private::{InProcessRequest, MulticallEntry};
        use crate::exec::{Exec as _, ExecRequest, RawOutput};

        /// What the script below does, in-process: stdin to `$SEEN`, then stdin back on stdout
        /// for ADD, an error object and exit code 1 otherwise.
        fn echo(request: InProcessRequest) -> RawOutput {
            let seen = request.env.get("SEEN").cloned().unwrap_or_default();
            std::fs::write(seen, &request.stdin).unwrap();
            if request.env.get("CNI_COMMAND").map(String::as_str) == Some("ADD") {
                RawOutput { code: Some(0), stdout: request.stdin, stderr: b"echo ran\n".to_vec() }
            } else {
                let stdout = br#"{"cniVersion":"1.0.0","code":7,"msg":"boom"}"#.to_vec();
                RawOutput { code: Some(1), stdout, stderr: Vec::new() }
            }
        }

        const SCRIPT: &str = "#!/bin/sh\ncat > \"$SEEN\"\nif [ \"$CNI_COMMAND\" = ADD ]; then cat \"$SEEN\"; echo echo ran >&2; exit 0; fi\nprintf '%s' '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"boom\"}'\nexit 1\n";

        fn slow(_request: InProcessRequest) -> RawOutput {
            std::thread::sleep(Duration::from_millis(300));
            RawOutput { code: Some(0), ..RawOutput::default() }
        }

        fn entry(name: &'static str, in_process: fn(InProcessRequest) -> RawOutput) -> MulticallEntry {
            fn never(_: crate::Services) -> ! {
                unreachable!("the process entry is not run by these tests")
            }
            MulticallEntry { name, run: never, in_process }
        }

        /// `multi` (the "running executable", a script), `a` a symlink to it, `f` a symlink to
        /// `a`, `b` a hardlink, `c` a copy, `d` a symlink to it under a name not compiled in.
        fn layout() -> (tempfile::TempDir, MulticallExec) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path();
            std::fs::write(p.join("multi"), SCRIPT).unwrap();
            std::fs::set_permissions(p.join("multi"), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::symlink("multi", p.join("a")).unwrap();
            std::os::unix::fs::symlink(p.join("a"), p.join("f")).unwrap();
            std::fs::hard_link(p.join("multi"), p.join("b")).unwrap();
            std::fs::copy(p.join("multi"), p.join("c")).unwrap();
            std::os::unix::fs::symlink("multi", p.join("d")).unwrap();
            let entries: Vec<MulticallEntry> =
                ["a", "b", "c", "e", "f"].into_iter().map(|n| entry(n, echo)).chain([entry("slow", slow)]).collect();
            std::os::unix::fs::symlink("multi", p.join("slow")).unwrap();
            let exec = MulticallExec::new(&entries, file_id(&p.join("multi")), true);
            (dir, exec)
        }

        fn request(dir: &Path, plugin: &str, verb: &str, seen: &str) -> ExecRequest {
            let env: BTreeMap<String, String> = [
                ("CNI_COMMAND", verb),
                ("CNI_CONTAINERID", "c1"),
                ("SEEN", &dir.join(seen).display().to_string()),
                ("PATH", "/usr/bin:/bin"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            ExecRequest {
                plugin_type: plugin.to_owned(),
                cni_path: vec![PathBuf::from("/nonexistent-cni-path"), dir.to_path_buf()],
                env,
                stdin: br#"{"cniVersion":"1.0.0","name":"n","type":"x"}"#.to_vec(),
                timeout: Duration::from_secs(20),
            }
        }

        #[test]
        fn same_file_decision_follows_symlinks_and_hardlinks_only() {
            let (dir, exec) = layout();
            let d = dir.path();
            let name = |r: Result<MulticallEntry, ExecReason>| r.map(|e| e.name);
            assert_eq!(name(exec.choose(&request(d, "a", "ADD", "s"))), Ok("a"), "symlink");
            assert_eq!(name(exec.choose(&request(d, "f", "ADD", "s"))), Ok("f"), "symlink to a symlink");
            assert_eq!(name(exec.choose(&request(d, "b", "ADD", "s"))), Ok("b"), "hardlink");
            assert_eq!(name(exec.choose(&request(d, "c", "ADD", "s"))), Err(ExecReason::OtherFile), "copy");
            assert_eq!(name(exec.choose(&request(d, "d", "ADD", "s"))), Err(ExecReason::NotCompiledIn));
            assert_eq!(name(exec.choose(&request(d, "e", "ADD", "s"))), Err(ExecReason::NotFound));
            let entries: Vec<MulticallEntry> = exec.entries.to_vec();
            let off = MulticallExec::new(&entries, exec.exe, false);
            assert_eq!(name(off.choose(&request(d, "a", "ADD", "s"))), Err(ExecReason::Disabled));
            let unknown = MulticallExec::new(&entries, None, true);
            assert_eq!(name(unknown.choose(&request(d, "a", "ADD", "s"))), Err(ExecReason::OwnExeUnknown));
            // The real executable: this test binary is not `multi`.
            let real = MulticallExec::from_process(&entries);
            assert_eq!(name(real.choose(&request(d, "a", "ADD", "s"))), Err(ExecReason::OtherFile));
        }

        #[tokio::test]
        async fn in_process_and_exec_give_the_same_outcome() {
            let (dir, exec) = layout();
            let d = dir.path();
            for verb in ["ADD", "DEL"] {
                // `a` runs `echo` in-process; `c` executes the script.
                let inproc = exec.exec(request(d, "a", verb, "seen-a")).await.unwrap();
                let child = exec.exec(request(d, "c", verb, "seen-c")).await.unwrap();
                assert_eq!(inproc, child, "{verb}");
                assert_eq!(std::fs::read(d.join("seen-a")).unwrap(), std::fs::read(d.join("seen-c")).unwrap());
                let parsed = |out: &RawOutput| {
                    crate::exec::check_output("x", out)
                        .and_then(|o| crate::exec::parse_result(&o, "1.0.0"))
                        .map_err(|e| (e.code(), e.message().to_owned()))
                };
                assert_eq!(parsed(&inproc), parsed(&child), "{verb}");
                if verb == "DEL" {
                    assert_eq!(parsed(&inproc).unwrap_err().1, "boom");
                }
            }
            // A lookup failure is the process executor's error, word for word.
            let missing = exec.exec(request(d, "e", "ADD", "s")).await.unwrap_err();
            let process = crate::exec::ProcessExec::new().exec(request(d, "e", "ADD", "s")).await.unwrap_err();
            assert_eq!(missing.to_string(), process.to_string());
        }

        /// A plugin whose ADD panics and whose DEL succeeds.
        struct Panics;

        impl crate::Plugin for Panics {
            type Config = ();
            async fn add(&self, _cx: &crate::Context<()>) -> crate::Result<crate::CniResult> {
                panic!("boom in add")
            }
            async fn del(&self, _cx: &crate::Context<()>) -> crate::Result<()> {
                Ok(())
            }
            async fn check(&self, _cx: &crate::Context<()>) -> crate::Result<()> {
                Ok(())
            }
        }

        impl crate::PluginEntry for Panics {
            const NAME: &'static str = "panics";
            fn options() -> crate::PluginOptions {
                crate::PluginOptions::new("panics")
            }
            fn create() -> Self {
                Self
            }
        }

        #[test]
        fn a_panicking_delegate_is_an_error_object_from_its_dispatcher() {
            let mut req = request(Path::new("/nonexistent"), "panics", "ADD", "s");
            for (k, v) in [("CNI_NETNS", "/nonexistent-netns"), ("CNI_IFNAME", "eth0"), ("CNI_PATH", "/nonexistent")] {
                req.env.insert(k.to_owned(), v.to_owned());
            }
            let run = |req: &ExecRequest| {
                let (_cancel, cancel) = tokio::sync::oneshot::channel();
                let call = InProcessRequest {
                    env: req.env.clone(),
                    stdin: req.stdin.clone(),
                    services: crate::Services::unavailable(),
                    cancel,
                };
                crate::__private::in_process::<Panics>(call)
            };
            let out = run(&req);
            assert_eq!(out.code, Some(1));
            let err = crate::exec::check_output("panics", &out).unwrap_err();
            assert!(err.message().contains("plugin panicked during ADD"), "{err}");
            req.env.insert("CNI_COMMAND".to_owned(), "DEL".to_owned());
            let out = run(&req);
            assert_eq!((out.code, out.stdout.as_slice()), (Some(0), &b""[..]));
        }

        #[tokio::test]
        async fn in_process_run_times_out_like_a_process() {
            let (dir, exec) = layout();
            let mut req = request(dir.path(), "slow", "ADD", "s");
            req.timeout = Duration::from_millis(30);
            let err = exec.exec(req).await.unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Timeout);
            assert!(err.to_string().contains("timed out"), "{err}");
        }
    }
}
