//! The iptables backend: `iptables -S` to read, `iptables-restore --noflush` to commit, and the
//! rendering/parsing between the model and iptables arguments.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use cni_types::MacAddr;
use ipnet::IpNet;

use super::FirewallBackend;
use super::error::{FirewallError, FirewallErrorKind, FirewallResult};
use super::model::{
    AddrType, BackendKind, Chain, ChainKind, Condition, ConnState, IpFamily, Match, Policy, PortRange, Ports, Protocol,
    Raw, Rule, Table, TableId, Verdict,
};
use super::process::{Runner, command_line};
use super::state::{
    ChainState, Change, HandleRepr, ListedRule, RuleHandle, Ruleset, TableState, iptables_builtin_chains,
};
use super::validate::IPTABLES_TABLES;
use crate::netns::NetNs;

/// Above this many chains, a scoped read lists the whole table once instead of each chain.
const MAX_CHAIN_READS: usize = 3;

/// Which iptables binaries to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IptablesVariant {
    /// `iptables`, `ip6tables`, `iptables-restore`, `ip6tables-restore`: whatever the system's
    /// alternatives select (Debian 12: the nf_tables flavour).
    #[default]
    System,
    /// `iptables-legacy`, `ip6tables-legacy`, ... (x_tables).
    Legacy,
    /// `iptables-nft`, `ip6tables-nft`, ... (nf_tables).
    Nft,
}

impl IptablesVariant {
    fn suffix(self) -> &'static str {
        match self {
            Self::System => "",
            Self::Legacy => "-legacy",
            Self::Nft => "-nft",
        }
    }
}

/// The iptables backend (`iptables`/`ip6tables` and their `-restore` tools, with `-w`).
///
/// Reads a table with one `iptables -t <table> -S` and commits a batch with one
/// `iptables-restore -w --noflush` per IP family. Runs the tools in the caller's network
/// namespace, or in the one given to [`IptablesBackend::in_netns`].
#[derive(Debug, Clone)]
pub struct IptablesBackend {
    runner: Runner,
    variant: IptablesVariant,
    lock_wait: u32,
}

impl Default for IptablesBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl IptablesBackend {
    /// The system's iptables in the caller's namespace, waiting up to 30 s for the xtables lock.
    pub fn new() -> Self {
        Self { runner: Runner::default(), variant: IptablesVariant::System, lock_wait: 30 }
    }

    /// Runs the tools inside `netns`.
    pub fn in_netns(mut self, netns: NetNs) -> Self {
        self.runner.netns = Some(netns);
        self
    }

    /// Selects the binaries.
    pub fn variant(mut self, variant: IptablesVariant) -> Self {
        self.variant = variant;
        self
    }

    /// How long (seconds) to wait for the xtables lock (`-w <seconds>`; iptables-legacy only
    /// takes the lock). Go waits forever; a bound keeps a stuck lock holder from stalling ADD.
    pub fn lock_wait(mut self, seconds: u32) -> Self {
        self.lock_wait = seconds.max(1);
        self
    }

    /// Kills a tool that runs longer than `timeout` (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.runner.timeout = timeout;
        self
    }

    fn binary(&self, family: IpFamily, restore: bool) -> String {
        let base = match family {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        };
        format!("{base}{}{}", self.variant.suffix(), if restore { "-restore" } else { "" })
    }

    fn family_of(table: &TableId) -> FirewallResult<IpFamily> {
        table
            .family
            .ip_family()
            .ok_or_else(|| FirewallError::invalid(format!("iptables has no {} family (table {table})", table.family)))
    }

    /// Runs `iptables -w N <args>` for `family` and returns stdout.
    async fn iptables(&self, family: IpFamily, args: &[&str]) -> FirewallResult<String> {
        let mut full = vec!["-w".to_owned(), self.lock_wait.to_string()];
        full.extend(args.iter().map(|s| (*s).to_owned()));
        self.runner.run_ok(&self.binary(family, false), &full, None).await
    }

    /// Go's `SupportsIPTables`: iptables can check whether `filter INPUT` exists.
    async fn probe_impl(&self) -> FirewallResult<()> {
        match self.iptables(IpFamily::V4, &["-t", "filter", "-n", "-L", "INPUT"]).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == FirewallErrorKind::NotFound => Ok(()),
            Err(e) => Err(FirewallError::new(FirewallErrorKind::Unavailable, format!("iptables is not usable: {e}"))
                .with_source(e)),
        }
    }

    async fn read_impl(&self, table: &TableId) -> FirewallResult<Option<TableState>> {
        let family = Self::family_of(table)?;
        if !IPTABLES_TABLES.contains(&table.name.as_str()) {
            return Ok(None);
        }
        let out = self
            .iptables(family, &["-t", &table.name, "-S"])
            .await
            .map_err(|e| e.context(format!("list table {table}")))?;
        parse_table(table, &out).map(Some)
    }

    /// Reads the chains one `iptables -S <chain>` each (iptables-nft still loads every chain's
    /// name, but not the other chains' rules); many chains at once take one whole-table read.
    async fn read_chains_impl(&self, table: &TableId, chains: &[String]) -> FirewallResult<Option<TableState>> {
        let family = Self::family_of(table)?;
        if !IPTABLES_TABLES.contains(&table.name.as_str()) {
            return Ok(None);
        }
        if chains.len() > MAX_CHAIN_READS {
            let t = self.read_impl(table).await?;
            return Ok(t.map(|mut t| {
                t.chains.retain(|c| chains.contains(&c.chain.name));
                t
            }));
        }
        let mut state = TableState::new(Table::new(table.family, table.name.clone()));
        for name in chains {
            let out = match self.iptables(family, &["-t", &table.name, "-S", name]).await {
                Ok(out) => out,
                // iptables-legacy: "No chain/target/match by that name"; iptables-nft 1.8.9:
                // "chain `X' in table `nat' is incompatible, use 'nft' tool".
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.context(format!("list chain {}", table.chain(name.clone())))),
            };
            let listed = parse_chain(table, &out)?;
            state.chains.extend(listed.chains.into_iter().filter(|c| c.chain.name == *name));
        }
        Ok(Some(state))
    }

    async fn commit_impl(&self, changes: &[Change]) -> FirewallResult<()> {
        if let Some(c) = changes.iter().find(|c| c.table().family.ip_family().is_none()) {
            return Err(FirewallError::invalid(format!("iptables only has the ip and ip6 families ({})", c.table())));
        }
        for family in [IpFamily::V4, IpFamily::V6] {
            let mine: Vec<&Change> = changes.iter().filter(|c| c.table().family.ip_family() == Some(family)).collect();
            if mine.is_empty() {
                continue;
            }
            let text = restore_text(&mine)?;
            let program = self.binary(family, true);
            let args = vec!["-w".to_owned(), self.lock_wait.to_string(), "--noflush".to_owned()];
            let out = self.runner.run(&program, &args, Some(text.clone())).await?;
            if !out.success() {
                let mut err = FirewallError::tool(command_line(&program, &args), &out.stderr, out.code);
                if err.kind() == FirewallErrorKind::Other {
                    if let Some(line) = failed_line(&out.stderr, &text) {
                        err = err.context(format!("input line {line:?}"));
                    }
                    // iptables-legacy-restore only says "line N failed": find out why.
                    if let Some(kind) = self.diagnose(&mine).await {
                        err = FirewallError::new(kind, err.message().to_owned())
                            .with_command(command_line(&program, &args));
                    }
                }
                return Err(err);
            }
        }
        Ok(())
    }
}

