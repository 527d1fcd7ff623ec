//! The content of tables as listed, the primitive changes a backend commits, and the tool-level
//! semantics of those changes (shared by the planner and the fake, so both fail the same way).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::error::{FirewallError, FirewallErrorKind, FirewallResult};
use super::model::{
    BackendKind, BaseChain, Chain, ChainId, ChainKind, ChainType, Hook, Match, Policy, Rule, Table, TableId, Verdict,
};
use super::validate::validate_rule;

/// Identifies one listed rule so that exactly it can be deleted: an nft handle, or (iptables,
/// which has no handles) the rule's specification as `iptables -S` printed it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RuleHandle(pub(crate) HandleRepr);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HandleRepr {
    /// nft's rule handle (or the fake's counter).
    Number(u64),
    /// The arguments after `-A <chain>` (iptables deletes the first rule equal to them).
    Spec(Vec<String>),
    /// A rule added earlier in the same batch, not committed yet.
    Pending(u64),
}

impl RuleHandle {
    /// A numeric handle (nft's).
    pub fn number(handle: u64) -> Self {
        Self(HandleRepr::Number(handle))
    }

    /// A specification handle (iptables: the arguments after `-A <chain>`).
    pub fn spec(args: Vec<String>) -> Self {
        Self(HandleRepr::Spec(args))
    }

    /// The numeric handle, if this is one.
    pub fn as_number(&self) -> Option<u64> {
        match &self.0 {
            HandleRepr::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The specification, if this is one.
    pub fn as_spec(&self) -> Option<&[String]> {
        match &self.0 {
            HandleRepr::Spec(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for RuleHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            HandleRepr::Number(n) => write!(f, "handle {n}"),
            HandleRepr::Spec(s) => write!(f, "spec {s:?}"),
            HandleRepr::Pending(n) => write!(f, "pending #{n}"),
        }
    }
}

/// A rule as listed: its normal form and the handle that deletes exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    /// The rule, in the backend's normal form.
    pub rule: Rule,
    /// What deletes it.
    pub handle: RuleHandle,
}

/// A chain and its rules, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// The chain's definition.
    pub chain: Chain,
    /// Its rules, in order.
    pub rules: Vec<ListedRule>,
}

/// A table with its chains and rules, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    /// The table.
    pub table: Table,
    /// Its chains (iptables: built-in chains first).
    pub chains: Vec<ChainState>,
}

impl TableState {
    /// An empty table.
    pub fn new(table: Table) -> Self {
        Self { table, chains: Vec::new() }
    }

    /// The table's identifier.
    pub fn id(&self) -> TableId {
        self.table.id()
    }

    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<&ChainState> {
        self.chains.iter().find(|c| c.chain.name == name)
    }

    fn chain_mut(&mut self, name: &str) -> Option<&mut ChainState> {
        self.chains.iter_mut().find(|c| c.chain.name == name)
    }

    /// The chains holding rules that jump or go to `target`, with how many such rules.
    pub(crate) fn references_to(&self, target: &str) -> usize {
        self.chains
            .iter()
            .flat_map(|c| c.rules.iter())
            .filter(|r| r.rule.verdict.target_chain() == Some(target))
            .count()
    }

    /// An iptables table with its built-in chains (all empty, policy accept).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn iptables_builtin(table: &TableId) -> Option<Self> {
        let chains = iptables_builtin_chains(&table.name)?;
        let mut t = Self::new(Table::new(table.family, table.name.clone()));
        for (name, base) in chains {
            t.chains.push(ChainState { chain: Chain::base(name, base), rules: Vec::new() });
        }
        Some(t)
    }
}

