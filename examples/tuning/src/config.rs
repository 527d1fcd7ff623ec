//! Tuning's configuration: Go's `TuningConf`, decoded with Go's rules (see [`crate::gojson`])
//! and merged from its four sources, the sysctl allowlist, and how a sysctl key names a file.

use std::io;
use std::path::{Path, PathBuf};

use cni_sdk::types::CniArgs;
use cni_sdk::{Error, Result};

use crate::gojson::{self, Members, TypeError};

/// Where Go's tuning keeps the original values of the links it changes (`dataDir`).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";

/// The sysctl allowlist Go's tuning reads (v1.2.0 and later): when the file exists, every
/// `sysctl` key must match one of its lines (regular expressions, blank lines skipped).
pub const DEFAULT_ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";

/// What the plugin is asked to do, after Go's `parseConf`: the configuration's keys, then a MAC
/// from `CNI_ARGS` (`MAC=`), then `runtimeConfig.mac` (the `mac` capability), then `args.cni`
/// (`sysctl` entries merged, the other keys replacing), each later source winning.
///
/// ```
/// use cni_sdk::types::CniArgs;
/// use tuning::TuningConf;
///
/// let conf = br#"{"cniVersion": "1.0.0", "name": "n", "type": "tuning", "MTU": 1400,
///     "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}, "mac": "c2:b0:57:49:47:f1",
///     "runtimeConfig": {"mac": "c2:b0:57:49:47:f2"},
///     "args": {"cni": {"sysctl": {"net.core.somaxconn": "512"}, "promisc": true}}}"#;
/// let t = TuningConf::parse(conf, &CniArgs::parse("MAC=c2:b0:57:49:47:f3").unwrap()).unwrap();
/// assert_eq!(t.mtu, Some(1400)); // keys match case-insensitively, as in Go
/// assert_eq!(t.mac.as_deref(), Some("c2:b0:57:49:47:f2"));
/// assert!(t.promisc);
/// assert_eq!(t.sysctl.len(), 2);
/// assert_eq!(t.data_dir, std::path::Path::new("/run/cni/tuning"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuningConf {
    /// `dataDir`: where the original values are saved ([`DEFAULT_DATA_DIR`]).
    pub data_dir: PathBuf,
    /// `sysctl`: keys and values, in the configuration's order (`args.cni.sysctl` entries
    /// replace equal keys in place or come last).
    pub sysctl: Vec<(String, String)>,
    /// `mac`, as written (parsed when applied; `None` when unset or empty).
    pub mac: Option<String>,
    /// `promisc`: only `true` does anything (promiscuous mode is never turned off).
    pub promisc: bool,
    /// `mtu` (`None` when unset or 0).
    pub mtu: Option<i64>,
    /// `allmulti`: all-multicast mode on or off.
    pub allmulti: Option<bool>,
    /// `txQLen`: the transmit queue length.
    pub tx_qlen: Option<i64>,
}

/// `args.cni` (Go `IPAMArgs`): every key optional, `null` unsets.
#[derive(Debug, Default)]
struct CniKeys {
    sysctl: Option<Vec<(String, String)>>,
    mac: Option<String>,
    promisc: Option<bool>,
    mtu: Option<i64>,
    allmulti: Option<bool>,
    tx_qlen: Option<i64>,
}

/// Go's type names, as its decoder prints them.
const ARGS_TYPE: &str = r#"struct { A *main.IPAMArgs "json:\"cni\"" }"#;
const RUNTIME_CONFIG_TYPE: &str = r#"struct { Mac string "json:\"mac,omitempty\"" }"#;

fn load_error(e: TypeError) -> Error {
    Error::internal(format!("failed to load netconf: {e}"))
}

/// A non-null pointer field's value (a pointer to `T` decodes `null` as "unset").
fn some<T>(v: Option<T>, raw: &serde_json::value::RawValue) -> Option<T> {
    if gojson::is_null(raw) { None } else { v }
}