impl IptablesBackend {
    /// Replays `changes` on a fresh read of their tables with the tools' semantics, to learn the
    /// kind of a failure the tool did not explain.
    async fn diagnose(&self, changes: &[&Change]) -> Option<FirewallErrorKind> {
        let mut state = Ruleset::new(BackendKind::Iptables);
        let mut tables: Vec<TableId> = Vec::new();
        for c in changes {
            let t = c.table();
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
        for t in &tables {
            state.tables.push(self.read_impl(t).await.ok()??);
        }
        for c in changes {
            if let Err(e) = state.apply(c, &mut |_, rule| RuleHandle(HandleRepr::Spec(rule_args(rule)))) {
                return Some(e.kind());
            }
        }
        tables.iter().find_map(|t| state.validate_table(t).err()).map(|e| e.kind())
    }
}

/// iptables-legacy-restore reports only `line N failed`; this finds that input line.
fn failed_line(stderr: &str, input: &str) -> Option<String> {
    let n: usize = stderr.split("line ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    input.lines().nth(n.checked_sub(1)?).map(str::to_owned)
}

impl FirewallBackend for IptablesBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Iptables
    }

    async fn probe(&self) -> FirewallResult<()> {
        self.probe_impl().await
    }

    async fn list_tables(&self) -> FirewallResult<Vec<Table>> {
        let mut out = Vec::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            for name in IPTABLES_TABLES {
                out.push(Table::new(family.table_family(), name));
            }
        }
        Ok(out)
    }

    async fn read_table(&self, table: &TableId, _comments: bool) -> FirewallResult<Option<TableState>> {
        self.read_impl(table).await
    }

    async fn read_chains(&self, table: &TableId, chains: &[String]) -> FirewallResult<Option<TableState>> {
        self.read_chains_impl(table, chains).await
    }

    async fn commit(&self, changes: &[Change]) -> FirewallResult<()> {
        self.commit_impl(changes).await
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn hex(v: u32) -> String {
    format!("{v:#x}")
}

fn ports_arg(ports: &Ports, sep_list: bool) -> String {
    let ranges = ports.ranges();
    let parts: Vec<String> = ranges.iter().map(|r| r.sep(':')).collect();
    if sep_list { parts.join(",") } else { parts.concat() }
}

fn nat_target(addr: IpAddr, port: Option<PortRange>) -> String {
    match (addr, port) {
        (a, None) => a.to_string(),
        (IpAddr::V4(a), Some(p)) => format!("{a}:{}", p.sep('-')),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{}", p.sep('-')),
    }
}

/// The arguments of a rule (after `-A <chain>`) exactly as `iptables -S` prints them, for a rule
/// in normal form: built-in matches first, then the comment (where Go's rules put it), the
/// port module(s), the other modules in order, and the target.
pub(crate) fn rule_args(rule: &Rule) -> Vec<String> {
    fn push(a: &mut Vec<String>, v: &[&str]) {
        a.extend(v.iter().map(|s| (*s).to_owned()));
    }
    fn not(a: &mut Vec<String>, c: &Condition) {
        if c.negated {
            a.push("!".to_owned());
        }
    }
    let mut a: Vec<String> = Vec::new();
    // Built-in matches.
    for c in &rule.conditions {
        let (opt, val) = match &c.test {
            Match::Source(n) => ("-s", n.to_string()),
            Match::Destination(n) => ("-d", n.to_string()),
            Match::InInterface(i) => ("-i", i.clone()),
            Match::OutInterface(i) => ("-o", i.clone()),
            Match::Protocol(p) => ("-p", p.iptables_name().to_owned()),
            _ => continue,
        };
        not(&mut a, c);
        push(&mut a, &[opt, &val]);
    }
    if let Some(comment) = &rule.comment {
        push(&mut a, &["-m", "comment", "--comment", comment]);
    }
    // Ports: single ports share the protocol's module; lists use multiport.
    let proto = rule.protocol().map(|p| p.iptables_name()).unwrap_or("tcp");
    let mut module_open = false;
    for c in &rule.conditions {
        let opt = match &c.test {
            Match::SourcePort(Ports::Single(_)) => "--sport",
            Match::DestinationPort(Ports::Single(_)) => "--dport",
            _ => continue,
        };
        if let Match::SourcePort(p) | Match::DestinationPort(p) = &c.test {
            if !module_open {
                push(&mut a, &["-m", proto]);
                module_open = true;
            }
            not(&mut a, c);
            push(&mut a, &[opt, &ports_arg(p, false)]);
        }
    }
    for c in &rule.conditions {
        let opt = match &c.test {
            Match::SourcePort(Ports::List(_)) => "--sports",
            Match::DestinationPort(Ports::List(_)) => "--dports",
            _ => continue,
        };
        if let Match::SourcePort(p) | Match::DestinationPort(p) = &c.test {
            push(&mut a, &["-m", "multiport"]);
            not(&mut a, c);
            push(&mut a, &[opt, &ports_arg(p, true)]);
        }
    }
    // Other modules, in order.
    for c in &rule.conditions {
        match &c.test {
            Match::Mark { value, mask } => {
                let v = if *mask == u32::MAX { hex(*value) } else { format!("{}/{}", hex(*value), hex(*mask)) };
                push(&mut a, &["-m", "mark"]);
                not(&mut a, c);
                push(&mut a, &["--mark", &v]);
            }
            Match::ConnState(states) => {
                let v: Vec<String> = states.iter().map(|s| s.as_str().to_ascii_uppercase()).collect();
                push(&mut a, &["-m", "conntrack"]);
                not(&mut a, c);
                push(&mut a, &["--ctstate", &v.join(",")]);
            }
            Match::SourceAddrType(t) | Match::DestinationAddrType(t) => {
                let opt = if matches!(c.test, Match::SourceAddrType(_)) { "--src-type" } else { "--dst-type" };
                push(&mut a, &["-m", "addrtype"]);
                not(&mut a, c);
                push(&mut a, &[opt, &t.as_str().to_ascii_uppercase()]);
            }
            Match::EtherSource(mac) => {
                push(&mut a, &["-m", "mac"]);
                not(&mut a, c);
                push(&mut a, &["--mac-source", &mac.to_string()]);
            }
            Match::Raw(Raw::Iptables(args)) => a.extend(args.iter().cloned()),
            _ => {}
        }
    }
    match &rule.verdict {
        Verdict::Accept => push(&mut a, &["-j", "ACCEPT"]),
        Verdict::Drop => push(&mut a, &["-j", "DROP"]),
        Verdict::Return => push(&mut a, &["-j", "RETURN"]),
        Verdict::Jump(c) => push(&mut a, &["-j", c]),
        Verdict::Goto(c) => push(&mut a, &["-g", c]),
        Verdict::Masquerade => push(&mut a, &["-j", "MASQUERADE"]),
        Verdict::Dnat { addr, port } => push(&mut a, &["-j", "DNAT", "--to-destination", &nat_target(*addr, *port)]),
        Verdict::Snat { addr, port } => push(&mut a, &["-j", "SNAT", "--to-source", &nat_target(*addr, *port)]),
        Verdict::SetMark { value, mask } => {
            push(&mut a, &["-j", "MARK", "--set-xmark", &format!("{}/{}", hex(*value), hex(*mask))])
        }
        Verdict::Continue => {}
        Verdict::Raw(Raw::Iptables(args)) => a.extend(args.iter().cloned()),
        Verdict::Raw(_) => {}
    }
    a
}

/// Quotes one argument the way `iptables -S` does (`xtables_save_string`): bare when it only
/// holds letters, digits, `_` and `-`, else in double quotes with `"`, `\` and `'` escaped.
pub(crate) fn save_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return arg.to_owned();
    }
    let mut s = String::with_capacity(arg.len() + 2);
    s.push('"');
    for c in arg.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The line `iptables -S` prints for `rule` in `chain` (comments quoted as iptables does; other
/// arguments bare, as iptables prints them).
pub fn iptables_save_line(chain: &str, rule: &Rule) -> String {
    let args = rule_args(rule);
    let mut line = format!("-A {chain}");
    let mut prev = "";
    for a in &args {
        line.push(' ');
        if prev == "--comment" {
            line.push_str(&save_quote(a));
        } else {
            line.push_str(a);
        }
        prev = a;
    }
    line
}

/// Quotes an argument for the iptables-restore parser: double quotes with `\` escapes when it
/// holds anything but plain characters.
fn restore_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.:/,+=@%!^[]".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        return arg.to_owned();
    }
    let mut s = String::with_capacity(arg.len() + 2);
    s.push('"');
    for c in arg.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