/// The built-in chains of an iptables table, in the order iptables lists them, with the hook
/// and priority iptables-nft gives them.
pub(crate) fn iptables_builtin_chains(table: &str) -> Option<Vec<(&'static str, BaseChain)>> {
    use ChainType::{Filter, Nat, Route};
    use Hook::*;
    let b = BaseChain::new;
    Some(match table {
        "filter" => {
            vec![("INPUT", b(Filter, Input, 0)), ("FORWARD", b(Filter, Forward, 0)), ("OUTPUT", b(Filter, Output, 0))]
        }
        "nat" => vec![
            ("PREROUTING", b(Nat, Prerouting, -100)),
            ("INPUT", b(Nat, Input, 100)),
            ("OUTPUT", b(Nat, Output, -100)),
            ("POSTROUTING", b(Nat, Postrouting, 100)),
        ],
        "mangle" => vec![
            ("PREROUTING", b(Filter, Prerouting, -150)),
            ("INPUT", b(Filter, Input, -150)),
            ("FORWARD", b(Filter, Forward, -150)),
            ("OUTPUT", b(Route, Output, -150)),
            ("POSTROUTING", b(Filter, Postrouting, -150)),
        ],
        "raw" => vec![("PREROUTING", b(Filter, Prerouting, -300)), ("OUTPUT", b(Filter, Output, -300))],
        "security" => vec![
            ("INPUT", b(Filter, Input, 50)),
            ("FORWARD", b(Filter, Forward, 50)),
            ("OUTPUT", b(Filter, Output, 50)),
        ],
        _ => return None,
    })
}

/// One primitive change, as a backend commits it (planned by [`super::Firewall`] from a
/// [`super::Batch`] against the state it read).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Create a table (nft `add table`).
    AddTable(Table),
    /// Delete a table and everything in it (nft `delete table`).
    DeleteTable(TableId),
    /// Create a chain (iptables `-N`, nft `add chain`).
    AddChain {
        /// The table.
        table: TableId,
        /// The chain.
        chain: Chain,
    },
    /// Set a base chain's policy (iptables `-P`, nft `add chain` with the base definition).
    SetPolicy {
        /// The chain.
        chain: ChainId,
        /// Its full base definition with the new policy.
        base: BaseChain,
    },
    /// Remove every rule of a chain (iptables `-F`, nft `flush chain`).
    FlushChain(ChainId),
    /// Delete a chain (iptables `-X`, nft `delete chain`).
    DeleteChain(ChainId),
    /// Append a rule (iptables `-A`, nft `add rule`).
    AppendRule {
        /// The chain.
        chain: ChainId,
        /// The rule, in normal form.
        rule: Rule,
    },
    /// Insert a rule at the top (iptables `-I <chain> 1`, nft `insert rule`).
    InsertRule {
        /// The chain.
        chain: ChainId,
        /// The rule, in normal form.
        rule: Rule,
    },
    /// Delete one rule (iptables `-D <chain> <spec>`, nft `delete rule ... handle <n>`).
    DeleteRule {
        /// The chain.
        chain: ChainId,
        /// The rule's handle.
        handle: RuleHandle,
        /// The rule (for messages).
        rule: Rule,
    },
}

impl Change {
    /// The table the change touches.
    pub fn table(&self) -> TableId {
        match self {
            Self::AddTable(t) => t.id(),
            Self::DeleteTable(t) | Self::AddChain { table: t, .. } => t.clone(),
            Self::SetPolicy { chain, .. }
            | Self::FlushChain(chain)
            | Self::DeleteChain(chain)
            | Self::AppendRule { chain, .. }
            | Self::InsertRule { chain, .. }
            | Self::DeleteRule { chain, .. } => chain.table.clone(),
        }
    }
}

/// What a scoped read established about a table of which only some chains were read.
///
/// A chain named in `known` exists when the table's state lists it and is known to be missing
/// otherwise; the existence of any other chain is unknown. Of the chains that exist, those in
/// `rules_unknown` were taken as existing without reading them (iptables' built-in chains), so
/// only the rules this batch added to them are listed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Partial {
    pub(crate) known: BTreeSet<String>,
    pub(crate) rules_unknown: BTreeSet<String>,
}

/// What the state knows about one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Knowledge {
    /// Not read: whether it exists is unknown.
    Unknown,
    /// Known to be missing.
    Missing,
    /// Known to exist; `rules` tells whether all its rules are known.
    Present { rules: bool },
}