impl TuningConf {
    /// Decodes the network configuration `config` (the bytes a runtime sent) and `CNI_ARGS`
    /// the way Go's tuning does, with its error texts (`failed to load netconf: json: cannot
    /// unmarshal ...`, `ARGS: unknown args [...]`).
    ///
    /// # Errors
    /// A key of the wrong type, or `CNI_ARGS` keys other than `MAC` without `IgnoreUnknown`.
    pub fn parse(config: &[u8], cni_args: &CniArgs) -> Result<Self> {
        let doc = gojson::document(config).map_err(|e| Error::internal(format!("failed to load netconf: {e}")))?;
        let mut data_dir = String::new();
        let mut sysctl = None;
        let mut mac = String::new();
        let mut promisc = false;
        let mut mtu = 0;
        let mut tx_qlen = None;
        let mut allmulti = None;
        let mut runtime_mac = String::new();
        // `args` is a pointer to a struct holding a pointer to `IPAMArgs`.
        let mut args: Option<Option<CniKeys>> = None;
        for (key, raw) in &doc.0 {
            let is = |field: &str| gojson::fold_eq(key, field);
            if is("dataDir") {
                data_dir = gojson::string(raw, "TuningConf.dataDir").map_err(load_error)?.unwrap_or(data_dir);
            } else if is("sysctl") {
                gojson::string_map(raw, "TuningConf.sysctl", &mut sysctl).map_err(load_error)?;
            } else if is("mac") {
                mac = gojson::string(raw, "TuningConf.mac").map_err(load_error)?.unwrap_or(mac);
            } else if is("promisc") {
                promisc = gojson::boolean(raw, "TuningConf.promisc").map_err(load_error)?.unwrap_or(promisc);
            } else if is("mtu") {
                mtu = gojson::int(raw, "TuningConf.mtu").map_err(load_error)?.unwrap_or(mtu);
            } else if is("txQLen") {
                tx_qlen = some(gojson::int(raw, "TuningConf.txQLen").map_err(load_error)?, raw);
            } else if is("allmulti") {
                allmulti = some(gojson::boolean(raw, "TuningConf.allmulti").map_err(load_error)?, raw);
            } else if is("runtimeConfig") {
                let Some(members) =
                    gojson::object(raw, "TuningConf.runtimeConfig", RUNTIME_CONFIG_TYPE).map_err(load_error)?
                else {
                    continue;
                };
                for (k, v) in &members.0 {
                    if gojson::fold_eq(k, "mac") {
                        runtime_mac =
                            gojson::string(v, ".runtimeConfig.mac").map_err(load_error)?.unwrap_or(runtime_mac);
                    }
                }
            } else if is("args") {
                match gojson::object(raw, "TuningConf.args", ARGS_TYPE).map_err(load_error)? {
                    None => args = None,
                    Some(members) => decode_args(&members, args.get_or_insert(None))?,
                }
            }
        }

        // Go: CNI_ARGS (strict), then the capability, then `args.cni`.
        if !cni_args.is_empty() {
            cni_args.check_known(&["MAC"]).map_err(|e| Error::internal(e.to_string()))?;
            if let Some(m) = cni_args.get("MAC").filter(|m| !m.is_empty()) {
                mac = m.to_owned();
            }
        }
        if !runtime_mac.is_empty() {
            mac = runtime_mac;
        }
        if let Some(Some(a)) = args {
            if let Some(entries) = a.sysctl {
                // Go panics here when the configuration has no `sysctl` map (assignment to a
                // nil map); the entries simply make one.
                let map = sysctl.get_or_insert_with(Vec::new);
                for (k, v) in entries {
                    gojson::insert(map, k, v);
                }
            }
            mac = a.mac.unwrap_or(mac);
            promisc = a.promisc.unwrap_or(promisc);
            mtu = a.mtu.unwrap_or(mtu);
            allmulti = a.allmulti.or(allmulti);
            tx_qlen = a.tx_qlen.or(tx_qlen);
        }
        Ok(Self {
            data_dir: PathBuf::from(if data_dir.is_empty() { DEFAULT_DATA_DIR } else { &data_dir }),
            sysctl: sysctl.unwrap_or_default(),
            mac: (!mac.is_empty()).then_some(mac),
            promisc,
            mtu: (mtu != 0).then_some(mtu),
            allmulti,
            tx_qlen,
        })
    }

    /// Whether any link attribute is to change (then the original values are saved first).
    pub fn changes_link(&self) -> bool {
        self.mac.is_some() || self.promisc || self.mtu.is_some() || self.allmulti.is_some() || self.tx_qlen.is_some()
    }
}