fn restore_line(cmd: &[&str], args: &[String]) -> String {
    let mut parts: Vec<String> = cmd.iter().map(|s| restore_quote(s)).collect();
    parts.extend(args.iter().map(|a| restore_quote(a)));
    parts.join(" ")
}

/// The `iptables-restore --noflush` input for changes of one family.
pub(crate) fn restore_text(changes: &[&Change]) -> FirewallResult<String> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for change in changes {
        let table = change.table();
        let line = match change {
            Change::AddTable(_) | Change::DeleteTable(_) => {
                return Err(FirewallError::invalid(format!("iptables tables cannot be created or deleted ({table})")));
            }
            Change::AddChain { chain, .. } => {
                if chain.base_chain().is_some() {
                    return Err(FirewallError::invalid(format!("iptables cannot create base chain {}", chain.name)));
                }
                restore_line(&["-N", &chain.name], &[])
            }
            Change::SetPolicy { chain, base } => {
                restore_line(&["-P", &chain.name, &base.policy.as_str().to_ascii_uppercase()], &[])
            }
            Change::FlushChain(c) => restore_line(&["-F", &c.name], &[]),
            Change::DeleteChain(c) => restore_line(&["-X", &c.name], &[]),
            Change::AppendRule { chain, rule } => restore_line(&["-A", &chain.name], &rule_args(rule)),
            Change::InsertRule { chain, rule } => restore_line(&["-I", &chain.name, "1"], &rule_args(rule)),
            Change::DeleteRule { chain, handle, rule } => match &handle.0 {
                HandleRepr::Spec(spec) => restore_line(&["-D", &chain.name], spec),
                other => {
                    return Err(FirewallError::invalid(format!(
                        "cannot delete rule [{rule}] from {chain}: {other:?} is not an iptables rule handle"
                    )));
                }
            },
        };
        match sections.iter_mut().find(|(t, _)| *t == table.name) {
            Some((_, lines)) => lines.push(line),
            None => sections.push((table.name.clone(), vec![line])),
        }
    }
    let mut text = String::new();
    for (table, lines) in sections {
        text.push('*');
        text.push_str(&table);
        text.push('\n');
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Splits `iptables -S` output into lines of arguments: whitespace separates, double quotes
/// group (a quoted argument may span lines), a backslash in quotes escapes the next character,
/// and lines starting with `#` (warnings) are skipped.
pub(crate) fn tokenize(output: &str) -> Vec<Vec<String>> {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut line: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = output.chars();
    let end_line = |line: &mut Vec<String>, lines: &mut Vec<Vec<String>>| {
        if !line.is_empty() {
            if !line[0].starts_with('#') {
                lines.push(std::mem::take(line));
            } else {
                line.clear();
            }
        }
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                '"' => quoted = false,
                c => cur.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                in_token = true;
            }
            '\n' => {
                if in_token {
                    line.push(std::mem::take(&mut cur));
                    in_token = false;
                }
                end_line(&mut line, &mut lines);
            }
            c if c.is_whitespace() => {
                if in_token {
                    line.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            c => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        line.push(cur);
    }
    end_line(&mut line, &mut lines);
    lines
}

/// Parses `iptables -t <table> -S` output.
pub(crate) fn parse_table(id: &TableId, output: &str) -> FirewallResult<TableState> {
    parse_listing(id, output, false)
}

/// Parses `iptables -t <table> -S <chain>` output: the chain's `-N` or `-P` line and its rules.
/// Which other chains exist is unknown here, so `-j NAME` jumps to a chain unless `NAME` is a
/// target extension.
pub(crate) fn parse_chain(id: &TableId, output: &str) -> FirewallResult<TableState> {
    parse_listing(id, output, true)
}

fn parse_listing(id: &TableId, output: &str, one_chain: bool) -> FirewallResult<TableState> {
    let builtin = iptables_builtin_chains(&id.name).unwrap_or_default();
    let mut state = TableState::new(Table::new(id.family, id.name.clone()));
    let lines = tokenize(output);
    // Chains first (a rule may jump to a chain declared after it is used... never in -S, but
    // the set of chain names decides whether `-j X` is a jump or an unknown target).
    for l in &lines {
        match l.first().map(String::as_str) {
            Some("-P") if l.len() >= 3 => {
                let policy = match l[2].as_str() {
                    "ACCEPT" => Policy::Accept,
                    "DROP" => Policy::Drop,
                    other => {
                        return Err(FirewallError::new(
                            FirewallErrorKind::Other,
                            format!("unexpected policy {other:?} for chain {} in iptables output", l[1]),
                        ));
                    }
                };
                let base = builtin.iter().find(|(n, _)| *n == l[1]).map(|(_, b)| b.with_policy(policy));
                let chain = match base {
                    Some(b) => Chain::base(l[1].clone(), b),
                    None => Chain::regular(l[1].clone()),
                };
                state.chains.push(ChainState { chain, rules: Vec::new() });
            }
            Some("-N") if l.len() >= 2 => {
                state.chains.push(ChainState { chain: Chain::regular(l[1].clone()), rules: Vec::new() });
            }
            _ => {}
        }
    }
    let names: BTreeSet<String> = state.chains.iter().map(|c| c.chain.name.clone()).collect();
    for l in &lines {
        if l.first().map(String::as_str) != Some("-A") || l.len() < 2 {
            continue;
        }
        let spec = l[2..].to_vec();
        let is_chain = |n: &str| names.contains(n) || (one_chain && !is_target_extension(n));
        let rule = parse_rule_args_with(&spec, &is_chain).normalized(BackendKind::Iptables);
        let Some(chain) = state.chains.iter_mut().find(|c| c.chain.name == l[1]) else {
            return Err(FirewallError::new(
                FirewallErrorKind::Other,
                format!("iptables output has a rule for undeclared chain {}", l[1]),
            ));
        };
        chain.rules.push(ListedRule { rule, handle: RuleHandle(HandleRepr::Spec(spec)) });
    }
    if !one_chain && state.chains.iter().all(|c| !matches!(c.chain.kind, ChainKind::Base(_))) && !builtin.is_empty() {
        return Err(FirewallError::new(
            FirewallErrorKind::Other,
            format!("iptables output for table {id} lists no built-in chain"),
        ));
    }
    Ok(state)
}

/// Parses the arguments of a rule (as `iptables -S` prints them, or as written) into a rule.
/// What the model does not cover becomes raw parts, so parsing never fails.
#[cfg(test)]
pub(crate) fn parse_rule_args(args: &[String], chains: &BTreeSet<String>) -> Rule {
    parse_rule_args_with(args, &|n| chains.contains(n))
}

/// [`parse_rule_args`] where `is_chain` tells whether `-j NAME` (without options) jumps to a
/// chain rather than naming a target extension.
pub(crate) fn parse_rule_args_with(args: &[String], is_chain: &dyn Fn(&str) -> bool) -> Rule {
    let mut p = ArgParser { args, i: 0, rule: Rule::new(Verdict::Continue) };
    p.run(is_chain);
    p.rule
}

/// The standard verdicts and the target extensions iptables 1.8 ships (`libxt_*`, `libipt_*`,
/// `libip6t_*`). iptables refuses a chain named like a target ("chain name may not clash with
/// target name"), so a `-j NAME` that is none of these jumps to a chain.
const TARGET_EXTENSIONS: &[&str] = &[
    "ACCEPT",
    "DROP",
    "RETURN",
    "QUEUE",
    "AUDIT",
    "CHECKSUM",
    "CLASSIFY",
    "CLUSTERIP",
    "CONNMARK",
    "CONNSECMARK",
    "CT",
    "DNAT",
    "DNPT",
    "DSCP",
    "ECN",
    "HL",
    "HMARK",
    "IDLETIMER",
    "LED",
    "LOG",
    "MARK",
    "MASQUERADE",
    "NAT",
    "NETMAP",
    "NFLOG",
    "NFQUEUE",
    "NOTRACK",
    "RATEEST",
    "REDIRECT",
    "REJECT",
    "SECMARK",
    "SET",
    "SNAT",
    "SNPT",
    "SYNPROXY",
    "TCPMSS",
    "TCPOPTSTRIP",
    "TEE",
    "TOS",
    "TPROXY",
    "TRACE",
    "TTL",
    "ULOG",
];

/// True when `name` is a standard verdict or a target extension of iptables.
pub(crate) fn is_target_extension(name: &str) -> bool {
    TARGET_EXTENSIONS.contains(&name)
}

struct ArgParser<'a> {
    args: &'a [String],
    i: usize,
    rule: Rule,
}

fn is_builtin_opt(a: &str) -> bool {
    matches!(
        a,
        "-s" | "--source"
            | "--src"
            | "-d"
            | "--destination"
            | "--dst"
            | "-i"
            | "--in-interface"
            | "-o"
            | "--out-interface"
            | "-p"
            | "--protocol"
    )
}

fn parse_net(v: &str) -> Option<IpNet> {
    v.parse::<IpNet>().ok().or_else(|| v.parse::<IpAddr>().ok().map(IpNet::from))
}

fn parse_nat_target(v: &str) -> Option<(IpAddr, Option<PortRange>)> {
    if let Some(rest) = v.strip_prefix('[') {
        let (addr, port) = rest.split_once("]:")?;
        return Some((addr.parse().ok()?, Some(PortRange::parse(port)?)));
    }
    if let Ok(a) = v.parse::<IpAddr>() {
        return Some((a, None));
    }
    let (addr, port) = v.rsplit_once(':')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    Some((IpAddr::V4(addr), Some(PortRange::parse(port)?)))
}

fn parse_ports(v: &str, list: bool) -> Option<Ports> {
    if list {
        let ranges: Option<Vec<PortRange>> = v.split(',').map(PortRange::parse).collect();
        Some(Ports::List(ranges?))
    } else {
        PortRange::parse(v).map(Ports::Single)
    }
}

fn parse_mark(v: &str) -> Option<(u32, u32)> {
    let num = |s: &str| -> Option<u32> {
        match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        }
    };
    match v.split_once('/') {
        Some((a, b)) => Some((num(a)?, num(b)?)),
        None => Some((num(v)?, u32::MAX)),
    }
}

