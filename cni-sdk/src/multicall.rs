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

use std::ffi::OsString;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

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
}
