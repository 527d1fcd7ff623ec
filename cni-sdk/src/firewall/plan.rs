//! Batches of intent-level operations, and the planner that turns them into primitive
//! [`Change`]s against the state a backend read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::error::{FirewallError, FirewallErrorKind, FirewallResult};
use super::iptables;
use super::model::{BackendKind, Chain, ChainId, ChainKind, Rule, Table, TableFamily, TableId};
use super::state::{ChainState, Change, HandleRepr, Knowledge, RuleHandle, Ruleset};
use super::validate::{validate_chain_name, validate_comment, validate_rule, validate_table};

type Predicate = Arc<dyn Fn(&Rule) -> bool + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Op {
    EnsureTable(Table),
    DeleteTable(TableId),
    EnsureChain(TableId, Chain),
    FlushChain(ChainId),
    DeleteChain(ChainId),
    Append { chain: ChainId, rule: Rule, if_absent: bool, top: bool, unless: Option<Predicate> },
    DeleteRule(ChainId, Rule),
    DeleteHandle(ChainId, RuleHandle),
    DeleteWhere(ChainId, Predicate),
}

impl Op {
    pub(crate) fn table(&self) -> TableId {
        match self {
            Self::EnsureTable(t) => t.id(),
            Self::DeleteTable(t) | Self::EnsureChain(t, _) => t.clone(),
            Self::FlushChain(c)
            | Self::DeleteChain(c)
            | Self::Append { chain: c, .. }
            | Self::DeleteRule(c, _)
            | Self::DeleteHandle(c, _)
            | Self::DeleteWhere(c, _) => c.table.clone(),
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnsureTable(t) => write!(f, "ensure table {}", t.id()),
            Self::DeleteTable(t) => write!(f, "delete table {t}"),
            Self::EnsureChain(t, c) => write!(f, "ensure chain {}", t.chain(c.name.clone())),
            Self::FlushChain(c) => write!(f, "flush chain {c}"),
            Self::DeleteChain(c) => write!(f, "delete chain {c}"),
            Self::Append { chain, rule, if_absent, top, unless } => {
                let verb = if *top { "insert" } else { "append" };
                let cond = match (if_absent, unless.is_some()) {
                    (_, true) => " unless an equivalent rule exists",
                    (true, false) => " if absent",
                    (false, false) => "",
                };
                write!(f, "{verb}{cond} [{rule}] in {chain}")
            }
            Self::DeleteRule(c, r) => write!(f, "delete [{r}] from {c}"),
            Self::DeleteHandle(c, h) => write!(f, "delete {h:?} from {c}"),
            Self::DeleteWhere(c, _) => write!(f, "delete matching rules from {c}"),
        }
    }
}