impl ArgParser<'_> {
    fn peek(&self, k: usize) -> Option<&str> {
        self.args.get(self.i + k).map(String::as_str)
    }

    fn cond(&mut self, negated: bool, test: Match) {
        self.rule.conditions.push(Condition { negated, test });
    }

    fn raw_cond(&mut self, args: Vec<String>) {
        self.rule.conditions.push(Match::Raw(Raw::Iptables(args)).into());
    }

    fn run(&mut self, is_chain: &dyn Fn(&str) -> bool) {
        while self.i < self.args.len() {
            let start = self.i;
            let negated = self.peek(0) == Some("!");
            let at = if negated { 1 } else { 0 };
            let opt = self.peek(at).unwrap_or_default().to_owned();
            if is_builtin_opt(&opt) {
                let Some(val) = self.peek(at + 1).map(str::to_owned) else {
                    self.raw_cond(self.args[start..].to_vec());
                    self.i = self.args.len();
                    return;
                };
                self.i += at + 2;
                let test = match opt.as_str() {
                    "-s" | "--source" | "--src" => parse_net(&val).map(Match::Source),
                    "-d" | "--destination" | "--dst" => parse_net(&val).map(Match::Destination),
                    "-i" | "--in-interface" => Some(Match::InInterface(val.clone())),
                    "-o" | "--out-interface" => Some(Match::OutInterface(val.clone())),
                    _ => Protocol::parse(&val).map(Match::Protocol),
                };
                match test {
                    Some(t) => self.cond(negated, t),
                    None => self.raw_cond(self.args[start..self.i].to_vec()),
                }
            } else if !negated && opt == "-m" {
                self.module();
            } else if !negated && (opt == "-j" || opt == "--jump" || opt == "-g" || opt == "--goto") {
                self.target(is_chain);
                return;
            } else {
                // Something the model does not know: keep it verbatim.
                self.i += at + 1;
                self.raw_cond(self.args[start..self.i].to_vec());
            }
        }
    }

    /// `-m name [!] --opt value ...` up to the next `-m`, built-in option or target.
    fn module(&mut self) {
        let start = self.i;
        let name = self.peek(1).unwrap_or_default().to_owned();
        self.i = (self.i + 2).min(self.args.len());
        // Collect the module's options: (negated, option, values).
        let mut opts: Vec<(bool, String, Vec<String>)> = Vec::new();
        while let Some(tok) = self.peek(0) {
            let negated = tok == "!";
            let opt_tok = if negated { self.peek(1) } else { Some(tok) };
            match opt_tok {
                Some(o) if o.starts_with("--") => {
                    let o = o.to_owned();
                    self.i += if negated { 2 } else { 1 };
                    let mut vals = Vec::new();
                    // `--comment` always takes exactly one value, whatever it looks like.
                    if o == "--comment" {
                        if let Some(v) = self.peek(0) {
                            vals.push(v.to_owned());
                            self.i += 1;
                        }
                    } else {
                        while let Some(v) = self.peek(0) {
                            if v.starts_with('-') || v == "!" {
                                break;
                            }
                            vals.push(v.to_owned());
                            self.i += 1;
                        }
                    }
                    opts.push((negated, o, vals));
                }
                _ => break,
            }
        }
        let raw = self.args[start..self.i].to_vec();
        if !self.known_module(&name, &opts) {
            self.raw_cond(raw);
        }
    }

    /// Turns a known module into conditions; false (nothing added) when it is not fully known.
    fn known_module(&mut self, name: &str, opts: &[(bool, String, Vec<String>)]) -> bool {
        let one = |vals: &[String]| if vals.len() == 1 { Some(vals[0].clone()) } else { None };
        let mut out: Vec<Condition> = Vec::new();
        let mut comment = None;
        for (negated, opt, vals) in opts {
            let Some(v) = one(vals) else { return false };
            let test = match (name, opt.as_str()) {
                ("comment", "--comment") if !negated && self.rule.comment.is_none() && comment.is_none() => {
                    comment = Some(v);
                    continue;
                }
                ("tcp" | "udp" | "sctp", "--sport" | "--source-port") => parse_ports(&v, false).map(Match::SourcePort),
                ("tcp" | "udp" | "sctp", "--dport" | "--destination-port") => {
                    parse_ports(&v, false).map(Match::DestinationPort)
                }
                ("multiport", "--sports" | "--source-ports") => parse_ports(&v, true).map(Match::SourcePort),
                ("multiport", "--dports" | "--destination-ports") => parse_ports(&v, true).map(Match::DestinationPort),
                ("mark", "--mark") => parse_mark(&v).map(|(value, mask)| Match::Mark { value, mask }),
                ("conntrack", "--ctstate") => {
                    let states: Option<Vec<ConnState>> = v.split(',').map(ConnState::parse).collect();
                    states.map(Match::ConnState)
                }
                ("addrtype", "--src-type") => AddrType::parse(&v).map(Match::SourceAddrType),
                ("addrtype", "--dst-type") => AddrType::parse(&v).map(Match::DestinationAddrType),
                ("mac", "--mac-source") => v.parse::<MacAddr>().ok().map(Match::EtherSource),
                _ => None,
            };
            match test {
                Some(t) => out.push(Condition { negated: *negated, test: t }),
                None => return false,
            }
        }
        if opts.is_empty() {
            return false;
        }
        // A port module must follow a matching protocol.
        if matches!(name, "tcp" | "udp" | "sctp" | "multiport") && self.rule.protocol().is_none() {
            return false;
        }
        if let Some(c) = comment {
            self.rule.comment = Some(c);
        }
        self.rule.conditions.extend(out);
        true
    }

    /// `-j TARGET [options]` or `-g CHAIN`; the rest of the arguments.
    fn target(&mut self, is_chain: &dyn Fn(&str) -> bool) {
        let start = self.i;
        let goto = matches!(self.peek(0), Some("-g" | "--goto"));
        let name = self.peek(1).unwrap_or_default().to_owned();
        let opts: Vec<String> = self.args.get(self.i + 2..).unwrap_or_default().to_vec();
        self.i = self.args.len();
        let raw = || Verdict::Raw(Raw::Iptables(self.args[start..].to_vec()));
        let opt = |flag: &str| -> Option<String> { (opts.len() == 2 && opts[0] == flag).then(|| opts[1].clone()) };
        self.rule.verdict = if goto {
            if opts.is_empty() && !name.is_empty() { Verdict::Goto(name) } else { raw() }
        } else {
            match name.as_str() {
                "ACCEPT" if opts.is_empty() => Verdict::Accept,
                "DROP" if opts.is_empty() => Verdict::Drop,
                "RETURN" if opts.is_empty() => Verdict::Return,
                "MASQUERADE" if opts.is_empty() => Verdict::Masquerade,
                "DNAT" => match opt("--to-destination").as_deref().and_then(parse_nat_target) {
                    Some((addr, port)) => Verdict::Dnat { addr, port },
                    None => raw(),
                },
                "SNAT" => match opt("--to-source").as_deref().and_then(parse_nat_target) {
                    Some((addr, port)) => Verdict::Snat { addr, port },
                    None => raw(),
                },
                "MARK" => match (opt("--set-xmark"), opt("--set-mark")) {
                    (Some(v), _) => match parse_mark(&v) {
                        Some((value, mask)) => Verdict::SetMark { value, mask },
                        None => raw(),
                    },
                    (_, Some(v)) => match parse_mark(&v) {
                        Some((value, u32::MAX)) => Verdict::SetMark { value, mask: u32::MAX },
                        _ => raw(),
                    },
                    _ => raw(),
                },
                n if opts.is_empty() && !n.is_empty() && is_chain(n) => Verdict::Jump(name),
                _ => raw(),
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::model::TableFamily;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn chains(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn args(line: &str) -> Vec<String> {
        tokenize(line).remove(0)
    }

    /// Lines copied from `iptables -S` (iptables 1.8.9) after adding the rules by hand.
    const ROUND_TRIPS: &[&str] = &[
        "-A POSTROUTING -s 10.210.0.5/32 -m comment --comment \"name: \\\"net\\\" id: \\\"c1\\\"\" -j CNI-TEST",
        "-A CNI-TEST -d 10.210.0.0/24 -m comment --comment \"name: \\\"net\\\" id: \\\"c1\\\"\" -j ACCEPT",
        "-A CNI-TEST ! -d 224.0.0.0/4 -m comment --comment \"a\\\\b \\\"q\\\" x\" -j MASQUERADE",
        "-A CNI-TEST -p udp -m udp --sport 1000:2000 -j SNAT --to-source 10.210.0.9",
        "-A CNI-TEST -m mark --mark 0x2000/0x2000 -j MASQUERADE",
        "-A CNI-TEST -j MARK --set-xmark 0x2000/0x2000",
        "-A CNI-TEST -m addrtype --dst-type LOCAL -j RETURN",
        "-A CNI-TEST -m comment --comment \"\" -j RETURN",
        "-A CNI-TEST -j MARK --set-xmark 0x5/0xffffffff",
        "-A DN -d 10.210.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.210.0.5:80",
        "-A DN -p tcp -m comment --comment \"dnat name: \\\"pmnet\\\" id: \\\"ctr\\\"\" -m multiport --dports 80,443 -j CNI-TEST",
        "-A DN -p tcp -j DNAT --to-destination 10.0.0.1:80-90",
        "-A DN -p sctp -m sctp --dport 80 -j DNAT --to-destination 10.0.0.1:80",
        "-A DN -s 127.0.0.1/32 -p tcp -m tcp --dport 80 -g CNI-TEST",
        "-A DN -p icmp -j RETURN",
        "-A DN ! -p tcp -j RETURN",
        "-A DN -p tcp -m tcp ! --dport 22 -j RETURN",
        "-A DN ! -i lo -j RETURN",
        "-A DN -m conntrack --ctstate NEW -j RETURN",
        "-A DN -m addrtype ! --dst-type LOCAL -j RETURN",
        "-A DN -m mark ! --mark 0x1 -j RETURN",
        "-A FORWARD -d 10.210.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -i br0 ! -o br0 -j DROP",
        "-A PREROUTING -m mac --mac-source 02:00:00:00:00:01 -j RETURN",
        "-A DN6 -p tcp -j DNAT --to-destination [fd00:210::5]:80",
        "-A DN6 -p tcp -j DNAT --to-destination fd00:210::5",
        "-A DN6 -d fd00:210::/64 -p udp -m multiport --sports 1:5,7 -j RETURN",
        "-A DN6 -m comment --comment simple_Comment-1 -j RETURN",
        "-A DN6 -m comment --comment \"it\\'s\" -j RETURN",
        "-A DN6 -m conntrack --ctstate INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED -j RETURN",
        "-A DN6 -m conntrack ! --ctstate NEW -j RETURN",
        "-A DN6 -p ipv6-icmp -j RETURN",
        "-A DN6 -m mark --mark 0x10/0xf0 -j RETURN",
        "-A DN6 -j MARK --set-xmark 0x10/0xf0",
        "-A DN6 -m addrtype --src-type LOCAL -j RETURN",
        "-A DN6 -p tcp -m tcp --sport 5 --dport 6 -j RETURN",
        "-A DN6 -p tcp -m multiport --sports 6 -m multiport ! --dports 5 -j RETURN",
        "-A POSTROUTING -j SNAT --to-source fd00::1",
        "-A X -s 10.0.0.0/8 -j RETURN",
    ];

    #[test]
    fn iptables_save_lines_parse_and_render_back_identically() {
        let known = chains(&["CNI-TEST", "DN", "DN6", "POSTROUTING", "FORWARD", "PREROUTING", "X"]);
        for line in ROUND_TRIPS {
            let tokens = args(line);
            let rule = parse_rule_args(&tokens[2..], &known);
            assert!(
                !rule.conditions.iter().any(|c| matches!(c.test, Match::Raw(_)))
                    && !matches!(rule.verdict, Verdict::Raw(_)),
                "{line} parsed with raw parts: {rule:?}"
            );
            assert_eq!(rule.normalized(BackendKind::Iptables), rule, "{line} is not in normal form");
            assert_eq!(iptables_save_line(&tokens[1], &rule), *line);
            assert_eq!(rule_args(&rule), tokens[2..].to_vec(), "{line}");
        }
    }

    /// `iptables -S` / `ip6tables -S` after Debian's Go portmap (4 mappings, snat) and firewall
    /// (ingressPolicy same-bridge) plugins, v1.1.1, ran in a namespace.
    const GO_SAVES: [(TableFamily, &str, &str); 4] = [
        (TableFamily::Ip, "nat", include_str!("../../tests/fixtures/firewall/go-v1.1.1-iptables-nat.txt")),
        (TableFamily::Ip, "filter", include_str!("../../tests/fixtures/firewall/go-v1.1.1-iptables-filter.txt")),
        (TableFamily::Ip6, "nat", include_str!("../../tests/fixtures/firewall/go-v1.1.1-ip6tables-nat.txt")),
        (TableFamily::Ip6, "filter", include_str!("../../tests/fixtures/firewall/go-v1.1.1-ip6tables-filter.txt")),
    ];

    #[test]
    fn go_plugins_rules_parse_into_typed_rules_and_render_back_line_for_line() {
        for (family, table, text) in GO_SAVES {
            let t = parse_table(&TableId::new(family, table), text).unwrap();
            let rendered: Vec<String> = t
                .chains
                .iter()
                .flat_map(|c| c.rules.iter().map(|r| iptables_save_line(&c.chain.name, &r.rule)))
                .collect();
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("-A ")).collect();
            assert_eq!(rendered, lines, "{family} {table}");
            for c in &t.chains {
                for r in &c.rules {
                    assert!(
                        !r.rule.conditions.iter().any(|c| matches!(c.test, Match::Raw(_)))
                            && !matches!(r.rule.verdict, Verdict::Raw(_)),
                        "{family} {table}: raw parts in {}",
                        r.rule
                    );
                    assert_eq!(r.rule.normalized(BackendKind::Iptables), r.rule);
                }
            }
        }
        // Spot checks of the typed values.
        let nat = parse_table(&TableId::new(TableFamily::Ip, "nat"), GO_SAVES[0].2).unwrap();
        let entry = &nat.chain("CNI-HOSTPORT-DNAT").unwrap().rules[1].rule;
        assert_eq!(entry.comment.as_deref(), Some(r#"dnat name: "pmnet" id: "ctr-pm""#));
        assert_eq!(entry.conditions[1].test, Match::DestinationPort(Ports::List(vec![8080.into(), 8443.into()])));
        assert_eq!(entry.verdict, Verdict::Jump("CNI-DN-7adb6a9566e33a23756fa".into()));
        let mark = &nat.chain("CNI-HOSTPORT-SETMARK").unwrap().rules[0].rule;
        assert_eq!(mark.verdict, Verdict::SetMark { value: 0x2000, mask: 0x2000 });
    }

    #[test]
    fn go_ipmasq_rules_render_as_iptables_shows_them() {
        let comment = "name: \"mynet\" id: \"ctr1\"";
        let jump = Rule::new(Verdict::Jump("CNI-5f5d2f2a30cd0bc2f2a9d6e1".into()))
            .when(Match::Source(net("10.88.0.5/32")))
            .with_comment(comment);
        assert_eq!(
            iptables_save_line("POSTROUTING", &jump),
            r#"-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j CNI-5f5d2f2a30cd0bc2f2a9d6e1"#
        );
        let accept = Rule::new(Verdict::Accept).when(Match::Destination(net("10.88.0.5/16"))).with_comment(comment);
        assert_eq!(
            iptables_save_line("C", &accept.normalized(BackendKind::Iptables)),
            r#"-A C -d 10.88.0.0/16 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j ACCEPT"#
        );
        let masq = Rule::new(Verdict::Masquerade).when(!Match::Destination(net("ff00::/8"))).with_comment(comment);
        assert_eq!(
            iptables_save_line("C", &masq),
            r#"-A C ! -d ff00::/8 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j MASQUERADE"#
        );
    }

    #[test]
    fn unknown_parts_stay_raw_and_render_verbatim() {
        let known = chains(&["X"]);
        let line =
            "-A X -p tcp -m tcp --tcp-flags SYN,RST SYN -m limit --limit 5/sec -j REJECT --reject-with tcp-reset";
        let tokens = args(line);
        let rule = parse_rule_args(&tokens[2..], &known);
        assert_eq!(rule.conditions[0], Match::Protocol(Protocol::Tcp).into());
        assert_eq!(
            rule.conditions[1],
            Match::Raw(Raw::Iptables(args("-m tcp --tcp-flags SYN,RST SYN"))).into(),
            "{rule:?}"
        );
        assert_eq!(rule.conditions[2], Match::Raw(Raw::Iptables(args("-m limit --limit 5/sec"))).into());
        assert_eq!(rule.verdict, Verdict::Raw(Raw::Iptables(args("-j REJECT --reject-with tcp-reset"))));
        assert_eq!(rule_args(&rule), tokens[2..].to_vec());
        // A target that is not a chain of the table is not a jump.
        let rule = parse_rule_args(&args("-j LOG"), &known);
        assert_eq!(rule.verdict, Verdict::Raw(Raw::Iptables(args("-j LOG"))));
        // A comment that looks like an option.
        let rule = parse_rule_args(&args("-m comment --comment -j -j X"), &known);
        assert_eq!(rule.comment.as_deref(), Some("-j"));
        assert_eq!(rule.verdict, Verdict::Jump("X".into()));
        // Options without a value.
        let rule = parse_rule_args(&args("-s"), &known);
        assert_eq!(rule.conditions, vec![Match::Raw(Raw::Iptables(args("-s"))).into()]);
        let rule = parse_rule_args(&args("-m"), &known);
        assert_eq!(rule.conditions, vec![Match::Raw(Raw::Iptables(args("-m"))).into()]);
    }

    #[test]
    fn tokenizer_handles_quotes_escapes_newlines_and_warnings() {
        let out = "# Warning: iptables-legacy tables present, use iptables-legacy to see them\n\
                   -P INPUT ACCEPT\n-A X -m comment --comment \"line1\nline2 \\\"q\\\" \\\\ \\'\" -j RETURN\n\
                   -A X -m comment --comment \"\" -j RETURN\n";
        let lines = tokenize(out);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], vec!["-P", "INPUT", "ACCEPT"]);
        assert_eq!(lines[1][5], "line1\nline2 \"q\" \\ '");
        assert_eq!(lines[2][5], "");
    }

    #[test]
    fn save_quoting_matches_xtables_save_string() {
        assert_eq!(save_quote("abc_DEF-1"), "abc_DEF-1");
        assert_eq!(save_quote(""), "\"\"");
        assert_eq!(save_quote("a b"), "\"a b\"");
        assert_eq!(save_quote("it's"), "\"it\\'s\"");
        assert_eq!(save_quote("a\\b\"c"), "\"a\\\\b\\\"c\"");
        assert_eq!(save_quote("a.b"), "\"a.b\"");
    }

    #[test]
    fn parses_a_whole_table_with_policies_and_user_chains() {
        let out = "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT DROP\n-P POSTROUTING ACCEPT\n-N CNI-A\n\
                   -A POSTROUTING -s 10.0.0.5/32 -j CNI-A\n-A CNI-A -j MASQUERADE\n";
        let t = parse_table(&TableId::new(TableFamily::Ip, "nat"), out).unwrap();
        let names: Vec<&str> = t.chains.iter().map(|c| c.chain.name.as_str()).collect();
        assert_eq!(names, ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "CNI-A"]);
        assert_eq!(t.chain("OUTPUT").unwrap().chain.base_chain().unwrap().policy, Policy::Drop);
        let post = &t.chain("POSTROUTING").unwrap().rules[0];
        assert_eq!(post.rule.verdict, Verdict::Jump("CNI-A".into()));
        assert_eq!(post.handle.as_spec().unwrap(), &args("-s 10.0.0.5/32 -j CNI-A")[..]);
        assert!(parse_table(&TableId::new(TableFamily::Ip, "nat"), "-A NOPE -j ACCEPT\n").is_err());
    }

    #[test]
    fn restore_input_quotes_for_the_restore_parser() {
        let nat = TableId::new(TableFamily::Ip, "nat");
        let rule = Rule::new(Verdict::Return).with_comment("a \"b\" \\c 'd'");
        let changes = [
            Change::AddChain { table: nat.clone(), chain: Chain::regular("CNI-X") },
            Change::AppendRule { chain: nat.chain("CNI-X"), rule: rule.clone() },
            Change::InsertRule { chain: nat.chain("POSTROUTING"), rule: Rule::new(Verdict::Jump("CNI-X".into())) },
            Change::DeleteRule {
                chain: nat.chain("CNI-X"),
                handle: RuleHandle::spec(args("-m comment --comment \"x y\" -j RETURN")),
                rule: rule.clone(),
            },
            Change::FlushChain(nat.chain("CNI-X")),
            Change::DeleteChain(nat.chain("CNI-X")),
        ];
        let refs: Vec<&Change> = changes.iter().collect();
        assert_eq!(
            restore_text(&refs).unwrap(),
            "*nat\n-N CNI-X\n-A CNI-X -m comment --comment \"a \\\"b\\\" \\\\c 'd'\" -j RETURN\n-I POSTROUTING 1 -j CNI-X\n\
             -D CNI-X -m comment --comment \"x y\" -j RETURN\n-F CNI-X\n-X CNI-X\nCOMMIT\n"
        );
        let bad = Change::DeleteRule { chain: nat.chain("X"), handle: RuleHandle::number(3), rule };
        assert!(restore_text(&[&bad]).is_err());
    }

    #[test]
    fn failed_line_points_at_the_input() {
        assert_eq!(
            failed_line("iptables-restore: line 2 failed", "*nat\n-A X -j Y\nCOMMIT\n").as_deref(),
            Some("-A X -j Y")
        );
        assert_eq!(failed_line("nothing", "x"), None);
    }
}
