//! Firewall rules (iptables, nftables, and an in-memory fake) for plugins that masquerade,
//! forward ports, filter traffic or check MAC addresses, with Go's chain names and comments.
//!
//! # Design
//!
//! **Model.** A backend-neutral description of what the Go plugins create: [`Table`]s (iptables'
//! fixed `filter`/`nat`/`mangle`/`raw`/`security` in families `ip` and `ip6`; nftables tables of
//! families `ip`, `ip6`, `inet`, `bridge`, with comments), [`Chain`]s (regular, or base chains
//! with type, hook, priority and policy), and [`Rule`]s made of typed [`Match`]es (addresses
//! with negation, protocol, ports and ranges, interfaces, mark with mask, conntrack state,
//! address type, source MAC, ...), a [`Verdict`] (accept, drop, return, jump, goto, masquerade,
//! DNAT, SNAT, set mark, ...) and a comment, plus [`Raw`] parts for what the model lacks (such as
//! portmap's user-written `conditionsV4`). Rules render to iptables arguments and to nft syntax,
//! and parse back from `iptables -S` and `nft -j` output into the same values: rules are kept in
//! a [normal form](Rule#normal-form), and a rule in normal form lists back equal to itself.
//! iptables renders them argument for argument as `iptables -S` prints Go's rules, so Go and this
//! SDK delete each other's rules ([`names`] has Go's chain names and comment formats).
//!
//! **Backends.** A [`FirewallBackend`] only reads tables or chains and commits primitive
//! [`Change`]s: [`IptablesBackend`] (`iptables -S [<chain>]`, `iptables-restore -w --noflush`),
//! [`NftNetlinkBackend`] (nf_tables netlink messages, no process), [`NftablesBackend`]
//! (`nft -j list table`, `nft -f -`) and `fake::FakeFirewall` (feature `test-util`). Everything
//! else — idempotency, validation, the errors of missing or busy objects — is decided once, by a
//! planner shared by all backends, against the state just read. So plugin code behaves the same
//! on each backend, and the fake fails exactly where the tools fail. A chain or rule that is
//! already missing counts as deleted, in every wording of iptables-legacy, iptables-nft and nft
//! (Go's bug B2).
//!
//! **Transactions.** A [`Batch`] collects the operations of one ADD or DEL and
//! [`Firewall::apply`] runs it: read what the batch touches, plan, commit — one
//! `iptables-restore --noflush` per IP family, or one nftables transaction — instead of Go's
//! dozens of `iptables` processes fighting for the xtables lock (bug B4). nftables transactions
//! are atomic in the kernel; an `iptables-restore` run is atomic per table (legacy) or per run
//! (nf_tables), and the families commit one after the other. If another process changed the same
//! objects between reading and committing (the commit fails with `NotFound`, `Exists` or
//! `InUse`), the batch is planned again from a fresh read, up to three times.
//!
//! **Cost.** Reads are scoped to the chains a batch names and the chains its rules jump to
//! ([`FirewallBackend::read_chains`]), never whole tables on the success path, so an ADD does not
//! read the other pods' chains: with netlink a read is one dump of one chain; with iptables it is
//! one `iptables -S <chain>`, and chains an iptables batch creates are not read at all (taken as
//! missing; if one exists, `-N` fails the commit atomically and the batch is planned again from
//! reads). What the planner checks across a whole table (jump loops, NAT hooks, references to a
//! deleted chain) it checks as far as it read; the kernel checks the rest, and a refused commit
//! is planned again against whole tables to report the refusal in the planner's words.
//!
//! **Namespaces.** Backends run their tool in the caller's network namespace, or in the one given
//! to `in_netns`: the tool is then spawned from a dedicated OS thread that entered the namespace
//! (a child inherits its thread's namespace), never from a tokio worker.
//!
//! **Testing plugin code.** Write the code against [`Firewall`], give it
//! `FakeFirewall::iptables().firewall()` (or `nftables()`) in tests, and inspect the fake
//! afterwards (`save` prints a table as `iptables -S` would). The same behaviour suite
//! (`cni-sdk/tests/firewall_behaviour.rs`) runs against the fake and, as root, against iptables
//! (nf_tables and legacy), ip6tables and nftables in throwaway namespaces.
//!
#![cfg_attr(feature = "test-util", doc = "```")]
#![cfg_attr(not(feature = "test-util"), doc = "```ignore")]
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use cni_sdk::firewall::fake::FakeFirewall;
//! use cni_sdk::firewall::{Batch, Chain, Firewall, IpFamily, Match, Rule, TableId, Verdict, names};
//!
//! /// Plugin code: masquerade what leaves a container, like Go's bridge plugin.
//! async fn masquerade(fw: &Firewall, net: &str, id: &str, ip: ipnet::IpNet) -> Result<(), cni_sdk::firewall::FirewallError> {
//!     let nat = TableId::iptables(IpFamily::V4, "nat");
//!     let chain = names::chain_name(net, id);
//!     let comment = names::format_comment(net, id);
//!     let mut batch = Batch::new();
//!     batch
//!         .ensure_chain(&nat, Chain::regular(&chain))
//!         .append_if_absent(&nat.chain(&chain), Rule::new(Verdict::Masquerade).with_comment(&comment))
//!         .append_if_absent(
//!             &nat.chain("POSTROUTING"),
//!             Rule::new(Verdict::Jump(chain.clone())).when(Match::Source(ip)).with_comment(&comment),
//!         );
//!     fw.apply(&batch).await.map(drop)
//! }
//!
//! let fake = FakeFirewall::iptables();
//! masquerade(&fake.firewall(), "mynet", "ctr1", "10.88.0.5/32".parse().unwrap()).await.unwrap();
//! // Idempotent: a second run changes nothing.
//! masquerade(&fake.firewall(), "mynet", "ctr1", "10.88.0.5/32".parse().unwrap()).await.unwrap();
//! assert_eq!(fake.commits(), 1);
//! let nat = fake.save(&TableId::iptables(IpFamily::V4, "nat"));
//! assert!(nat.contains(r#"-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"mynet\" id: \"ctr1\"" -j CNI-"#));
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod ipmasq;
mod iptables;
mod model;
pub mod names;
mod nft_expr;
mod nft_netlink;
mod nftables;
mod plan;
mod process;
mod state;
mod validate;