/// The tables a backend knows, with the semantics of its tool.
///
/// A table is either known completely (read whole) or in part ([`Partial`]: only the chains a
/// batch touches were read). Tables not listed in `tables` are missing when `absent` names them,
/// and unknown otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Ruleset {
    pub(crate) kind: BackendKind,
    pub(crate) tables: Vec<TableState>,
    /// Tables known only in part.
    pub(crate) partial: BTreeMap<TableId, Partial>,
    /// Tables known to be missing.
    pub(crate) absent: BTreeSet<TableId>,
}

impl Ruleset {
    pub(crate) fn new(kind: BackendKind) -> Self {
        Self { kind, tables: Vec::new(), partial: BTreeMap::new(), absent: BTreeSet::new() }
    }

    /// True when everything about `table` is known (read whole, or known to be missing).
    pub(crate) fn is_complete(&self, table: &TableId) -> bool {
        !self.partial.contains_key(table) && (self.absent.contains(table) || self.table(table).is_some())
    }

    /// True when whether `table` exists is known.
    pub(crate) fn table_known(&self, table: &TableId) -> bool {
        self.absent.contains(table) || self.table(table).is_some()
    }

    /// Records a whole table as read (`None`: it does not exist).
    pub(crate) fn add_full(&mut self, id: &TableId, state: Option<TableState>) {
        self.partial.remove(id);
        self.tables.retain(|t| t.id() != *id);
        match state {
            Some(t) => {
                self.absent.remove(id);
                self.tables.push(t);
            }
            None => {
                self.absent.insert(id.clone());
            }
        }
    }

    /// Records the result of reading `chains` of `id` (`None`: the table does not exist; else the
    /// table with those of the chains that exist, with all their rules).
    pub(crate) fn add_chains(&mut self, id: &TableId, chains: &[String], state: Option<TableState>) {
        if self.is_complete(id) {
            return;
        }
        let Some(read) = state else {
            self.tables.retain(|t| t.id() != *id);
            self.partial.remove(id);
            self.absent.insert(id.clone());
            return;
        };
        let TableState { table, chains: mut read_chains } = read;
        self.absent.remove(id);
        if self.table(id).is_none() {
            self.tables.push(TableState::new(table));
        }
        let partial = self.partial.entry(id.clone()).or_default();
        let t = self.tables.iter_mut().find(|t| t.id() == *id).expect("added above");
        for name in chains {
            partial.rules_unknown.remove(name);
            partial.known.insert(name.clone());
            t.chains.retain(|c| c.chain.name != *name);
            if let Some(i) = read_chains.iter().position(|c| c.chain.name == *name) {
                t.chains.push(read_chains.swap_remove(i));
            }
        }
        if self.kind == BackendKind::Iptables {
            sort_iptables_chains(t);
        }
    }

    /// Takes `chains` as missing and an existing iptables table's built-in chains as present,
    /// without reading anything (see [`Knowledge`]).
    pub(crate) fn assume(&mut self, id: &TableId, missing: &[String]) {
        if self.table_known(id) {
            return;
        }
        let mut t = TableState::new(Table::new(id.family, id.name.clone()));
        let mut partial = Partial::default();
        if self.kind == BackendKind::Iptables {
            for (name, base) in iptables_builtin_chains(&id.name).unwrap_or_default() {
                t.chains.push(ChainState { chain: Chain::base(name, base), rules: Vec::new() });
                partial.known.insert(name.to_owned());
                partial.rules_unknown.insert(name.to_owned());
            }
        }
        partial.known.extend(missing.iter().cloned());
        self.tables.push(t);
        self.partial.insert(id.clone(), partial);
    }

    /// What is known about `chain`.
    pub(crate) fn knowledge(&self, chain: &ChainId) -> Knowledge {
        if self.absent.contains(&chain.table) {
            return Knowledge::Missing;
        }
        let Some(t) = self.table(&chain.table) else { return Knowledge::Unknown };
        match self.partial.get(&chain.table) {
            None => match t.chain(&chain.name) {
                Some(_) => Knowledge::Present { rules: true },
                None => Knowledge::Missing,
            },
            Some(p) if !p.known.contains(&chain.name) => Knowledge::Unknown,
            Some(p) => match t.chain(&chain.name) {
                Some(_) => Knowledge::Present { rules: !p.rules_unknown.contains(&chain.name) },
                None => Knowledge::Missing,
            },
        }
    }