/// `args` members into the struct; `cni` is a pointer to `IPAMArgs`.
fn decode_args(members: &Members<'_>, cni: &mut Option<CniKeys>) -> Result<()> {
    for (key, raw) in &members.0 {
        if !gojson::fold_eq(key, "cni") {
            continue;
        }
        let Some(fields) = gojson::object(raw, ".args.cni", "main.IPAMArgs").map_err(load_error)? else {
            *cni = None;
            continue;
        };
        let c = cni.get_or_insert_with(CniKeys::default);
        for (k, v) in &fields.0 {
            let is = |field: &str| gojson::fold_eq(k, field);
            if is("sysctl") {
                if gojson::is_null(v) {
                    c.sysctl = None;
                } else {
                    gojson::string_map(v, "IPAMArgs.args.cni.sysctl", &mut c.sysctl).map_err(load_error)?;
                }
            } else if is("mac") {
                c.mac = some(gojson::string(v, "IPAMArgs.args.cni.mac").map_err(load_error)?, v);
            } else if is("promisc") {
                c.promisc = some(gojson::boolean(v, "IPAMArgs.args.cni.promisc").map_err(load_error)?, v);
            } else if is("mtu") {
                c.mtu = some(gojson::int(v, "IPAMArgs.args.cni.mtu").map_err(load_error)?, v);
            } else if is("allmulti") {
                c.allmulti = some(gojson::boolean(v, "IPAMArgs.args.cni.allmulti").map_err(load_error)?, v);
            } else if is("txQLen") {
                c.tx_qlen = some(gojson::int(v, "IPAMArgs.args.cni.txQLen").map_err(load_error)?, v);
            }
        }
    }
    Ok(())
}

/// Go's `validateSysctlConflictingKeys` (v1.2.0): a key that appears twice in `sysctl` (in one
/// object or across keys that match `sysctl` case-insensitively) is refused. Type errors are
/// left to [`TuningConf::parse`], which reports them with Go's `failed to load netconf` text.
///
/// # Errors
/// `duplicated sysctl keys are not allowed`.
pub fn check_duplicate_sysctls(config: &[u8]) -> Result<()> {
    let Ok(doc) = gojson::document(config) else { return Ok(()) };
    let mut seen = std::collections::HashSet::new();
    for (key, raw) in &doc.0 {
        if !gojson::fold_eq(key, "sysctl") || gojson::kind(raw) != "object" {
            continue;
        }
        let Ok(members) = Members::of(raw.get()) else { continue };
        for (k, _) in members.0 {
            if !seen.insert(k) {
                return Err(Error::internal("duplicated sysctl keys are not allowed"));
            }
        }
    }
    Ok(())
}

/// Go's `validateSysctlConf` (v1.2.0): when the allowlist file exists, every key must match one
/// of its lines (unanchored regular expressions, as Go's `regexp.MatchString`).
///
/// # Errors
/// `Sysctl <key> is not allowed. Only the following sysctls are allowed: [<lines>]`, an
/// unreadable file, or a line that is not a regular expression.
pub fn check_allowlist(path: &Path, sysctl: &[(String, String)]) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            // Go's os.ReadFile: opening fails on permissions, reading on a directory.
            let op = if e.kind() == io::ErrorKind::PermissionDenied { "open" } else { "read" };
            return Err(Error::internal(format!("{op} {}: {}", path.display(), go_io_text(&e))));
        }
    };
    let allowed: Vec<&str> = text.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect();
    let patterns = allowed
        .iter()
        .map(|p| regex_lite::Regex::new(p).map_err(|e| Error::internal(format!("error parsing regexp: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    for (key, _) in sysctl {
        if !patterns.iter().any(|re| re.is_match(key)) {
            return Err(Error::internal(format!(
                "Sysctl {key} is not allowed. Only the following sysctls are allowed: [{}]",
                allowed.join(" ")
            )));
        }
    }
    Ok(())
}

/// How Go prints an OS error: the C text, first letter lower-case.
pub(crate) fn go_io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => {
            let text = io::Error::from_raw_os_error(errno).to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            let mut chars = text.chars();
            chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
        }
        None => e.to_string(),
    }
}

/// A configured sysctl: the file under `/proc/sys` and the key the SDK's [`Net`](cni_sdk::net::Net)
/// takes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlFile {
    /// `/proc/sys/net/...`, as Go names it in its messages.
    pub path: String,
    /// `net/...`.
    pub key: String,
}