/// Several changes applied together by [`Firewall::apply`](super::Firewall::apply): one
/// `iptables-restore --noflush` per IP family, or one `nft -f -` transaction.
///
/// Every operation is idempotent where that makes sense: "ensure" creates what is missing and
/// leaves what exists, deletions of missing objects succeed (a DEL after an interrupted ADD, or a
/// second DEL, works). Operations apply in order, so a batch can create a chain and then jump to
/// it. Invalid requests are reported when the batch is applied, not when it is built.
///
/// ```
/// use cni_sdk::firewall::{Batch, Chain, IpFamily, Match, Rule, TableId, Verdict};
/// let nat = TableId::iptables(IpFamily::V4, "nat");
/// let mut batch = Batch::new();
/// batch
///     .ensure_chain(&nat, Chain::regular("CNI-EXAMPLE"))
///     .append_if_absent(&nat.chain("CNI-EXAMPLE"), Rule::new(Verdict::Masquerade))
///     .append_if_absent(
///         &nat.chain("POSTROUTING"),
///         Rule::new(Verdict::Jump("CNI-EXAMPLE".into())).when(Match::Source("10.0.0.5/32".parse().unwrap())),
///     );
/// assert_eq!(batch.len(), 3);
/// ```
#[derive(Clone, Default)]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.ops).finish()
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Creates the table if it does not exist (nftables); iptables tables always exist, so this
    /// only checks the name there. An existing table's comment is left as it is.
    pub fn ensure_table(&mut self, table: Table) -> &mut Self {
        self.ops.push(Op::EnsureTable(table));
        self
    }

    /// Deletes the table with everything in it, if it exists (nftables only).
    pub fn delete_table(&mut self, table: &TableId) -> &mut Self {
        self.ops.push(Op::DeleteTable(table.clone()));
        self
    }

    /// Creates the chain if it does not exist. An existing chain of the same kind is kept (its
    /// rules too); a base chain's policy is updated. A chain of that name but another kind (or
    /// another hook) is an [`Exists`](super::FirewallErrorKind::Exists) error. The table must
    /// exist (ensure it first with nftables).
    pub fn ensure_chain(&mut self, table: &TableId, chain: Chain) -> &mut Self {
        self.ops.push(Op::EnsureChain(table.clone(), chain));
        self
    }

    /// Removes every rule of the chain; a missing chain is not an error.
    pub fn flush_chain(&mut self, chain: &ChainId) -> &mut Self {
        self.ops.push(Op::FlushChain(chain.clone()));
        self
    }

    /// Deletes the chain; a missing chain is not an error. Fails with
    /// [`InUse`](super::FirewallErrorKind::InUse) while rules jump to it, and with iptables
    /// while it holds rules (flush it first).
    pub fn delete_chain(&mut self, chain: &ChainId) -> &mut Self {
        self.ops.push(Op::DeleteChain(chain.clone()));
        self
    }

    /// Appends the rule to the chain (which must exist).
    pub fn append(&mut self, chain: &ChainId, rule: Rule) -> &mut Self {
        self.ops.push(Op::Append { chain: chain.clone(), rule, if_absent: false, top: false, unless: None });
        self
    }

    /// Appends the rule unless the chain already holds an equal one (compared in normal form).
    pub fn append_if_absent(&mut self, chain: &ChainId, rule: Rule) -> &mut Self {
        self.ops.push(Op::Append { chain: chain.clone(), rule, if_absent: true, top: false, unless: None });
        self
    }

    /// Inserts the rule at the top of the chain.
    pub fn insert(&mut self, chain: &ChainId, rule: Rule) -> &mut Self {
        self.ops.push(Op::Append { chain: chain.clone(), rule, if_absent: false, top: true, unless: None });
        self
    }

    /// Inserts the rule at the top unless the chain already holds an equal one anywhere (Go's
    /// "insert at position 1 if missing").
    pub fn insert_if_absent(&mut self, chain: &ChainId, rule: Rule) -> &mut Self {
        self.ops.push(Op::Append { chain: chain.clone(), rule, if_absent: true, top: true, unless: None });
        self
    }

    /// Appends the rule unless the chain already holds a rule for which `equivalent` holds
    /// (evaluated on the rules in normal form when the batch is applied), or an equal one.
    ///
    /// For rules that several versions of a plugin wrote with different comments: Go's firewall
    /// plugin v1.1.1 and v1.7+ comment the same `-j RETURN` differently, and either one is
    /// enough.
    pub fn append_unless(
        &mut self,
        chain: &ChainId,
        rule: Rule,
        equivalent: impl Fn(&Rule) -> bool + Send + Sync + 'static,
    ) -> &mut Self {
        let unless: Predicate = Arc::new(equivalent);
        self.ops.push(Op::Append { chain: chain.clone(), rule, if_absent: true, top: false, unless: Some(unless) });
        self
    }

    /// Inserts the rule at the top unless the chain already holds a rule for which `equivalent`
    /// holds, or an equal one (see [`Batch::append_unless`]).
    pub fn insert_unless(
        &mut self,
        chain: &ChainId,
        rule: Rule,
        equivalent: impl Fn(&Rule) -> bool + Send + Sync + 'static,
    ) -> &mut Self {
        let unless: Predicate = Arc::new(equivalent);
        self.ops.push(Op::Append { chain: chain.clone(), rule, if_absent: true, top: true, unless: Some(unless) });
        self
    }

    /// Deletes the first rule equal to `rule` (compared in normal form), like `iptables -D`; a
    /// missing rule or chain is not an error.
    pub fn delete_rule(&mut self, chain: &ChainId, rule: Rule) -> &mut Self {
        self.ops.push(Op::DeleteRule(chain.clone(), rule));
        self
    }

    /// Deletes the rule with this handle (from a listing); a missing rule or chain is not an error.
    pub fn delete_rule_handle(&mut self, chain: &ChainId, handle: RuleHandle) -> &mut Self {
        self.ops.push(Op::DeleteHandle(chain.clone(), handle));
        self
    }

    /// Deletes every rule of the chain for which `predicate` holds (evaluated on the rules in
    /// normal form when the batch is applied); a missing chain is not an error.
    pub fn delete_rules_where(
        &mut self,
        chain: &ChainId,
        predicate: impl Fn(&Rule) -> bool + Send + Sync + 'static,
    ) -> &mut Self {
        self.ops.push(Op::DeleteWhere(chain.clone(), Arc::new(predicate)));
        self
    }

    /// Deletes every rule of the chain whose comment is exactly `comment`.
    pub fn delete_rules_with_comment(&mut self, chain: &ChainId, comment: impl Into<String>) -> &mut Self {
        let comment = comment.into();
        self.delete_rules_where(chain, move |r| r.has_comment(&comment))
    }

    /// Deletes every rule of the chain whose comment starts with `prefix`.
    pub fn delete_rules_with_comment_prefix(&mut self, chain: &ChainId, prefix: impl Into<String>) -> &mut Self {
        let prefix = prefix.into();
        self.delete_rules_where(chain, move |r| r.comment.as_deref().is_some_and(|c| c.starts_with(&prefix)))
    }

    /// The operations grouped into the units a backend commits atomically, in order:
    /// one per IP family for iptables, one for nftables.
    pub(crate) fn units(&self, kind: BackendKind) -> Vec<Vec<Op>> {
        match kind {
            BackendKind::Nftables => vec![self.ops.clone()],
            BackendKind::Iptables => {
                let mut units: Vec<(TableFamily, Vec<Op>)> = Vec::new();
                for op in &self.ops {
                    let family = op.table().family;
                    match units.iter_mut().find(|(f, _)| *f == family) {
                        Some((_, ops)) => ops.push(op.clone()),
                        None => units.push((family, vec![op.clone()])),
                    }
                }
                units.into_iter().map(|(_, ops)| ops).collect()
            }
        }
    }
}

