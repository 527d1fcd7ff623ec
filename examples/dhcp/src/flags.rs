//! `dhcp daemon [flags]`: Go's command line, parsed with the rules of Go's `flag` package
//! (`-f v`, `-f=v`, `--f v`, booleans without a value, parsing stops at the first non-flag).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::DEFAULT_SOCKET_PATH;

/// Where the daemon keeps its leases unless `-statedir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/dhcp";

/// The daemon's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonFlags {
    /// `-pidfile`: write the PID there (must be absolute).
    pub pidfile: Option<PathBuf>,
    /// `-hostprefix`: prepended to the socket path, the state directory and every `CNI_NETNS`.
    pub hostprefix: String,
    /// `-socketpath`.
    pub socketpath: String,
    /// `-broadcast`: set the BOOTP broadcast flag.
    pub broadcast: bool,
    /// `-timeout`: how long to wait for each server reply.
    pub timeout: Duration,
    /// `-resendmax`: the cap of the exponential backoff between attempts.
    pub resend_max: Duration,
    /// `-resendtimeout`: the total budget of one acquire or renew retry loop.
    pub resend_timeout: Duration,
    /// `-statedir` (not in Go): where leases are persisted.
    pub state_dir: String,
}

impl Default for DaemonFlags {
    fn default() -> Self {
        Self {
            pidfile: None,
            hostprefix: String::new(),
            socketpath: DEFAULT_SOCKET_PATH.to_owned(),
            broadcast: false,
            timeout: Duration::from_secs(10),
            resend_max: Duration::from_secs(62),
            resend_timeout: Duration::from_secs(208),
            state_dir: DEFAULT_STATE_DIR.to_owned(),
        }
    }
}

impl DaemonFlags {
    /// The socket the daemon listens on: `hostprefix + socketpath`.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!("{}{}", self.hostprefix, self.socketpath))
    }

    /// The lease directory: `hostprefix + statedir`.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(format!("{}{}", self.hostprefix, self.state_dir))
    }
}

/// Why parsing stopped: Go prints the message and the usage, and exits 2 (0 for `-h`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagsError {
    /// `-h` or `-help`.
    Help,
    /// A bad command line, with Go's message.
    Invalid(String),
}

const FLAGS: [(&str, &str, &str, &str); 8] = [
    ("broadcast", "", "broadcast DHCP leases", ""),
    ("hostprefix", "string", "optional prefix to host root", ""),
    ("pidfile", "string", "optional path to write daemon PID to", ""),
    ("resendmax", "duration", "optional dhcp client max resend delay between requests", "1m2s"),
    ("resendtimeout", "duration", "optional dhcp client resend timeout, no more retries after this timeout", "3m28s"),
    ("socketpath", "string", "optional dhcp server socketpath", ""),
    ("statedir", "string", "directory where leases are kept across daemon restarts", DEFAULT_STATE_DIR),
    ("timeout", "duration", "optional dhcp client timeout duration for each request", "10s"),
];

/// Go's `PrintDefaults` for the daemon's flag set.
pub fn usage() -> String {
    let mut out = String::from("Usage of daemon:\n");
    for (name, kind, help, default) in FLAGS {
        let _ = write!(out, "  -{name}");
        if !kind.is_empty() {
            let _ = write!(out, " {kind}");
        }
        let _ = write!(out, "\n    \t{help}");
        if !default.is_empty() {
            if kind == "string" {
                let _ = write!(out, " (default {default:?})");
            } else {
                let _ = write!(out, " (default {default})");
            }
        }
        out.push('\n');
    }
    out
}

