//! The error type of firewall operations, and the classification of the tools' messages.

use std::fmt;

/// The category of a [`FirewallError`], the same for every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FirewallErrorKind {
    /// A table, chain or rule does not exist (when it must), in any wording of iptables-legacy,
    /// iptables-nft or nft.
    NotFound,
    /// The object already exists, or exists with a different definition (a chain of another
    /// kind, a base chain on another hook).
    Exists,
    /// A chain cannot be deleted because rules still jump to it, or (iptables) it still holds
    /// rules.
    InUse,
    /// Missing privilege (`CAP_NET_ADMIN`).
    PermissionDenied,
    /// The tool is missing or unusable (binary not found, kernel support missing, too old).
    Unavailable,
    /// The request is invalid: a bad name, a comment too long for the backend, a rule that does
    /// not fit its table (an IPv6 address in an IPv4 table, NAT in a chain no NAT hook reaches,
    /// a jump loop), a raw condition of the other backend, ...
    InvalidArgument,
    /// Anything else (a tool failure that could not be classified, a timeout, unparsable output).
    Other,
}

impl fmt::Display for FirewallErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Exists => "already exists",
            Self::InUse => "in use",
            Self::PermissionDenied => "permission denied",
            Self::Unavailable => "unavailable",
            Self::InvalidArgument => "invalid argument",
            Self::Other => "error",
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a firewall operation: a [kind](FirewallError::kind), a message naming the
/// operation and the object (and, for tool failures, the command line and the tool's stderr).
#[derive(Debug)]
pub struct FirewallError {
    kind: FirewallErrorKind,
    message: String,
    command: Option<String>,
    stderr: Option<String>,
    source: Option<BoxError>,
}

impl FirewallError {
    /// A new error of `kind` with `message`.
    pub fn new(kind: FirewallErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), command: None, stderr: None, source: None }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(FirewallErrorKind::InvalidArgument, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(FirewallErrorKind::NotFound, message)
    }

    /// An error from running `command`, classified from the tool's `stderr`.
    pub(crate) fn tool(command: impl Into<String>, stderr: &str, exit: Option<i32>) -> Self {
        let command = command.into();
        let stderr = stderr.trim().to_owned();
        let kind = classify(&stderr);
        let status = match exit {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        };
        let message = if stderr.is_empty() {
            format!("running [{command}] failed ({status})")
        } else {
            format!("running [{command}] failed ({status}): {stderr}")
        };
        Self { kind, message, command: Some(command), stderr: Some(stderr), source: None }
    }

    /// Attaches an underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn with_command(mut self, command: impl Into<String>) -> Self {
        self.command = Some(command.into());
        self
    }

    /// Prefixes the message with `context` (`context: message`), keeping the kind.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The category of the error.
    pub fn kind(&self) -> FirewallErrorKind {
        self.kind
    }

    /// The message (also what `Display` prints).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The command line that failed, for errors reported by a tool.
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// The tool's standard error, for errors reported by a tool.
    pub fn stderr(&self) -> Option<&str> {
        self.stderr.as_deref()
    }

    /// True for [`FirewallErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind == FirewallErrorKind::NotFound
    }

    /// True when the state may have changed under us between reading it and committing
    /// (another process added or removed the same objects): worth planning again.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self.kind, FirewallErrorKind::NotFound | FirewallErrorKind::Exists | FirewallErrorKind::InUse)
    }
}

impl fmt::Display for FirewallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FirewallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Result alias for firewall operations.
pub type FirewallResult<T> = Result<T, FirewallError>;