/// Checks the names of everything the operations touch (before any state is read).
pub(crate) fn check_names(kind: BackendKind, ops: &[Op]) -> FirewallResult<()> {
    for op in ops {
        validate_table(kind, &op.table())?;
        match op {
            Op::EnsureChain(_, chain) => validate_chain_name(kind, &chain.name)?,
            Op::FlushChain(c)
            | Op::DeleteChain(c)
            | Op::Append { chain: c, .. }
            | Op::DeleteRule(c, _)
            | Op::DeleteHandle(c, _)
            | Op::DeleteWhere(c, _) => validate_chain_name(kind, &c.name)?,
            Op::EnsureTable(_) | Op::DeleteTable(_) => {}
        }
    }
    Ok(())
}

/// The tables the operations touch, in first-use order.
pub(crate) fn tables_of(ops: &[Op]) -> Vec<TableId> {
    let mut out: Vec<TableId> = Vec::new();
    for op in ops {
        let t = op.table();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// The rule as the backend will list it: the normal form, and for iptables the parse of its
/// rendering (with `chains` the chains of its table), so raw arguments the parser knows become
/// typed as `iptables -S` would show them. `partial`: the table is known only in part, so a
/// `-j NAME` that is no target extension is taken as a chain.
pub(crate) fn canonical_rule(kind: BackendKind, chains: &BTreeSet<String>, partial: bool, rule: &Rule) -> Rule {
    let rule = rule.normalized(kind);
    match kind {
        BackendKind::Nftables => rule,
        BackendKind::Iptables => {
            // A typed jump stays a jump, even to a chain that does not exist (yet).
            let target = rule.verdict.target_chain();
            let is_chain =
                |n: &str| chains.contains(n) || target == Some(n) || (partial && !iptables::is_target_extension(n));
            iptables::parse_rule_args_with(&iptables::rule_args(&rule), &is_chain).normalized(kind)
        }
    }
}

/// What the planner must read before it can plan a batch (see [`plan`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Need {
    /// Whether the table exists.
    Table(TableId),
    /// Whether the chain exists, its definition and all its rules.
    Chain(ChainId),
}

/// The outcome of planning against what is known.
#[derive(Debug)]
pub(crate) enum Planned {
    /// The changes to commit, in order (empty: nothing to do).
    Changes(Vec<Change>),
    /// Facts the plan depends on that are not known yet: read them and plan again.
    Needs(Vec<Need>),
}

/// The regular chains the operations ensure: what an iptables plan may take as missing without
/// reading (see [`super::Firewall::apply`]).
pub(crate) fn ensured_chains(ops: &[Op]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for op in ops {
        if let Op::EnsureChain(_, c) = op
            && c.kind == ChainKind::Regular
            && !out.contains(&c.name)
        {
            out.push(c.name.clone());
        }
    }
    out
}

/// Plans `ops` against `state` (which it updates as the changes would): the primitive changes
/// to commit, in order. Errors are those the tool would give, found before anything is run.
///
/// `state` may know the tables only in part (scoped reads): the planner then asks for what it
/// is missing ([`Planned::Needs`], as many needs as one pass finds) rather than guess, and checks
/// what depends on the whole table (jump loops, NAT hooks, rules still jumping to a deleted
/// chain) only as far as it knows the table; the tool checks the rest when committing. A rule
/// that jumps to a chain known to be missing when planning starts cannot be in any chain yet,
/// so adding it "if absent" or deleting it needs no read of the chain it goes to.
pub(crate) fn plan(state: &mut Ruleset, ops: &[Op]) -> FirewallResult<Planned> {
    let kind = state.kind;
    let missing_at_start = MissingAtStart::of(state);
    let mut planner = Planner { state, out: Vec::new(), next_pending: 0, needs: Vec::new(), missing_at_start };
    let mut touched: BTreeSet<TableId> = BTreeSet::new();
    for op in ops {
        touched.insert(op.table());
        match planner.op(kind, op) {
            Ok(()) | Err(Stop::Need) => {}
            // A failure after a skipped operation may be caused by the skip: read first.
            Err(Stop::Fail(_)) if !planner.needs.is_empty() => break,
            Err(Stop::Fail(e)) => return Err(e.context(format!("{op:?}"))),
        }
    }
    if !planner.needs.is_empty() {
        let mut needs = planner.needs;
        needs.sort();
        needs.dedup();
        return Ok(Planned::Needs(needs));
    }
    for t in &touched {
        planner.state.validate_table(t)?;
    }
    Ok(Planned::Changes(planner.out.into_iter().map(|(c, _)| c).collect()))
}

/// Why planning an operation stopped.
enum Stop {
    /// It depends on something not read yet (recorded in `Planner::needs`).
    Need,
    /// It cannot be done.
    Fail(FirewallError),
}

impl From<FirewallError> for Stop {
    fn from(e: FirewallError) -> Self {
        Self::Fail(e)
    }
}

/// The chains known to be missing when planning started.
struct MissingAtStart {
    /// Per table: the chains that existed (whole tables) or were known (partial tables: the
    /// names read, with whether each existed).
    tables: BTreeMap<TableId, (BTreeSet<String>, Option<BTreeSet<String>>)>,
    absent: BTreeSet<TableId>,
}

impl MissingAtStart {
    fn of(state: &Ruleset) -> Self {
        let tables = state
            .tables
            .iter()
            .map(|t| {
                let present: BTreeSet<String> = t.chains.iter().map(|c| c.chain.name.clone()).collect();
                (t.id(), (present, state.partial.get(&t.id()).map(|p| p.known.clone())))
            })
            .collect();
        Self { tables, absent: state.absent.clone() }
    }

    fn contains(&self, chain: &ChainId) -> bool {
        if self.absent.contains(&chain.table) {
            return true;
        }
        match self.tables.get(&chain.table) {
            Some((present, None)) => !present.contains(&chain.name),
            Some((present, Some(known))) => known.contains(&chain.name) && !present.contains(&chain.name),
            None => false,
        }
    }
}

struct Planner<'a> {
    state: &'a mut Ruleset,
    /// The changes, each with the pending id of the rule it adds (if any).
    out: Vec<(Change, Option<u64>)>,
    next_pending: u64,
    needs: Vec<Need>,
    missing_at_start: MissingAtStart,
}

