//! An in-memory firewall with the semantics and errors of iptables or nftables, for tests.

use std::sync::{Arc, Mutex, MutexGuard};

use super::error::{FirewallError, FirewallErrorKind, FirewallResult};
use super::iptables::{iptables_save_line, rule_args};
use super::model::{BackendKind, ChainKind, IpFamily, Table, TableId};
use super::state::{Change, HandleRepr, RuleHandle, Ruleset, TableState};
use super::validate::IPTABLES_TABLES;
use super::{Firewall, FirewallBackend};

/// A faithful in-memory model of iptables or nftables.
///
/// It holds tables, chains and rules, and applies committed changes with the tool's semantics
/// and errors: appending to a missing chain or jumping to one fails with `NotFound`; deleting a
/// chain that rules still jump to (or, for iptables, that still holds rules) fails with `InUse`;
/// nftables needs the table first; NAT targets are refused in chains no NAT hook reaches; jump
/// loops are refused; each commit is all-or-nothing (iptables: per IP family, as one
/// `iptables-restore` each). Handles are what the real tools give: specifications for iptables
/// (as `iptables -S` would print them), counters for nftables.
///
/// Clones share the same state. [`FakeFirewall::firewall`] gives the [`Firewall`] to hand to the
/// code under test.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use cni_sdk::firewall::fake::FakeFirewall;
/// use cni_sdk::firewall::{Chain, IpFamily, Rule, TableId, Verdict};
/// let fake = FakeFirewall::iptables();
/// let fw = fake.firewall();
/// let nat = TableId::iptables(IpFamily::V4, "nat");
/// fw.ensure_chain(&nat, Chain::regular("CNI-X")).await.unwrap();
/// fw.append(&nat.chain("CNI-X"), Rule::new(Verdict::Masquerade)).await.unwrap();
/// assert_eq!(fake.save(&nat), "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n-N CNI-X\n-A CNI-X -j MASQUERADE\n");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct FakeFirewall {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    rules: Ruleset,
    next_handle: u64,
    usable: bool,
    fail_next: Option<(FirewallErrorKind, String)>,
    commits: usize,
    reads: Vec<FakeRead>,
}

/// One read a [`FakeFirewall`] served, as a real backend would have run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeRead {
    /// A whole table ([`FirewallBackend::read_table`]: `iptables -S`, `nft list table`).
    Table(TableId),
    /// Some chains of a table ([`FirewallBackend::read_chains`]: `iptables -S <chain>`, one
    /// netlink dump per chain).
    Chains(TableId, Vec<String>),
}

impl FakeFirewall {
    /// An iptables model: tables filter, nat, mangle, raw and security in both families, with
    /// their built-in chains (policy accept) and no rules.
    pub fn iptables() -> Self {
        let mut rules = Ruleset::new(BackendKind::Iptables);
        for family in [IpFamily::V4, IpFamily::V6] {
            for name in IPTABLES_TABLES {
                if let Some(t) = TableState::iptables_builtin(&TableId::iptables(family, name)) {
                    rules.tables.push(t);
                }
            }
        }
        Self::with(rules)
    }

    /// An nftables model with no tables.
    pub fn nftables() -> Self {
        Self::with(Ruleset::new(BackendKind::Nftables))
    }