/// Classifies a message of iptables-legacy, iptables-nft (and their `-restore`) or nft.
///
/// The wordings differ between the tools and their versions (Go's bug B2: go-iptables 0.6 only
/// knew the legacy "No chain/target/match" text, so DEL failed under iptables-nft's
/// "Chain 'X' does not exist"); every known wording is listed here.
pub(crate) fn classify(stderr: &str) -> FirewallErrorKind {
    let s = stderr.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
    if any(&["permission denied", "operation not permitted", "you must be root"]) {
        FirewallErrorKind::PermissionDenied
    } else if any(&[
        // A jump loop: ELOOP from iptables-legacy, EMLINK from nf_tables when adding a rule.
        "too many levels of symbolic links",
        "rule_append failed (too many links)",
        "rule_insert failed (too many links)",
        "rule_replace failed (too many links)",
        "could not process rule: too many links",
        "not intended for filtering",
    ]) {
        FirewallErrorKind::InvalidArgument
    } else if any(&[
        "device or resource busy",
        // iptables-legacy deleting a chain that rules still jump to (EMLINK).
        "too many links",
        "directory not empty",
    ]) {
        FirewallErrorKind::InUse
    } else if any(&["already exists", "file exists"]) {
        FirewallErrorKind::Exists
    } else if any(&[
        "can't initialize",
        "protocol not supported",
        "address family not supported",
        "table does not exist (do you need to insmod",
        "could not find nftables binary",
        "command not found",
    ]) {
        FirewallErrorKind::Unavailable
    } else if any(&[
        "no chain/target/match by that name",
        "does not exist",
        "does a matching rule exist",
        "no such file or directory",
        "is incompatible, use 'nft' tool",
        "couldn't load target",
        "couldn't find target",
        "chain not found",
    ]) {
        FirewallErrorKind::NotFound
    } else if any(&[
        "invalid argument",
        "operation not supported",
        "syntax error",
        "bad argument",
        "too long",
        "invalid chain name",
        "index of insertion too big",
        "unknown option",
        "host/network",
        "not valid",
        "only valid",
        "numerical result out of range",
        "need tcp, udp, sctp or dccp",
    ]) {
        FirewallErrorKind::InvalidArgument
    } else {
        FirewallErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_wording_is_classified() {
        use FirewallErrorKind::*;
        let cases = [
            // iptables-legacy
            ("iptables: No chain/target/match by that name.", NotFound),
            ("iptables: Bad rule (does a matching rule exist in that chain?).", NotFound),
            ("iptables v1.8.9 (legacy): Couldn't load target `NOPE':No such file or directory", NotFound),
            ("iptables: Chain already exists.", Exists),
            ("iptables: Too many links.", InUse),
            ("iptables: Too many levels of symbolic links.", InvalidArgument),
            ("iptables: Directory not empty.", InUse),
            (
                "iptables v1.8.9 (legacy): can't initialize iptables table `foo': Table does not exist (do you need to insmod?)",
                Unavailable,
            ),
            // iptables-nft
            ("iptables v1.8.9 (nf_tables): Chain 'CNI-abc' does not exist", NotFound),
            ("iptables v1.8.9 (nf_tables): chain `NOPE' in table `nat' is incompatible, use 'nft' tool.", NotFound),
            ("iptables v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy): chain DN", InUse),
            ("iptables-nft-restore: line 2 failed: No chain/target/match by that name.", NotFound),
            ("iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain X", InvalidArgument),
            ("iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Too many links): rule in chain B", InvalidArgument),
            (
                "iptables-restore v1.8.9 (nf_tables): \nThe \"nat\" table is not intended for filtering, the use of DROP is therefore inhibited.",
                InvalidArgument,
            ),
            ("iptables v1.8.9 (nf_tables): chain name `xxx' too long (must be under 29 chars)", InvalidArgument),
            ("iptables: Index of insertion too big.", InvalidArgument),
            (
                "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)",
                PermissionDenied,
            ),
            // nft
            ("Error: Could not process rule: No such file or directory", NotFound),
            ("Error: No such file or directory; did you mean chain 'pre' in table inet 't1'?", NotFound),
            ("Error: Could not process rule: Device or resource busy", InUse),
            ("Error: Could not process rule: Too many links", InvalidArgument),
            ("Error: Could not process rule: File exists", Exists),
            ("Error: Could not process rule: Operation not supported", InvalidArgument),
            ("Error: syntax error, unexpected junk", InvalidArgument),
            ("Error: comment too long, 128 characters maximum allowed", InvalidArgument),
            ("Error: Could not process rule: Operation not permitted", PermissionDenied),
            ("netlink: Error: cache initialization failed: Protocol not supported", Unavailable),
            ("something nobody has seen", Other),
        ];
        for (msg, kind) in cases {
            assert_eq!(classify(msg), kind, "{msg}");
        }
    }

    #[test]
    fn tool_errors_name_the_command_and_stderr() {
        let e = FirewallError::tool("iptables -w -t nat -X FOO", "iptables: Too many links.\n", Some(1));
        assert_eq!(e.kind(), FirewallErrorKind::InUse);
        assert_eq!(e.command(), Some("iptables -w -t nat -X FOO"));
        assert_eq!(e.stderr(), Some("iptables: Too many links."));
        assert_eq!(
            e.to_string(),
            "running [iptables -w -t nat -X FOO] failed (exit status 1): iptables: Too many links."
        );
        let e = e.context("delete chain ip nat FOO");
        assert!(e.to_string().starts_with("delete chain ip nat FOO: running [iptables"));
        assert_eq!(e.kind(), FirewallErrorKind::InUse);
    }
}