/// Go's `getSysctlFilename` (v1.2.0 and later): every `.` becomes `/` first, then the first
/// `IFNAME` becomes the interface name (so names with dots such as `eth0.100` work), and the
/// cleaned path must lie under `/proc/sys/net/`.
///
/// ```
/// let f = tuning::sysctl_file("net.ipv4.conf.IFNAME.arp_notify", "eth0.100").unwrap();
/// assert_eq!(f.path, "/proc/sys/net/ipv4/conf/eth0.100/arp_notify");
/// let e = tuning::sysctl_file("kernel.hostname", "eth0").unwrap_err();
/// assert_eq!(e.message(), r#"invalid net sysctl key: "kernel.hostname""#);
/// ```
///
/// # Errors
/// `invalid net sysctl key: "<key>"`, quoting the key with `IFNAME` replaced but its dots kept,
/// as Debian's Go 1.1.1 prints it.
pub fn sysctl_file(key: &str, ifname: &str) -> Result<SysctlFile> {
    let slashed = key.replace('.', "/").replacen("IFNAME", ifname, 1);
    let path = clean(&format!("/proc/sys/{slashed}"));
    match path.strip_prefix("/proc/sys/net/") {
        Some(rest) if !rest.is_empty() => Ok(SysctlFile { key: format!("net/{rest}"), path }),
        _ => Err(Error::internal(format!("invalid net sysctl key: {:?}", key.replacen("IFNAME", ifname, 1)))),
    }
}