impl Planner<'_> {
    fn emit(&mut self, change: Change) -> FirewallResult<()> {
        let pending = match change {
            Change::AppendRule { .. } | Change::InsertRule { .. } => {
                self.next_pending += 1;
                Some(self.next_pending)
            }
            _ => None,
        };
        let handle = RuleHandle(HandleRepr::Pending(pending.unwrap_or_default()));
        self.state.apply(&change, &mut |_, _| handle.clone())?;
        self.out.push((change, pending));
        Ok(())
    }

    /// Deletes a listed rule: a rule added earlier in this batch is simply not added.
    fn delete(&mut self, chain: &ChainId, handle: RuleHandle, rule: Rule) -> FirewallResult<()> {
        if let HandleRepr::Pending(n) = handle.0 {
            self.state.apply(&Change::DeleteRule { chain: chain.clone(), handle, rule }, &mut |_, _| {
                RuleHandle(HandleRepr::Pending(0))
            })?;
            self.out.retain(|(_, p)| *p != Some(n));
            return Ok(());
        }
        self.emit(Change::DeleteRule { chain: chain.clone(), handle, rule })
    }

    fn need(&mut self, need: Need) -> Stop {
        self.needs.push(need);
        Stop::Need
    }

    /// Whether the table exists.
    fn table_exists(&mut self, table: &TableId) -> Result<bool, Stop> {
        if self.state.table(table).is_some() {
            Ok(true)
        } else if self.state.absent.contains(table) {
            Ok(false)
        } else {
            Err(self.need(Need::Table(table.clone())))
        }
    }

    /// The chain's definition, `None` when it is missing.
    fn chain_kind(&mut self, chain: &ChainId) -> Result<Option<ChainKind>, Stop> {
        match self.state.knowledge(chain) {
            Knowledge::Unknown => Err(self.need(Need::Chain(chain.clone()))),
            Knowledge::Missing => Ok(None),
            Knowledge::Present { .. } => Ok(self.state.chain(chain).map(|c| c.chain.kind)),
        }
    }

    /// The chain with all its rules, `None` when it is missing.
    fn chain_rules(&mut self, chain: &ChainId) -> Result<Option<&ChainState>, Stop> {
        match self.state.knowledge(chain) {
            Knowledge::Unknown | Knowledge::Present { rules: false } => Err(self.need(Need::Chain(chain.clone()))),
            Knowledge::Missing => Ok(None),
            Knowledge::Present { rules: true } => Ok(self.state.chain(chain)),
        }
    }

    /// The rules of the chain among which `rule` could be: all of them, or when `rule` jumps to
    /// a chain that was missing when planning started, only those added by this batch (the
    /// state's list, whether or not the rest is known). `None` when the chain is missing.
    fn candidates(&mut self, chain: &ChainId, rule: &Rule) -> Result<Option<&ChainState>, Stop> {
        let new_target = rule
            .verdict
            .target_chain()
            .is_some_and(|t| self.missing_at_start.contains(&chain.table.chain(t.to_owned())));
        if new_target {
            return match self.chain_kind(chain)? {
                Some(_) => Ok(self.state.chain(chain)),
                None => Ok(None),
            };
        }
        self.chain_rules(chain)
    }

    /// The rule as the backend will list it (see [`canonical_rule`]).
    fn canonical(&self, kind: BackendKind, chain: &ChainId, rule: &Rule) -> Rule {
        let chains: BTreeSet<String> = self
            .state
            .table(&chain.table)
            .map(|t| t.chains.iter().map(|c| c.chain.name.clone()).collect())
            .unwrap_or_default();
        canonical_rule(kind, &chains, self.state.partial.contains_key(&chain.table), rule)
    }

    fn op(&mut self, kind: BackendKind, op: &Op) -> Result<(), Stop> {
        match op {
            Op::EnsureTable(table) => {
                let id = table.id();
                if let Some(c) = &table.comment {
                    if kind == BackendKind::Iptables {
                        return Err(
                            FirewallError::invalid(format!("iptables tables have no comments (table {id})")).into()
                        );
                    }
                    validate_comment(kind, "table", c)?;
                }
                match (kind, self.table_exists(&id)?) {
                    (_, true) => Ok(()),
                    (BackendKind::Iptables, false) => Err(FirewallError::new(
                        FirewallErrorKind::Unavailable,
                        format!("iptables table {id} is not available"),
                    )
                    .into()),
                    (BackendKind::Nftables, false) => Ok(self.emit(Change::AddTable(table.clone()))?),
                }
            }
            Op::DeleteTable(id) => {
                if kind == BackendKind::Iptables {
                    return Err(
                        FirewallError::invalid(format!("iptables tables cannot be deleted (table {id})")).into()
                    );
                }
                if self.table_exists(id)? {
                    self.emit(Change::DeleteTable(id.clone()))?;
                }
                Ok(())
            }
            Op::EnsureChain(table, chain) => {
                if let Some(c) = &chain.comment {
                    if kind == BackendKind::Iptables {
                        return Err(FirewallError::invalid(format!(
                            "iptables chains have no comments (chain {})",
                            table.chain(chain.name.clone())
                        ))
                        .into());
                    }
                    validate_comment(kind, "chain", c)?;
                }
                if !self.table_exists(table)? {
                    return Err(FirewallError::not_found(format!("table {table} does not exist")).into());
                }
                let id = table.chain(chain.name.clone());
                // The full definition (a base chain's policy): a chain taken as existing
                // without a read (an iptables built-in chain) must be read.
                let existing = self.chain_rules(&id)?.map(|c| c.chain.kind);
                match existing {
                    None => {
                        if kind == BackendKind::Iptables && chain.base_chain().is_some() {
                            return Err(FirewallError::invalid(format!(
                                "iptables cannot create base chain {id}; its base chains are the built-in ones"
                            ))
                            .into());
                        }
                        Ok(self.emit(Change::AddChain { table: table.clone(), chain: chain.clone() })?)
                    }
                    Some(ChainKind::Regular) if chain.kind == ChainKind::Regular => Ok(()),
                    Some(ChainKind::Base(old)) => match chain.kind {
                        ChainKind::Base(new) if old.same_hook(&new) => {
                            if old.policy != new.policy {
                                self.emit(Change::SetPolicy { chain: id, base: new })?;
                            }
                            Ok(())
                        }
                        _ => Err(FirewallError::new(
                            FirewallErrorKind::Exists,
                            format!(
                                "chain {id} already exists as a base chain (type {} hook {} priority {})",
                                old.chain_type.as_str(),
                                old.hook.as_str(),
                                old.priority
                            ),
                        )
                        .into()),
                    },
                    Some(ChainKind::Regular) => Err(FirewallError::new(
                        FirewallErrorKind::Exists,
                        format!("chain {id} already exists as a regular chain"),
                    )
                    .into()),
                }
            }
            Op::FlushChain(chain) => {
                if self.chain_rules(chain)?.is_some_and(|c| !c.rules.is_empty()) {
                    self.emit(Change::FlushChain(chain.clone()))?;
                }
                Ok(())
            }
            Op::DeleteChain(chain) => {
                // iptables refuses to delete a chain that holds rules: that needs them.
                let exists = match kind {
                    BackendKind::Iptables => self.chain_rules(chain)?.is_some(),
                    BackendKind::Nftables => self.chain_kind(chain)?.is_some(),
                };
                if exists {
                    self.emit(Change::DeleteChain(chain.clone()))?;
                }
                Ok(())
            }
            Op::Append { chain, rule, if_absent, top, unless } => {
                validate_rule(kind, &chain.table, rule)?;
                let rule = self.canonical(kind, chain, rule);
                // Where it goes and where it jumps must be known to exist (or not).
                let mut unknown = false;
                for c in std::iter::once(chain.clone()).chain(rule.verdict.target_chain().map(|t| chain.table.chain(t)))
                {
                    match self.chain_kind(&c) {
                        Ok(_) => {}
                        Err(Stop::Need) => unknown = true,
                        Err(e) => return Err(e),
                    }
                }
                if unknown {
                    return Err(Stop::Need);
                }
                let present = |r: &Rule| *r == rule || unless.as_ref().is_some_and(|p| p(r));
                if *if_absent
                    && self.candidates(chain, &rule)?.is_some_and(|c| c.rules.iter().any(|r| present(&r.rule)))
                {
                    return Ok(());
                }
                let change = if *top {
                    Change::InsertRule { chain: chain.clone(), rule }
                } else {
                    Change::AppendRule { chain: chain.clone(), rule }
                };
                Ok(self.emit(change)?)
            }
            Op::DeleteRule(chain, rule) => {
                let rule = self.canonical(kind, chain, rule);
                let found =
                    self.candidates(chain, &rule)?.and_then(|c| c.rules.iter().find(|r| r.rule == rule)).cloned();
                if let Some(listed) = found {
                    self.delete(chain, listed.handle, listed.rule)?;
                }
                Ok(())
            }
            Op::DeleteHandle(chain, handle) => {
                let found =
                    self.chain_rules(chain)?.and_then(|c| c.rules.iter().find(|r| &r.handle == handle)).cloned();
                if let Some(listed) = found {
                    self.delete(chain, listed.handle, listed.rule)?;
                }
                Ok(())
            }
            Op::DeleteWhere(chain, predicate) => {
                let matching: Vec<_> = match self.chain_rules(chain)? {
                    Some(c) => c.rules.iter().filter(|r| predicate(&r.rule)).cloned().collect(),
                    None => return Ok(()),
                };
                for listed in matching {
                    self.delete(chain, listed.handle, listed.rule)?;
                }
                Ok(())
            }
        }
    }
}