/// Parses the arguments after `daemon`.
pub fn parse<I, S>(args: I) -> Result<DaemonFlags, FlagsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
    let mut flags = DaemonFlags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let mut name = &arg[1..];
        if let Some(rest) = name.strip_prefix('-') {
            if rest.is_empty() {
                break; // "--" ends the flags
            }
            name = rest;
        }
        if name.starts_with('-') || name.starts_with('=') {
            return Err(FlagsError::Invalid(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (name, None),
        };
        if name == "h" || name == "help" {
            return Err(FlagsError::Help);
        }
        if name == "broadcast" {
            flags.broadcast = match inline.as_deref() {
                None => true,
                Some(v) => parse_go_bool(v).ok_or_else(|| {
                    FlagsError::Invalid(format!("invalid boolean value {v:?} for -broadcast: parse error"))
                })?,
            };
            continue;
        }
        if !FLAGS.iter().any(|(n, ..)| *n == name) {
            return Err(FlagsError::Invalid(format!("flag provided but not defined: -{name}")));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .cloned()
                    .ok_or_else(|| FlagsError::Invalid(format!("flag needs an argument: -{name}")))?;
                i += 1;
                v
            }
        };
        let invalid = |why: &str| FlagsError::Invalid(format!("invalid value {value:?} for flag -{name}: {why}"));
        match name {
            "pidfile" => flags.pidfile = (!value.is_empty()).then(|| PathBuf::from(&value)),
            "hostprefix" => flags.hostprefix = value.clone(),
            "socketpath" => {
                flags.socketpath = if value.is_empty() { DEFAULT_SOCKET_PATH.to_owned() } else { value.clone() };
            }
            "statedir" => flags.state_dir = value.clone(),
            "timeout" => flags.timeout = parse_duration(&value).ok_or_else(|| invalid("parse error"))?,
            "resendmax" => flags.resend_max = parse_duration(&value).ok_or_else(|| invalid("parse error"))?,
            "resendtimeout" => flags.resend_timeout = parse_duration(&value).ok_or_else(|| invalid("parse error"))?,
            _ => unreachable!("every defined flag is handled"),
        }
    }
    if flags.timeout.is_zero() {
        return Err(FlagsError::Invalid("invalid value \"0s\" for flag -timeout: must be positive".into()));
    }
    Ok(flags)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration` for non-negative values: `10s`, `1m2s`, `1.5h`, `300ms`, `0`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_gos() {
        let f = parse(Vec::<String>::new()).unwrap();
        assert_eq!(f, DaemonFlags::default());
        assert_eq!(f.socket(), PathBuf::from("/run/cni/dhcp.sock"));
        assert_eq!(f.resend_max, Duration::from_secs(62));
        assert_eq!(f.resend_timeout, Duration::from_secs(208));
    }

    #[test]
    fn go_flag_syntax() {
        let f = parse([
            "-socketpath",
            "/tmp/d.sock",
            "--pidfile=/tmp/d.pid",
            "-hostprefix=/host",
            "-broadcast",
            "-timeout",
            "1s",
            "--resendmax",
            "4s",
            "-resendtimeout=1m30s",
            "-statedir",
            "/tmp/leases",
            "ignored-positional",
            "-timeout",
            "99s",
        ])
        .unwrap();
        assert_eq!(f.socket(), PathBuf::from("/host/tmp/d.sock"));
        assert_eq!(f.state_dir(), PathBuf::from("/host/tmp/leases"));
        assert_eq!(f.pidfile, Some(PathBuf::from("/tmp/d.pid")));
        assert!(f.broadcast);
        assert_eq!(
            (f.timeout, f.resend_max, f.resend_timeout),
            (Duration::from_secs(1), Duration::from_secs(4), Duration::from_secs(90))
        );
        assert!(!parse(["-broadcast=false"]).unwrap().broadcast);
        assert!(parse(["-broadcast", "true"]).unwrap().broadcast, "a boolean takes no separate value");
    }

    #[test]
    fn go_errors() {
        let e = |args: &[&str]| parse(args).unwrap_err();
        assert_eq!(e(&["-nope"]), FlagsError::Invalid("flag provided but not defined: -nope".into()));
        assert_eq!(e(&["-timeout"]), FlagsError::Invalid("flag needs an argument: -timeout".into()));
        assert_eq!(
            e(&["-timeout", "10"]),
            FlagsError::Invalid("invalid value \"10\" for flag -timeout: parse error".into())
        );
        assert_eq!(e(&["-h"]), FlagsError::Help);
        assert_eq!(e(&["--help"]), FlagsError::Help);
        assert_eq!(e(&["---x"]), FlagsError::Invalid("bad flag syntax: ---x".into()));
        assert!(usage().contains(
            "  -resendmax duration\n    \toptional dhcp client max resend delay between requests (default 1m2s)\n"
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m2s"), Some(Duration::from_secs(62)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "1x", "-1s", "s", "1..2s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