pub use error::{FirewallError, FirewallErrorKind, FirewallResult};
pub use iptables::{IptablesBackend, IptablesVariant, iptables_save_line};
pub use model::{
    AddrType, BackendKind, BaseChain, Chain, ChainId, ChainKind, ChainType, Condition, ConnState, Hook, IpFamily,
    Match, PRIORITY_BRIDGE_DSTNAT, PRIORITY_DSTNAT, PRIORITY_FILTER, PRIORITY_MANGLE, PRIORITY_RAW, PRIORITY_SECURITY,
    PRIORITY_SRCNAT, Policy, PortRange, Ports, Protocol, Raw, Rule, Table, TableFamily, TableId, Verdict,
};
pub use nft_netlink::NftNetlinkBackend;
pub use nftables::NftablesBackend;
pub use plan::Batch;
pub use state::{ChainState, Change, ListedRule, RuleHandle, TableState};
pub use validate::{IPTABLES_MAX_COMMENT_LEN, NFT_MAX_COMMENT_LEN};

use crate::netns::NetNs;
use state::Ruleset;

/// Go's `utils.SupportsIPTables` (`pkg/utils/netfilter.go`): whether the system's iptables can check for the
/// `filter INPUT` chain, in `netns` or the caller's namespace.
pub async fn supports_iptables(netns: Option<&NetNs>) -> bool {
    let backend = IptablesBackend::new();
    let backend = match netns {
        Some(ns) => backend.in_netns(ns.clone()),
        None => backend,
    };
    Firewall::new(backend).is_usable().await
}

/// Go's `utils.SupportsNFTables` (knftables' checks): whether `nft` is at least
/// 1.0.1 and accepts adding a table in `--check` mode, in `netns` or the caller's namespace.
pub async fn supports_nftables(netns: Option<&NetNs>) -> bool {
    let backend = NftablesBackend::new();
    let backend = match netns {
        Some(ns) => backend.in_netns(ns.clone()),
        None => backend,
    };
    Firewall::new(backend).is_usable().await
}

/// How many times a batch is planned again when the state changed between reading and
/// committing.
const MAX_ATTEMPTS: usize = 3;

/// How many rounds of scoped reads a plan may take before the tables are read whole.
const MAX_READ_ROUNDS: usize = 8;

/// The transport under a [`Firewall`]: reads tables and commits planned changes.
///
/// Implemented by [`IptablesBackend`], [`NftNetlinkBackend`], [`NftablesBackend`] and
/// `fake::FakeFirewall`. All the semantics (idempotency, validation, error kinds) live in
/// [`Firewall`]'s planner, so a backend only moves data; implement it to put another transport
/// under the same model.
pub trait FirewallBackend: Send + Sync + fmt::Debug {
    /// The tool semantics this backend follows.
    fn kind(&self) -> BackendKind;