/// Go's `path.Clean` for an absolute path: no empty, `.` or `..` components.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(conf: &str) -> Result<TuningConf> {
        TuningConf::parse(conf.as_bytes(), &CniArgs::default())
    }

    #[test]
    fn defaults() {
        let t = parse(r#"{"cniVersion": "1.0.0", "name": "n", "type": "tuning"}"#).unwrap();
        assert_eq!(t.data_dir, Path::new(DEFAULT_DATA_DIR));
        assert!(t.sysctl.is_empty() && t.mac.is_none() && !t.promisc && t.mtu.is_none());
        assert!(!t.changes_link());
        let t = parse(r#"{"dataDir": "", "mtu": 0, "mac": "", "promisc": false, "allmulti": null}"#).unwrap();
        assert!(!t.changes_link(), "{t:?}");
        assert!(parse(r#"{"allmulti": false}"#).unwrap().changes_link());
        assert!(parse(r#"{"txQLen": 0}"#).unwrap().changes_link());
    }

    #[test]
    fn go_type_errors() {
        let cases = [
            (r#"{"mtu": "x"}"#, "json: cannot unmarshal string into Go struct field TuningConf.mtu of type int"),
            (r#"{"MTU": true}"#, "json: cannot unmarshal bool into Go struct field TuningConf.mtu of type int"),
            (r#"{"mtu": 1e3}"#, "json: cannot unmarshal number 1e3 into Go struct field TuningConf.mtu of type int"),
            (r#"{"promisc": 1}"#, "json: cannot unmarshal number into Go struct field TuningConf.promisc of type bool"),
            (
                r#"{"allmulti": "true"}"#,
                "json: cannot unmarshal string into Go struct field TuningConf.allmulti of type bool",
            ),
            (r#"{"txQLen": "5"}"#, "json: cannot unmarshal string into Go struct field TuningConf.txQLen of type int"),
            (
                r#"{"sysctl": "x"}"#,
                "json: cannot unmarshal string into Go struct field TuningConf.sysctl of type map[string]string",
            ),
            (
                r#"{"sysctl": {"a": 1}}"#,
                "json: cannot unmarshal number into Go struct field TuningConf.sysctl of type string",
            ),
            (r#"{"mac": 5}"#, "json: cannot unmarshal number into Go struct field TuningConf.mac of type string"),
            (
                r#"{"dataDir": 5}"#,
                "json: cannot unmarshal number into Go struct field TuningConf.dataDir of type string",
            ),
            (
                r#"{"args": 5}"#,
                r#"json: cannot unmarshal number into Go struct field TuningConf.args of type struct { A *main.IPAMArgs "json:\"cni\"" }"#,
            ),
            (
                r#"{"args": {"cni": 5}}"#,
                "json: cannot unmarshal number into Go struct field .args.cni of type main.IPAMArgs",
            ),
            (
                r#"{"args": {"cni": {"mtu": "x"}}}"#,
                "json: cannot unmarshal string into Go struct field IPAMArgs.args.cni.mtu of type int",
            ),
            (
                r#"{"runtimeConfig": {"mac": 5}}"#,
                "json: cannot unmarshal number into Go struct field .runtimeConfig.mac of type string",
            ),
            (
                r#"{"runtimeConfig": 5}"#,
                r#"json: cannot unmarshal number into Go struct field TuningConf.runtimeConfig of type struct { Mac string "json:\"mac,omitempty\"" }"#,
            ),
        ];
        for (conf, msg) in cases {
            let e = parse(conf).unwrap_err();
            assert_eq!(e.message(), format!("failed to load netconf: {msg}"), "{conf}");
            assert_eq!(e.code(), cni_sdk::ErrorCode::Internal);
        }
        // The first error in document order wins.
        let e = parse(r#"{"promisc": 1, "mtu": "x"}"#).unwrap_err();
        assert!(e.message().contains("TuningConf.promisc"), "{}", e.message());
    }

    #[test]
    fn precedence_of_the_sources() {
        let args = |s: &str| CniArgs::parse(s).unwrap();
        let conf = br#"{"mac": "02:00:00:00:00:01"}"#;
        let mac = |conf: &[u8], a: &str| TuningConf::parse(conf, &args(a)).unwrap().mac;
        assert_eq!(mac(conf, "").as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(mac(conf, "MAC=02:00:00:00:00:02").as_deref(), Some("02:00:00:00:00:02"));
        assert_eq!(mac(conf, "MAC=").as_deref(), Some("02:00:00:00:00:01"));
        let rc = br#"{"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"}}"#;
        assert_eq!(
            mac(rc, "IgnoreUnknown=1;MAC=02:00:00:00:00:02;K8S_POD_NAME=x").as_deref(),
            Some("02:00:00:00:00:03")
        );
        let all = br#"{"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"},
            "args": {"cni": {"mac": "02:00:00:00:00:04"}}}"#;
        assert_eq!(mac(all, "MAC=02:00:00:00:00:02").as_deref(), Some("02:00:00:00:00:04"));
        // args.cni.mac "" unsets, as in Go.
        assert_eq!(mac(br#"{"mac": "02:00:00:00:00:01", "args": {"cni": {"mac": ""}}}"#, ""), None);
        let e = TuningConf::parse(conf, &args("FOO=1")).unwrap_err();
        assert_eq!(e.message(), r#"ARGS: unknown args ["FOO=1"]"#);

        let t = parse(
            r#"{"promisc": true, "mtu": 1400, "allmulti": true, "txQLen": 10,
            "args": {"cni": {"promisc": false, "mtu": 1300, "allmulti": false, "txQLen": 20}}}"#,
        )
        .unwrap();
        assert_eq!((t.promisc, t.mtu, t.allmulti, t.tx_qlen), (false, Some(1300), Some(false), Some(20)));
        let t = parse(r#"{"mtu": 1400, "args": {"cni": {"mtu": 0}}}"#).unwrap();
        assert_eq!(t.mtu, None);
        // `args` null (or a null `cni`) drops what earlier `args` keys said.
        let t = parse(r#"{"args": {"cni": {"mtu": 1300}}, "args": null}"#).unwrap();
        assert_eq!(t.mtu, None);
        let t = parse(r#"{"args": {"cni": {"mtu": 1300}}, "Args": {"cni": {"promisc": true}}}"#).unwrap();
        assert_eq!((t.mtu, t.promisc), (Some(1300), true), "objects merge");
    }

    #[test]
    fn args_sysctls_merge_even_without_a_top_level_map() {
        // Go panics on this one (assignment to entry in nil map).
        let t = parse(r#"{"args": {"cni": {"sysctl": {"net.ipv4.ip_forward": "1"}}}}"#).unwrap();
        assert_eq!(t.sysctl, [("net.ipv4.ip_forward".into(), "1".into())]);
        let t = parse(
            r#"{"sysctl": {"a": "1", "b": "2"}, "SYSCTL": {"c": "3"},
                "args": {"cni": {"sysctl": {"b": "20", "d": "4"}}}}"#,
        )
        .unwrap();
        let keys: Vec<_> = t.sysctl.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(keys, ["a=1", "b=20", "c=3", "d=4"]);
    }

    #[test]
    fn duplicate_sysctl_keys() {
        let dup = br#"{"sysctl": {"net.ipv4.ip_forward": "1", "net.ipv4.ip_forward": "0"}}"#;
        assert_eq!(check_duplicate_sysctls(dup).unwrap_err().message(), "duplicated sysctl keys are not allowed");
        // Across two keys that both decode into `sysctl`, too (Go's set of seen keys is global).
        let across = br#"{"sysctl": {"a": "1"}, "Sysctl": {"a": "2"}}"#;
        assert!(check_duplicate_sysctls(across).is_err());
        check_duplicate_sysctls(br#"{"sysctl": {"a": "1", "b": "1"}, "args": {"cni": {"sysctl": {"a": "2"}}}}"#)
            .unwrap();
        check_duplicate_sysctls(br#"{"sysctl": "x"}"#).unwrap();
    }

    #[test]
    fn sysctl_keys_name_files_under_proc_sys_net() {
        let f = |k: &str, i: &str| sysctl_file(k, i).map(|f| (f.path, f.key)).map_err(|e| e.message().to_owned());
        assert_eq!(f("net.core.somaxconn", "eth0").unwrap().0, "/proc/sys/net/core/somaxconn");
        assert_eq!(f("net.ipv4.conf.IFNAME.arp_notify", "eth0.100").unwrap().1, "net/ipv4/conf/eth0.100/arp_notify");
        assert_eq!(f("net/ipv4/conf/IFNAME/arp_notify", "eth1").unwrap().0, "/proc/sys/net/ipv4/conf/eth1/arp_notify");
        // Only the first IFNAME is replaced.
        assert_eq!(f("net.IFNAME.IFNAME", "e").unwrap().0, "/proc/sys/net/e/IFNAME");
        // Slashes collapse; dots can never climb out of /proc/sys/net.
        assert_eq!(f("net//core/..somaxconn", "e").unwrap().0, "/proc/sys/net/core/somaxconn");
        assert_eq!(f("kernel.hostname", "e").unwrap_err(), r#"invalid net sysctl key: "kernel.hostname""#);
        assert_eq!(f("net", "e").unwrap_err(), r#"invalid net sysctl key: "net""#);
        assert_eq!(f("IFNAME.x", "net").unwrap().0, "/proc/sys/net/x");
        assert_eq!(f("vm.IFNAME", "e").unwrap_err(), r#"invalid net sysctl key: "vm.e""#);
    }

    #[test]
    fn the_allowlist_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allowlist.conf");
        let keys = |ks: &[&str]| ks.iter().map(|k| ((*k).to_owned(), "1".to_owned())).collect::<Vec<_>>();
        // No file: no restriction.
        check_allowlist(&path, &keys(&["net.core.somaxconn"])).unwrap();
        std::fs::write(&path, "^net\\.core\\.somaxconn$\n\n  ^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$  \n").unwrap();
        check_allowlist(&path, &keys(&["net.core.somaxconn", "net.ipv4.conf.IFNAME.arp_notify"])).unwrap();
        let e = check_allowlist(&path, &keys(&["net.core.somaxconn", "net.ipv4.ip_forward"])).unwrap_err();
        assert_eq!(
            e.message(),
            r"Sysctl net.ipv4.ip_forward is not allowed. Only the following sysctls are allowed: [^net\.core\.somaxconn$ ^net\.ipv4\.conf\.IFNAME\.[a-z_]+$]"
        );
        // Unanchored, as Go's MatchString.
        std::fs::write(&path, "somax\n").unwrap();
        check_allowlist(&path, &keys(&["net.core.somaxconn"])).unwrap();
        std::fs::write(&path, "(\n").unwrap();
        assert!(
            check_allowlist(&path, &keys(&["net.core.somaxconn"]))
                .unwrap_err()
                .message()
                .starts_with("error parsing regexp")
        );
        // An unreadable allowlist is an error.
        let e = check_allowlist(dir.path(), &keys(&["x"])).unwrap_err();
        assert!(e.message().ends_with("is a directory"), "{}", e.message());
    }
}