    pub(crate) fn table(&self, id: &TableId) -> Option<&TableState> {
        self.tables.iter().find(|t| t.table.family == id.family && t.table.name == id.name)
    }

    fn table_mut(&mut self, id: &TableId) -> Option<&mut TableState> {
        self.tables.iter_mut().find(|t| t.table.family == id.family && t.table.name == id.name)
    }

    fn table_or_not_found(&mut self, id: &TableId) -> FirewallResult<&mut TableState> {
        self.table_mut(id).ok_or_else(|| FirewallError::not_found(format!("table {id} does not exist")))
    }

    pub(crate) fn chain(&self, id: &ChainId) -> Option<&ChainState> {
        self.table(&id.table)?.chain(&id.name)
    }

    /// Applies one primitive change with the tool's semantics and errors. `new_handle` gives
    /// appended and inserted rules their handle.
    pub(crate) fn apply(
        &mut self,
        change: &Change,
        new_handle: &mut dyn FnMut(&ChainId, &Rule) -> RuleHandle,
    ) -> FirewallResult<()> {
        let kind = self.kind;
        match change {
            Change::AddTable(table) => {
                if kind == BackendKind::Iptables {
                    return Err(FirewallError::invalid(format!("iptables cannot create table {}", table.id())));
                }
                if self.table(&table.id()).is_none() {
                    self.absent.remove(&table.id());
                    self.partial.remove(&table.id());
                    self.tables.push(TableState::new(table.clone()));
                }
                Ok(())
            }
            Change::DeleteTable(id) => {
                if kind == BackendKind::Iptables {
                    return Err(FirewallError::invalid(format!("iptables cannot delete table {id}")));
                }
                let before = self.tables.len();
                self.tables.retain(|t| !(t.table.family == id.family && t.table.name == id.name));
                if self.tables.len() == before {
                    return Err(FirewallError::not_found(format!("table {id} does not exist")));
                }
                self.partial.remove(id);
                self.absent.insert(id.clone());
                Ok(())
            }
            Change::AddChain { table, chain } => {
                let t = self.table_or_not_found(table)?;
                match t.chain_mut(&chain.name) {
                    Some(existing) => match (kind, &existing.chain.kind, &chain.kind) {
                        (BackendKind::Nftables, ChainKind::Regular, ChainKind::Regular) => Ok(()),
                        (BackendKind::Nftables, ChainKind::Base(old), ChainKind::Base(new)) if old.same_hook(new) => {
                            existing.chain.kind = ChainKind::Base(*new);
                            Ok(())
                        }
                        _ => Err(FirewallError::new(
                            FirewallErrorKind::Exists,
                            format!("chain {} already exists", table.chain(chain.name.clone())),
                        )),
                    },
                    None => {
                        if kind == BackendKind::Iptables && chain.base_chain().is_some() {
                            return Err(FirewallError::invalid(format!(
                                "iptables cannot create base chain {}; its base chains are the built-in ones",
                                table.chain(chain.name.clone())
                            )));
                        }
                        t.chains.push(ChainState { chain: chain.clone(), rules: Vec::new() });
                        if kind == BackendKind::Iptables {
                            sort_iptables_chains(t);
                        }
                        if let Some(p) = self.partial.get_mut(table) {
                            p.known.insert(chain.name.clone());
                        }
                        Ok(())
                    }
                }
            }
            Change::SetPolicy { chain, base } => {
                if kind == BackendKind::Iptables && chain.table.name == "nat" && base.policy == Policy::Drop {
                    return Err(FirewallError::invalid(format!(
                        "the iptables nat table is not meant for filtering; policy DROP is refused for {chain}"
                    )));
                }
                let c = self.chain_or_not_found(chain)?;
                match &mut c.chain.kind {
                    ChainKind::Base(b) if b.same_hook(base) => {
                        b.policy = base.policy;
                        Ok(())
                    }
                    _ => Err(FirewallError::invalid(format!("chain {chain} is not a base chain with that hook"))),
                }
            }
            Change::FlushChain(chain) => {
                self.chain_or_not_found(chain)?.rules.clear();
                Ok(())
            }
            Change::DeleteChain(chain) => {
                let t = self.table_or_not_found(&chain.table)?;
                let Some(c) = t.chain(&chain.name) else {
                    return Err(FirewallError::not_found(format!("chain {chain} does not exist")));
                };
                if kind == BackendKind::Iptables && c.chain.base_chain().is_some() {
                    return Err(FirewallError::invalid(format!("cannot delete built-in chain {chain}")));
                }
                let refs = t.references_to(&chain.name);
                if refs > 0 {
                    return Err(FirewallError::new(
                        FirewallErrorKind::InUse,
                        format!("cannot delete chain {chain}: {refs} rule(s) still jump to it"),
                    ));
                }
                if kind == BackendKind::Iptables && !c.rules.is_empty() {
                    return Err(FirewallError::new(
                        FirewallErrorKind::InUse,
                        format!("cannot delete chain {chain}: it still holds {} rule(s)", c.rules.len()),
                    ));
                }
                t.chains.retain(|c| c.chain.name != chain.name);
                Ok(())
            }
            Change::AppendRule { chain, rule } | Change::InsertRule { chain, rule } => {
                validate_rule(kind, &chain.table, rule)?;
                let t = self.table_or_not_found(&chain.table)?;
                if t.chain(&chain.name).is_none() {
                    return Err(FirewallError::not_found(format!("chain {chain} does not exist")));
                }
                if let Some(target) = rule.verdict.target_chain() {
                    match t.chain(target) {
                        None => {
                            return Err(FirewallError::not_found(format!(
                                "cannot add rule to {chain}: target chain {target} does not exist in table {}",
                                chain.table
                            )));
                        }
                        Some(c) if c.chain.base_chain().is_some() => {
                            return Err(FirewallError::invalid(format!(
                                "cannot add rule to {chain}: {target} is a base chain; rules cannot jump to it"
                            )));
                        }
                        Some(_) => {}
                    }
                }
                let handle = new_handle(chain, rule);
                let listed = ListedRule { rule: rule.clone(), handle };
                let c = t.chain_mut(&chain.name).expect("checked above");
                if matches!(change, Change::InsertRule { .. }) {
                    c.rules.insert(0, listed);
                } else {
                    c.rules.push(listed);
                }
                Ok(())
            }
            Change::DeleteRule { chain, handle, rule } => {
                let c = self.chain_or_not_found(chain)?;
                match c.rules.iter().position(|r| &r.handle == handle) {
                    Some(i) => {
                        c.rules.remove(i);
                        Ok(())
                    }
                    None => {
                        Err(FirewallError::not_found(format!("rule [{rule}] ({handle:?}) not found in chain {chain}")))
                    }
                }
            }
        }
    }