    /// Checks that the backend can be used (Go's `SupportsIPTables` / `SupportsNFTables`);
    /// fails with [`FirewallErrorKind::Unavailable`] when it cannot.
    fn probe(&self) -> impl Future<Output = FirewallResult<()>> + Send;

    /// The tables that exist (iptables: its fixed tables of both families).
    fn list_tables(&self) -> impl Future<Output = FirewallResult<Vec<Table>>> + Send;

    /// The content of `table`, or `None` when it does not exist. Rules come in the backend's
    /// normal form. With `comments` false a backend may skip work needed only for table and
    /// chain comments.
    fn read_table(
        &self,
        table: &TableId,
        comments: bool,
    ) -> impl Future<Output = FirewallResult<Option<TableState>>> + Send;

    /// Applies `changes` (all of one unit: one IP family for iptables) as one transaction.
    fn commit(&self, changes: &[Change]) -> impl Future<Output = FirewallResult<()>> + Send;

    /// Reads only the chains named in `chains` of `table`: `None` when the table does not exist,
    /// else the table (its comment may be left out) holding those of the chains that exist, each with
    /// all its rules in normal form; other chains are left out. With `chains` empty this only
    /// tells whether the table exists.
    ///
    /// [`Firewall::apply`] reads through this, so that a batch reads what it touches rather than
    /// whole tables. The default reads the whole table and keeps the chains asked for; backends
    /// override it when they can read less.
    fn read_chains(
        &self,
        table: &TableId,
        chains: &[String],
    ) -> impl Future<Output = FirewallResult<Option<TableState>>> + Send {
        async move {
            let t = self.read_table(table, false).await?;
            Ok(t.map(|mut t| {
                t.chains.retain(|c| chains.contains(&c.chain.name));
                t
            }))
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = FirewallResult<T>> + Send + 'a>>;

/// The object-safe form of [`FirewallBackend`], so that [`Firewall`] can hold any backend.
trait DynBackend: Send + Sync + fmt::Debug {
    fn kind(&self) -> BackendKind;
    fn probe_boxed(&self) -> BoxFuture<'_, ()>;
    fn list_tables_boxed(&self) -> BoxFuture<'_, Vec<Table>>;
    fn read_table_boxed<'a>(&'a self, table: &'a TableId, comments: bool) -> BoxFuture<'a, Option<TableState>>;
    fn commit_boxed<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, ()>;
    fn read_chains_boxed<'a>(&'a self, table: &'a TableId, chains: &'a [String]) -> BoxFuture<'a, Option<TableState>>;
}

impl<T: FirewallBackend> DynBackend for T {
    fn kind(&self) -> BackendKind {
        FirewallBackend::kind(self)
    }

    fn probe_boxed(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.probe())
    }

    fn list_tables_boxed(&self) -> BoxFuture<'_, Vec<Table>> {
        Box::pin(self.list_tables())
    }

    fn read_table_boxed<'a>(&'a self, table: &'a TableId, comments: bool) -> BoxFuture<'a, Option<TableState>> {
        Box::pin(self.read_table(table, comments))
    }

    fn commit_boxed<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, ()> {
        Box::pin(self.commit(changes))
    }

    fn read_chains_boxed<'a>(&'a self, table: &'a TableId, chains: &'a [String]) -> BoxFuture<'a, Option<TableState>> {
        Box::pin(self.read_chains(table, chains))
    }
}

/// A handle for firewall operations through one backend. Cheap to clone, `Send + Sync`.
///
/// Reading: [`list_tables`](Firewall::list_tables), [`read_table`](Firewall::read_table),
/// [`list_chains`](Firewall::list_chains), [`list_rules`](Firewall::list_rules). Writing: build a
/// [`Batch`] and [`apply`](Firewall::apply) it (one tool run per family), or use the one-operation
/// shortcuts (`ensure_chain`, `append`, `delete_chain`, ...), each of which is a batch of one.
#[derive(Clone)]
pub struct Firewall {
    backend: Arc<dyn DynBackend>,
}

impl fmt::Debug for Firewall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Firewall").field("backend", &self.backend).finish()
    }
}