    fn with(rules: Ruleset) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                rules,
                next_handle: 1,
                usable: true,
                fail_next: None,
                commits: 0,
                reads: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock leaves consistent data (every change is
        // applied to a copy first), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A [`Firewall`] backed by this model.
    pub fn firewall(&self) -> Firewall {
        Firewall::new(self.clone())
    }

    /// Makes the backend (un)usable: when unusable, [`Firewall::probe`] fails and every read or
    /// commit fails with [`FirewallErrorKind::Unavailable`], as when the tool is missing.
    pub fn set_usable(&self, usable: bool) {
        self.lock().usable = usable;
    }

    /// Makes the next commit fail with `kind` and `message` (and change nothing).
    pub fn fail_next_commit(&self, kind: FirewallErrorKind, message: impl Into<String>) {
        self.lock().fail_next = Some((kind, message.into()));
    }

    /// How many commits succeeded (each is one `iptables-restore` or `nft -f` run of a real
    /// backend).
    pub fn commits(&self) -> usize {
        self.lock().commits
    }

    /// The reads served so far, oldest first: what planning a batch cost a real backend.
    pub fn reads(&self) -> Vec<FakeRead> {
        self.lock().reads.clone()
    }

    /// Forgets the reads recorded so far.
    pub fn clear_reads(&self) {
        self.lock().reads.clear();
    }

    /// The content of a table.
    pub fn table(&self, id: &TableId) -> Option<TableState> {
        self.lock().rules.table(id).cloned()
    }

    /// Every table.
    pub fn tables(&self) -> Vec<TableState> {
        self.lock().rules.tables.clone()
    }

    /// The table as `iptables -t <table> -S` would print it (policies, user chains, rules);
    /// empty for a missing table. Meaningful for the iptables model.
    pub fn save(&self, id: &TableId) -> String {
        let Some(t) = self.table(id) else { return String::new() };
        let mut out = String::new();
        for c in &t.chains {
            match &c.chain.kind {
                ChainKind::Base(b) => {
                    out.push_str(&format!("-P {} {}\n", c.chain.name, b.policy.as_str().to_ascii_uppercase()))
                }
                ChainKind::Regular => out.push_str(&format!("-N {}\n", c.chain.name)),
            }
        }
        for c in &t.chains {
            for r in &c.rules {
                out.push_str(&iptables_save_line(&c.chain.name, &r.rule));
                out.push('\n');
            }
        }
        out
    }

    fn unusable(kind: BackendKind) -> FirewallError {
        FirewallError::new(FirewallErrorKind::Unavailable, format!("{kind} is not usable (fake)"))
    }
}

impl FirewallBackend for FakeFirewall {
    fn kind(&self) -> BackendKind {
        self.lock().rules.kind
    }

    async fn probe(&self) -> FirewallResult<()> {
        let inner = self.lock();
        if inner.usable { Ok(()) } else { Err(Self::unusable(inner.rules.kind)) }
    }

    async fn list_tables(&self) -> FirewallResult<Vec<Table>> {
        let inner = self.lock();
        if !inner.usable {
            return Err(Self::unusable(inner.rules.kind));
        }
        Ok(inner.rules.tables.iter().map(|t| t.table.clone()).collect())
    }

    async fn read_table(&self, table: &TableId, _comments: bool) -> FirewallResult<Option<TableState>> {
        let mut inner = self.lock();
        if !inner.usable {
            return Err(Self::unusable(inner.rules.kind));
        }
        inner.reads.push(FakeRead::Table(table.clone()));
        Ok(inner.rules.table(table).cloned())
    }

    async fn read_chains(&self, table: &TableId, chains: &[String]) -> FirewallResult<Option<TableState>> {
        let mut inner = self.lock();
        if !inner.usable {
            return Err(Self::unusable(inner.rules.kind));
        }
        inner.reads.push(FakeRead::Chains(table.clone(), chains.to_vec()));
        Ok(inner.rules.table(table).map(|t| {
            let mut t = t.clone();
            t.table.comment = None;
            t.chains.retain(|c| chains.contains(&c.chain.name));
            t
        }))
    }

    async fn commit(&self, changes: &[Change]) -> FirewallResult<()> {
        let mut inner = self.lock();
        let kind = inner.rules.kind;
        if !inner.usable {
            return Err(Self::unusable(kind));
        }
        if let Some((k, msg)) = inner.fail_next.take() {
            return Err(FirewallError::new(k, msg));
        }
        let mut next = inner.next_handle;
        let mut work = inner.rules.clone();
        let mut touched: Vec<TableId> = Vec::new();
        for change in changes {
            if matches!(change, Change::DeleteRule { handle: RuleHandle(HandleRepr::Pending(_)), .. }) {
                return Err(FirewallError::invalid("a pending rule handle cannot be committed"));
            }
            work.apply(change, &mut |_, rule| match kind {
                BackendKind::Iptables => RuleHandle(HandleRepr::Spec(rule_args(rule))),
                BackendKind::Nftables => {
                    next += 1;
                    RuleHandle(HandleRepr::Number(next))
                }
            })?;
            let t = change.table();
            if !touched.contains(&t) {
                touched.push(t);
            }
        }
        for t in &touched {
            work.validate_table(t)?;
        }
        inner.rules = work;
        inner.next_handle = next;
        inner.commits += 1;
        Ok(())
    }
}