    fn chain_or_not_found(&mut self, id: &ChainId) -> FirewallResult<&mut ChainState> {
        let t = self.table_or_not_found(&id.table)?;
        t.chain_mut(&id.name).ok_or_else(|| FirewallError::not_found(format!("chain {id} does not exist")))
    }

    /// Checks what the kernel checks when a table changes: no jump loops, NAT targets only where
    /// a NAT hook reaches them, `-m mac` only on input hooks (iptables).
    pub(crate) fn validate_table(&self, id: &TableId) -> FirewallResult<()> {
        let Some(table) = self.table(id) else { return Ok(()) };
        let chains: BTreeMap<&str, &ChainState> = table.chains.iter().map(|c| (c.chain.name.as_str(), c)).collect();

        // Loops, as the kernel finds them: only among chains a base chain reaches (an unreached
        // cycle is accepted until something jumps into it).
        fn visit<'a>(
            name: &'a str,
            chains: &BTreeMap<&'a str, &'a ChainState>,
            stack: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Result<(), Vec<String>> {
            if let Some(pos) = stack.iter().position(|n| *n == name) {
                let mut cycle: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_owned());
                return Err(cycle);
            }
            if done.contains(name) {
                return Ok(());
            }
            stack.push(name);
            if let Some(c) = chains.get(name) {
                for r in &c.rules {
                    if let Some(t) = r.rule.verdict.target_chain() {
                        visit(t, chains, stack, done)?;
                    }
                }
            }
            stack.pop();
            done.insert(name);
            Ok(())
        }
        let mut done = BTreeSet::new();
        for c in table.chains.iter().filter(|c| c.chain.base_chain().is_some()) {
            if let Err(cycle) = visit(&c.chain.name, &chains, &mut Vec::new(), &mut done) {
                return Err(FirewallError::invalid(format!(
                    "rules in table {id} would form a jump loop reached from base chain {}: {} (too many links)",
                    c.chain.name,
                    cycle.join(" -> ")
                )));
            }
        }