impl Firewall {
    /// A firewall over `backend`.
    pub fn new<B: FirewallBackend + 'static>(backend: B) -> Self {
        Self { backend: Arc::new(backend) }
    }

    /// The system's iptables in the caller's network namespace.
    pub fn iptables() -> Self {
        Self::new(IptablesBackend::new())
    }

    /// `nft` in the caller's network namespace.
    pub fn nftables() -> Self {
        Self::new(NftablesBackend::new())
    }

    /// nftables over netlink (no `nft` process) in the caller's network namespace; see
    /// [`NftNetlinkBackend`].
    pub fn nftables_netlink() -> Self {
        Self::new(NftNetlinkBackend::new())
    }

    /// nftables over netlink inside `netns`.
    pub fn nftables_netlink_in(netns: NetNs) -> Self {
        Self::new(NftNetlinkBackend::new().in_netns(netns))
    }

    /// The system's iptables inside `netns`.
    pub fn iptables_in(netns: NetNs) -> Self {
        Self::new(IptablesBackend::new().in_netns(netns))
    }

    /// `nft` inside `netns`.
    pub fn nftables_in(netns: NetNs) -> Self {
        Self::new(NftablesBackend::new().in_netns(netns))
    }

    /// The tool semantics of the backend.
    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// Checks that the backend is usable (Go's `SupportsIPTables` / `SupportsNFTables`): iptables can check for the
    /// `filter INPUT` chain; nft is at least 1.0.1 and accepts adding a table in `--check` mode.
    pub async fn probe(&self) -> FirewallResult<()> {
        self.backend.probe_boxed().await
    }

    /// True when [`probe`](Firewall::probe) succeeds.
    pub async fn is_usable(&self) -> bool {
        self.probe().await.is_ok()
    }

    /// The tables that exist (iptables: `filter`, `nat`, `mangle`, `raw` and `security` of both
    /// families, whether or not the kernel has them).
    pub async fn list_tables(&self) -> FirewallResult<Vec<Table>> {
        self.backend.list_tables_boxed().await
    }

    /// A table's chains and rules (with comments), or `None` when it does not exist.
    pub async fn read_table(&self, table: &TableId) -> FirewallResult<Option<TableState>> {
        validate::validate_table(self.kind(), table)?;
        self.backend.read_table_boxed(table, true).await
    }

    /// The chains of a table; [`NotFound`](FirewallErrorKind::NotFound) when it does not exist.
    pub async fn list_chains(&self, table: &TableId) -> FirewallResult<Vec<Chain>> {
        match self.read_table(table).await? {
            Some(t) => Ok(t.chains.into_iter().map(|c| c.chain).collect()),
            None => Err(FirewallError::not_found(format!("table {table} does not exist"))),
        }
    }

    /// True when the chain exists.
    pub async fn chain_exists(&self, chain: &ChainId) -> FirewallResult<bool> {
        validate::validate_table(self.kind(), &chain.table)?;
        let t = self.backend.read_chains_boxed(&chain.table, std::slice::from_ref(&chain.name)).await?;
        Ok(t.is_some_and(|t| t.chain(&chain.name).is_some()))
    }

    /// The rules of a chain, in order; [`NotFound`](FirewallErrorKind::NotFound) when the chain
    /// does not exist.
    pub async fn list_rules(&self, chain: &ChainId) -> FirewallResult<Vec<ListedRule>> {
        validate::validate_table(self.kind(), &chain.table)?;
        validate::validate_chain_name(self.kind(), &chain.name)?;
        let t = self.backend.read_chains_boxed(&chain.table, std::slice::from_ref(&chain.name)).await?;
        match t.and_then(|mut t| {
            let i = t.chains.iter().position(|c| c.chain.name == chain.name)?;
            Some(t.chains.swap_remove(i))
        }) {
            Some(c) => Ok(c.rules),
            None => Err(FirewallError::not_found(format!("chain {chain} does not exist"))),
        }
    }

    /// Which of `rules` the chain holds (like `iptables -C` for each, from one read): compared
    /// as the backend lists them, so a rule with raw parts matches its listing.
    /// [`NotFound`](FirewallErrorKind::NotFound) when the chain does not exist.
    pub async fn contains_rules(&self, chain: &ChainId, rules: &[Rule]) -> FirewallResult<Vec<bool>> {
        validate::validate_table(self.kind(), &chain.table)?;
        validate::validate_chain_name(self.kind(), &chain.name)?;
        let kind = self.kind();
        let table = self.backend.read_table_boxed(&chain.table, false).await?;
        let Some(table) = table else {
            return Err(FirewallError::not_found(format!("chain {chain} does not exist")));
        };
        let Some(listed) = table.chain(&chain.name) else {
            return Err(FirewallError::not_found(format!("chain {chain} does not exist")));
        };
        let chains = table.chains.iter().map(|c| c.chain.name.clone()).collect();
        Ok(rules
            .iter()
            .map(|r| {
                let want = plan::canonical_rule(kind, &chains, false, r);
                listed.rules.iter().any(|l| l.rule == want)
            })
            .collect())
    }

    /// Applies a batch: per commit unit (iptables: per IP family, in order of first use; nftables:
    /// the whole batch), reads what the batch touches, plans, and commits in one tool run. Returns
    /// the changes committed (empty when everything was already as asked).
    ///
    /// Reads are scoped to the objects the operations name (the chains they change, the chains
    /// their rules jump to), not whole tables, so the cost does not grow with the rest of the
    /// ruleset where the backend can read one chain ([`FirewallBackend::read_chains`]). With
    /// iptables, chains the batch ensures are first taken as missing without reading them (the
    /// usual ADD creates them): creating one that exists fails the whole commit, and the batch is
    /// then planned again from reads. When a commit fails, the tables are read whole and planned
    /// again, so a refusal is reported as the planner words it (the same as if it had been found
    /// before committing), and a conflict (another process changed the same objects: `NotFound`,
    /// `Exists`, `InUse`) is planned again from a fresh read, up to three times.
    ///
    /// Invalid requests fail with [`InvalidArgument`](FirewallErrorKind::InvalidArgument) before
    /// anything runs. With iptables, a failure in the second family leaves the first committed.
    pub async fn apply(&self, batch: &Batch) -> FirewallResult<Vec<Change>> {
        let kind = self.kind();
        plan::check_names(kind, &batch.ops)?;
        let mut committed = Vec::new();
        for unit in batch.units(kind) {
            let tables = plan::tables_of(&unit);
            let mut attempt = 1;
            loop {
                // Assume ensured chains missing only where creating an existing one fails the
                // whole commit: iptables-restore, one table (legacy commits tables one by one).
                let assume = attempt == 1 && kind == BackendKind::Iptables && tables.len() == 1;
                let (state, changes) = self.plan_scoped(&unit, assume).await?;
                if changes.is_empty() {
                    break;
                }
                match self.backend.commit_boxed(&changes).await {
                    Ok(()) => {
                        committed.extend(changes);
                        break;
                    }
                    Err(e) if assume && e.is_conflict() => {
                        // A chain taken as missing exists: plan from reads.
                        tracing::debug!(error = %e, "an ensured chain exists; planning again from reads");
                        attempt += 1;
                    }
                    Err(e) => {
                        if tables.iter().any(|t| !state.is_complete(t)) {
                            // The plan checked only what it read: find what the tool refused.
                            let mut full = Ruleset::new(kind);
                            for t in &tables {
                                let read = self.backend.read_table_boxed(t, false).await?;
                                full.add_full(t, read);
                            }
                            plan::plan(&mut full, &unit)?;
                        }
                        if e.is_conflict() && attempt < MAX_ATTEMPTS {
                            tracing::debug!(error = %e, attempt, "firewall state changed while committing; planning again");
                            attempt += 1;
                            continue;
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(committed)
    }

    /// Plans one unit from scoped reads: reads what the planner asks for until it can plan.
    async fn plan_scoped(&self, unit: &[plan::Op], assume: bool) -> FirewallResult<(Ruleset, Vec<Change>)> {
        let kind = self.kind();
        let mut state = Ruleset::new(kind);
        if assume {
            for t in plan::tables_of(unit) {
                state.assume(&t, &plan::ensured_chains(unit));
            }
        }
        for round in 0.. {
            let mut work = state.clone();
            let needs = match plan::plan(&mut work, unit)? {
                plan::Planned::Changes(changes) => return Ok((work, changes)),
                plan::Planned::Needs(needs) => needs,
            };
            if round >= MAX_READ_ROUNDS {
                // Cannot happen (every round learns what was asked); read everything rather than loop.
                for t in plan::tables_of(unit) {
                    let read = self.backend.read_table_boxed(&t, false).await?;
                    state.add_full(&t, read);
                }
                continue;
            }
            let mut by_table: Vec<(TableId, Vec<String>)> = Vec::new();
            for need in needs {
                let (table, chain) = match need {
                    plan::Need::Table(t) => (t, None),
                    plan::Need::Chain(c) => (c.table, Some(c.name)),
                };
                let entry = match by_table.iter().position(|(t, _)| *t == table) {
                    Some(i) => &mut by_table[i].1,
                    None => {
                        by_table.push((table, Vec::new()));
                        &mut by_table.last_mut().expect("pushed").1
                    }
                };
                entry.extend(chain);
            }
            for (table, chains) in by_table {
                let read = self.backend.read_chains_boxed(&table, &chains).await?;
                state.add_chains(&table, &chains, read);
            }
        }
        unreachable!("the loop above only ends by returning")
    }

    async fn one(&self, f: impl FnOnce(&mut Batch)) -> FirewallResult<Vec<Change>> {
        let mut b = Batch::new();
        f(&mut b);
        self.apply(&b).await
    }

    /// Creates the table if missing (see [`Batch::ensure_table`]).
    pub async fn ensure_table(&self, table: Table) -> FirewallResult<()> {
        self.one(|b| {
            b.ensure_table(table);
        })
        .await
        .map(drop)
    }

    /// Deletes the table if present (nftables; see [`Batch::delete_table`]).
    pub async fn delete_table(&self, table: &TableId) -> FirewallResult<()> {
        self.one(|b| {
            b.delete_table(table);
        })
        .await
        .map(drop)
    }

    /// Creates the chain if missing (see [`Batch::ensure_chain`]).
    pub async fn ensure_chain(&self, table: &TableId, chain: Chain) -> FirewallResult<()> {
        self.one(|b| {
            b.ensure_chain(table, chain);
        })
        .await
        .map(drop)
    }

    /// Removes every rule of the chain, if it exists.
    pub async fn flush_chain(&self, chain: &ChainId) -> FirewallResult<()> {
        self.one(|b| {
            b.flush_chain(chain);
        })
        .await
        .map(drop)
    }

    /// Deletes the chain if it exists (see [`Batch::delete_chain`]).
    pub async fn delete_chain(&self, chain: &ChainId) -> FirewallResult<()> {
        self.one(|b| {
            b.delete_chain(chain);
        })
        .await
        .map(drop)
    }

    /// Appends a rule.
    pub async fn append(&self, chain: &ChainId, rule: Rule) -> FirewallResult<()> {
        self.one(|b| {
            b.append(chain, rule);
        })
        .await
        .map(drop)
    }

    /// Appends a rule unless an equal one exists; true when it was added.
    pub async fn append_if_absent(&self, chain: &ChainId, rule: Rule) -> FirewallResult<bool> {
        self.one(|b| {
            b.append_if_absent(chain, rule);
        })
        .await
        .map(|c| !c.is_empty())
    }

    /// Inserts a rule at the top.
    pub async fn insert(&self, chain: &ChainId, rule: Rule) -> FirewallResult<()> {
        self.one(|b| {
            b.insert(chain, rule);
        })
        .await
        .map(drop)
    }

    /// Inserts a rule at the top unless an equal one exists; true when it was added.
    pub async fn insert_if_absent(&self, chain: &ChainId, rule: Rule) -> FirewallResult<bool> {
        self.one(|b| {
            b.insert_if_absent(chain, rule);
        })
        .await
        .map(|c| !c.is_empty())
    }

    /// Deletes the first rule equal to `rule`; true when one was deleted.
    pub async fn delete_rule(&self, chain: &ChainId, rule: Rule) -> FirewallResult<bool> {
        self.one(|b| {
            b.delete_rule(chain, rule);
        })
        .await
        .map(|c| !c.is_empty())
    }

    /// Deletes the rule with this handle; true when it was there.
    pub async fn delete_rule_handle(&self, chain: &ChainId, handle: RuleHandle) -> FirewallResult<bool> {
        self.one(|b| {
            b.delete_rule_handle(chain, handle);
        })
        .await
        .map(|c| !c.is_empty())
    }

    /// Deletes the rules for which `predicate` holds; returns how many.
    pub async fn delete_rules_where(
        &self,
        chain: &ChainId,
        predicate: impl Fn(&Rule) -> bool + Send + Sync + 'static,
    ) -> FirewallResult<usize> {
        self.one(|b| {
            b.delete_rules_where(chain, predicate);
        })
        .await
        .map(|c| c.len())
    }

    /// Deletes the rules whose comment is exactly `comment`; returns how many.
    pub async fn delete_rules_with_comment(&self, chain: &ChainId, comment: &str) -> FirewallResult<usize> {
        let comment = comment.to_owned();
        self.one(|b| {
            b.delete_rules_with_comment(chain, comment);
        })
        .await
        .map(|c| c.len())
    }
}