        // Hooks reaching each chain.
        let mut reach: BTreeMap<&str, BTreeSet<(ChainTypeKey, Hook)>> = BTreeMap::new();
        for c in &table.chains {
            if let ChainKind::Base(b) = &c.chain.kind {
                let mut todo = vec![c.chain.name.as_str()];
                let ctx = (ChainTypeKey(b.chain_type), b.hook);
                while let Some(n) = todo.pop() {
                    if reach.entry(n).or_default().insert(ctx)
                        && let Some(cs) = chains.get(n)
                    {
                        todo.extend(cs.rules.iter().filter_map(|r| r.rule.verdict.target_chain()));
                    }
                }
            }
        }
        let nat_table = self.kind == BackendKind::Iptables && id.name == "nat";
        for c in &table.chains {
            let contexts = reach.get(c.chain.name.as_str());
            for r in &c.rules {
                let (what, hooks): (&str, &[Hook]) = match r.rule.verdict {
                    Verdict::Masquerade => ("masquerade", &[Hook::Postrouting]),
                    Verdict::Snat { .. } => ("snat", &[Hook::Postrouting, Hook::Input]),
                    Verdict::Dnat { .. } => ("dnat", &[Hook::Prerouting, Hook::Output]),
                    _ => ("", &[]),
                };
                if !what.is_empty() {
                    if self.kind == BackendKind::Iptables && !nat_table {
                        return Err(FirewallError::invalid(format!(
                            "{what} is only valid in the nat table, not in chain {} (rule: {})",
                            id.chain(c.chain.name.clone()),
                            r.rule
                        )));
                    }
                    for (ty, hook) in contexts.into_iter().flatten() {
                        if ty.0 != ChainType::Nat || !hooks.contains(hook) {
                            return Err(FirewallError::invalid(format!(
                                "{what} is only valid in nat chains reached from {}; chain {} is reached from {} {} (rule: {})",
                                hooks.iter().map(|h| h.as_str()).collect::<Vec<_>>().join("/"),
                                id.chain(c.chain.name.clone()),
                                ty.0.as_str(),
                                hook.as_str(),
                                r.rule
                            )));
                        }
                    }
                }
                let mac = r.rule.conditions.iter().any(|c| matches!(c.test, Match::EtherSource(_)));
                if mac && self.kind == BackendKind::Iptables {
                    for (_, hook) in contexts.into_iter().flatten() {
                        if !matches!(hook, Hook::Prerouting | Hook::Input | Hook::Forward) {
                            return Err(FirewallError::invalid(format!(
                                "a MAC source match is only valid on the prerouting, input and forward hooks; chain {} is reached from {} (rule: {})",
                                id.chain(c.chain.name.clone()),
                                hook.as_str(),
                                r.rule
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `ChainType` ordered for use in sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChainTypeKey(ChainType);

impl PartialOrd for ChainTypeKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ChainTypeKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0 as u8).cmp(&(other.0 as u8))
    }
}

/// iptables lists built-in chains first (in their fixed order), then user chains by name.
fn sort_iptables_chains(t: &mut TableState) {
    let builtin: Vec<&str> =
        iptables_builtin_chains(&t.table.name).map(|v| v.into_iter().map(|(n, _)| n).collect()).unwrap_or_default();
    t.chains.sort_by(|a, b| {
        let ka = builtin.iter().position(|n| *n == a.chain.name).unwrap_or(usize::MAX);
        let kb = builtin.iter().position(|n| *n == b.chain.name).unwrap_or(usize::MAX);
        ka.cmp(&kb).then_with(|| a.chain.name.cmp(&b.chain.name))
    });
}
