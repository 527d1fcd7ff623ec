//! The traffic control model: each link's root qdisc and ingress-side qdisc with its `u32`
//! filters, following `tc_modify_qdisc`, `tc_get_qdisc`, `tc_new_tfilter`, `tc_del_tfilter`
//! and the `u32` classifier's handle allocation.

use crate::net::tc::{FilterDelete, FilterSpec, QdiscOp, QdiscParent, QdiscSpec};
use crate::net::{
    Filter, FilterKind, LinkKind, MirredKind, NetError, NetResult, Qdisc, QdiscKind, Tbf, TcAction, TcHandle,
    U32Filter, U32Key,
};

use super::model::{FLink, LinkId, NsState};

/// The root of a link's egress tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Root {
    /// The built-in `noop` qdisc of a link that was never up (not listed).
    #[default]
    Noop,
    /// The default qdisc attached when the link first went up (handle `0:`).
    Default,
    /// A qdisc someone added.
    Custom { handle: TcHandle, kind: QdiscKind },
}

/// A `mirred` action; the target is forgotten when it leaves the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FAction {
    pub(super) kind: MirredKind,
    pub(super) target: Option<LinkId>,
}

/// One `u32` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    handle: u32,
    keys: Vec<U32Key>,
    classid: Option<TcHandle>,
    actions: Vec<FAction>,
}

/// A classifier instance of one priority (a `tcf_proto`) with its `u32` hash table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tp {
    priority: u16,
    protocol: u16,
    /// The hash table's id (`800` for the first one of the qdisc), shifted to its handle bits.
    htid: u32,
    nodes: Vec<Node>,
}

/// The `ingress` or `clsact` qdisc: one filter block (ingress) or two (clsact: ingress,
/// egress). `u32` hash table ids are shared by both blocks, as the kernel keys them by qdisc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IngressQdisc {
    kind: QdiscKind,
    blocks: [Vec<Tp>; 2],
    /// The cyclic allocator of `u32` hash table ids (reset when the last `u32` instance goes).
    ht_cursor: u32,
}

/// Traffic control state of one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LinkTc {
    pub(super) root: Root,
    pub(super) ingress: Option<IngressQdisc>,
}

impl LinkTc {
    /// The link went up: a link without a qdisc gets its default one.
    pub(super) fn activate(&mut self) {
        if self.root == Root::Noop {
            self.root = Root::Default;
        }
    }

    /// Forgets `mirred` targets pointing at `target`.
    pub(super) fn forget_target(&mut self, target: LinkId) {
        if let Some(q) = &mut self.ingress {
            for tp in q.blocks.iter_mut().flatten() {
                for node in &mut tp.nodes {
                    for a in &mut node.actions {
                        if a.target == Some(target) {
                            a.target = None;
                        }
                    }
                }
            }
        }
    }
}

/// The default qdisc of a link kind: queueless virtual devices get `noqueue`, the others the
/// kernel's built-in default `pfifo_fast`.
fn default_qdisc(kind: &LinkKind) -> &'static str {
    match kind {
        LinkKind::Ifb | LinkKind::Tun | LinkKind::Device => "pfifo_fast",
        _ => "noqueue",
    }
}

fn errno(errno: i32, what: impl std::fmt::Display, why: &str) -> NetError {
    NetError::from_errno(errno, format_args!("{what}: {why}"))
}

/// The check `tbf_change` makes: the bucket (the buffer time at the rate) must hold at least
/// one byte.
fn check_tbf(tbf: &Tbf, what: &str) -> NetResult<Tbf> {
    let buffer_ns = u64::from(tbf.buffer) << 6;
    let max_size = buffer_ns.wrapping_mul(tbf.rate) / 1_000_000_000;
    if max_size == 0 {
        return Err(errno(libc::EINVAL, what, "tbf burst is zero bytes"));
    }
    Ok(*tbf)
}

fn check_kind(kind: &QdiscKind, parent: QdiscParent, what: &str) -> NetResult<QdiscKind> {
    match (kind, parent) {
        (QdiscKind::Tbf(t), QdiscParent::Root) => Ok(QdiscKind::Tbf(check_tbf(t, what)?)),
        (QdiscKind::Ingress | QdiscKind::Clsact, QdiscParent::Ingress) => Ok(kind.clone()),
        (QdiscKind::Ingress | QdiscKind::Clsact, QdiscParent::Root) => {
            Err(errno(libc::EOPNOTSUPP, what, "ingress and clsact attach at ffff:fff1 only"))
        }
        (_, QdiscParent::Ingress) => {
            Err(errno(libc::EINVAL, what, "the parent ID is reserved for ingress and clsact qdiscs"))
        }
        (QdiscKind::Other(k), QdiscParent::Root) => Err(errno(libc::ENOENT, what, &format!("unknown qdisc {k:?}"))),
    }
}

/// Which block a filter parent names, as `__tcf_qdisc_find` / `__tcf_block_find` resolve it.
enum BlockRef {
    Block(usize),
    /// No such qdisc or class: the errno for add/delete (a listing is empty).
    Missing(i32, &'static str),
}

impl FLink {
    fn tc_qdiscs(&self) -> Vec<Qdisc> {
        let mut out = Vec::new();
        let q = |handle, parent, kind| Qdisc { index: self.index, handle, parent, kind };
        match &self.tc.root {
            Root::Noop => {}
            Root::Default => {
                out.push(q(TcHandle::UNSPEC, TcHandle::ROOT, QdiscKind::Other(default_qdisc(&self.kind).into())));
            }
            Root::Custom { handle, kind } => out.push(q(*handle, TcHandle::ROOT, kind.clone())),
        }
        if let Some(i) = &self.tc.ingress {
            out.push(q(TcHandle::INGRESS_QDISC, TcHandle::INGRESS, i.kind.clone()));
        }
        out
    }

    fn block_ref(&self, parent: TcHandle) -> BlockRef {
        const NOT_CLASSFUL: BlockRef = BlockRef::Missing(libc::EINVAL, "the parent qdisc is not classful");
        const NO_BLOCKS: BlockRef = BlockRef::Missing(libc::EOPNOTSUPP, "the parent class does not support blocks");
        if parent == TcHandle::UNSPEC {
            return match &self.tc.root {
                Root::Custom { kind: QdiscKind::Tbf(_), .. } => NO_BLOCKS,
                _ => NOT_CLASSFUL,
            };
        }
        let major = TcHandle::new(parent.major(), 0);
        if let Some(i) = self.tc.ingress.as_ref().filter(|_| major == TcHandle::INGRESS_QDISC) {
            return match (&i.kind, parent.minor()) {
                (QdiscKind::Ingress, _) => BlockRef::Block(0),
                (_, 0xfff2) => BlockRef::Block(0),
                (_, 0xfff3) => BlockRef::Block(1),
                (_, 0) => BlockRef::Missing(libc::EINVAL, "clsact has no block at minor 0"),
                _ => BlockRef::Missing(libc::ENOENT, "the specified class does not exist"),
            };
        }
        match &self.tc.root {
            Root::Custom { handle, kind } if *handle == major => match kind {
                QdiscKind::Tbf(_) => NO_BLOCKS,
                _ => NOT_CLASSFUL,
            },
            _ if major == TcHandle::UNSPEC => NOT_CLASSFUL,
            _ => BlockRef::Missing(libc::EINVAL, "the parent qdisc does not exist"),
        }
    }
}

impl IngressQdisc {
    fn new(kind: QdiscKind) -> Self {
        Self { kind, blocks: [Vec::new(), Vec::new()], ht_cursor: 0 }
    }

    /// `gen_new_htid`: the first `u32` instance of a qdisc gets table `800:`; later ones get
    /// `801:`... from a cyclic allocator that lives as long as any instance does.
    fn new_htid(&mut self) -> NetResult<u32> {
        let used: Vec<u32> = self.blocks.iter().flatten().map(|tp| tp.htid >> 20).collect();
        if used.is_empty() {
            self.ht_cursor = 0;
            return Ok(0x800 << 20);
        }
        let ids = (self.ht_cursor + 1..0x7ff).chain(1..=self.ht_cursor.min(0x7fe));
        for id in ids {
            if !used.contains(&(id | 0x800)) {
                self.ht_cursor = id;
                return Ok((id | 0x800) << 20);
            }
        }
        Err(NetError::from_errno(libc::ENOMEM, "add u32 filter: no free hash table id"))
    }
}

impl NsState {
    fn tc_link(&self, index: u32, what: &str) -> NetResult<&FLink> {
        self.links.get(&index).ok_or_else(|| errno(libc::ENODEV, what, "no such link"))
    }

    fn tc_link_mut(&mut self, index: u32, what: &str) -> NetResult<&mut FLink> {
        self.links.get_mut(&index).ok_or_else(|| errno(libc::ENODEV, what, "no such link"))
    }

    pub(super) fn qdiscs(&self, index: Option<u32>) -> Vec<Qdisc> {
        self.links.values().filter(|l| index.is_none_or(|i| l.index == i)).flat_map(FLink::tc_qdiscs).collect()
    }

    /// `tc_modify_qdisc` (add, replace) and `tc_get_qdisc` (delete) for the root and ingress
    /// parents.
    pub(super) fn change_qdisc(&mut self, spec: &QdiscSpec) -> NetResult<()> {
        let what = spec.to_string();
        let link = self.tc_link_mut(spec.index, &what)?;
        if spec.op == QdiscOp::Delete {
            return delete_qdisc(link, spec, &what);
        }
        let kind = spec.kind.as_ref().ok_or_else(|| errno(libc::EINVAL, &what, "no qdisc kind"))?;
        let replace = spec.op == QdiscOp::Replace;
        let excl = spec.op == QdiscOp::Add;
        // The ingress-side qdiscs are always `ffff:` (the kernel backend asks for that).
        let implied = if kind.is_ingress() { TcHandle::INGRESS_QDISC } else { TcHandle::UNSPEC };
        let handle = spec.handle.unwrap_or(implied);
        // The qdisc attached at the parent now, unless it is a default one (handle 0).
        let current: Option<(TcHandle, QdiscKind)> = match spec.parent {
            QdiscParent::Root => match &link.tc.root {
                Root::Custom { handle, kind } => Some((*handle, kind.clone())),
                _ => None,
            },
            QdiscParent::Ingress => link.tc.ingress.as_ref().map(|i| (TcHandle::INGRESS_QDISC, i.kind.clone())),
        };
        let others: Vec<(TcHandle, QdiscKind)> =
            link.tc_qdiscs().into_iter().filter(|q| !q.is_default()).map(|q| (q.handle, q.kind)).collect();
        let create = match &current {
            Some((h, _)) if handle != TcHandle::UNSPEC && *h == handle => false,
            Some(_) if handle != TcHandle::UNSPEC => {
                if !replace {
                    return Err(errno(libc::EEXIST, &what, "NLM_F_REPLACE needed to override"));
                }
                lookup_existing(&others, handle, excl, kind, &what)?
            }
            None if handle != TcHandle::UNSPEC => lookup_existing(&others, handle, excl, kind, &what)?,
            None => true,
            Some((_, k)) => replace && k.as_str() != kind.as_str(),
        };
        if !create {
            let (_, existing) = current.as_ref().ok_or_else(|| errno(libc::ENOENT, &what, "qdisc not found"))?;
            if excl {
                return Err(errno(libc::EEXIST, &what, "exclusivity flag on, cannot modify"));
            }
            if existing.as_str() != kind.as_str() {
                return Err(errno(libc::EINVAL, &what, "invalid qdisc name: must match existing qdisc"));
            }
            // Change the parameters (ingress and clsact have none).
            let kind = check_kind(kind, spec.parent, &what)?;
            if let Root::Custom { kind: k, .. } = &mut link.tc.root
                && spec.parent == QdiscParent::Root
            {
                *k = kind;
            }
            return Ok(());
        }
        let kind = check_kind(kind, spec.parent, &what)?;
        match spec.parent {
            QdiscParent::Root => {
                let handle = if handle == TcHandle::UNSPEC { auto_handle(&others) } else { handle };
                link.tc.root = Root::Custom { handle, kind };
            }
            QdiscParent::Ingress => link.tc.ingress = Some(IngressQdisc::new(kind)),
        }
        Ok(())
    }

    pub(super) fn filters(&self, index: u32, parent: TcHandle) -> Vec<Filter> {
        let Some(link) = self.links.get(&index) else {
            return Vec::new();
        };
        let (BlockRef::Block(b), Some(q)) = (link.block_ref(parent), &link.tc.ingress) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for tp in &q.blocks[b] {
            for node in &tp.nodes {
                let actions = node
                    .actions
                    .iter()
                    .map(|a| TcAction::Mirred {
                        kind: a.kind,
                        target: a.target.and_then(|id| self.links.values().find(|l| l.id == id)).map_or(0, |l| l.index),
                    })
                    .collect();
                out.push(Filter {
                    index,
                    parent,
                    priority: tp.priority,
                    protocol: tp.protocol,
                    handle: node.handle,
                    kind: FilterKind::U32(U32Filter { keys: node.keys.clone(), classid: node.classid, actions }),
                });
            }
        }
        out
    }

    /// Every filter of the namespace, for snapshots.
    pub(super) fn all_filters(&self) -> Vec<Filter> {
        let mut out = Vec::new();
        for link in self.links.values() {
            match link.tc.ingress.as_ref().map(|q| &q.kind) {
                Some(QdiscKind::Clsact) => {
                    out.extend(self.filters(link.index, TcHandle::CLSACT_INGRESS));
                    out.extend(self.filters(link.index, TcHandle::CLSACT_EGRESS));
                }
                Some(_) => out.extend(self.filters(link.index, TcHandle::INGRESS_QDISC)),
                None => {}
            }
        }
        out
    }

    /// `tc_new_tfilter` for `u32` rules.
    pub(super) fn add_filter(&mut self, spec: &FilterSpec) -> NetResult<()> {
        let what = format!("add {spec}");
        let link = self.tc_link(spec.index, &what)?;
        let block = match link.block_ref(spec.parent) {
            BlockRef::Block(b) => b,
            BlockRef::Missing(e, why) => return Err(errno(e, &what, why)),
        };
        let tps = link.tc.ingress.as_ref().map(|q| q.blocks[block].as_slice()).unwrap_or_default();
        let priority = match spec.priority {
            Some(p) => p,
            // The kernel looks for a place at 0x8000 and takes one below the next instance
            // (tcf_auto_prio): 49152 first, then 49151, ... whatever lies below 0x8000.
            None => {
                if tps.iter().any(|tp| tp.priority == 0x8000) {
                    return Err(errno(libc::EINVAL, &what, "no free automatic priority"));
                }
                tps.iter().find(|tp| tp.priority >= 0x8000).map_or(0xc000, |tp| tp.priority - 1)
            }
        };
        let pos = tps.iter().position(|tp| tp.priority >= priority);
        let existing = pos.filter(|p| tps[*p].priority == priority);
        if existing.is_some_and(|p| tps[p].protocol != spec.protocol) {
            return Err(errno(libc::EINVAL, &what, "protocol mismatch for filter with specified priority"));
        }
        let mut actions = Vec::new();
        for a in &spec.u32.actions {
            if let TcAction::Mirred { kind, target } = a {
                let id =
                    self.links.get(target).map(|l| l.id).ok_or_else(|| {
                        errno(libc::ENODEV, &what, &format!("mirred target #{target} does not exist"))
                    })?;
                actions.push(FAction { kind: *kind, target: Some(id) });
            }
        }
        let keys: Vec<U32Key> = spec.u32.keys.iter().map(|k| U32Key { value: k.value & k.mask, ..*k }).collect();
        let link = self.tc_link_mut(spec.index, &what)?;
        let q = link.tc.ingress.as_mut().ok_or_else(|| errno(libc::EINVAL, &what, "no parent qdisc"))?;
        let at = match existing {
            Some(p) => p,
            None => {
                let htid = q.new_htid()?;
                let at = pos.unwrap_or(q.blocks[block].len());
                q.blocks[block].insert(at, Tp { priority, protocol: spec.protocol, htid, nodes: Vec::new() });
                at
            }
        };
        let tp = &mut q.blocks[block][at];
        // gen_new_kid: the lowest free node id from 0x800.
        let handle = (0x800..=0xfff_u32)
            .map(|n| tp.htid | n)
            .find(|h| tp.nodes.iter().all(|x| x.handle != *h))
            .ok_or_else(|| errno(libc::ENOMEM, &what, "hash table full"))?;
        let ins = tp.nodes.iter().position(|x| x.handle > handle).unwrap_or(tp.nodes.len());
        tp.nodes.insert(ins, Node { handle, keys, classid: spec.u32.classid, actions });
        Ok(())
    }

    /// `tc_del_tfilter`: one priority, or every filter of the parent.
    pub(super) fn delete_filter(&mut self, del: &FilterDelete) -> NetResult<()> {
        let what = format!("delete {del}");
        let link = self.tc_link_mut(del.index, &what)?;
        let block = match link.block_ref(del.parent) {
            BlockRef::Block(b) => b,
            BlockRef::Missing(e, why) => return Err(errno(e, &what, why)),
        };
        let q = link.tc.ingress.as_mut().ok_or_else(|| errno(libc::EINVAL, &what, "no parent qdisc"))?;
        let Some(priority) = del.priority else {
            q.blocks[block].clear();
            return Ok(());
        };
        let pos = q.blocks[block]
            .iter()
            .position(|tp| tp.priority == priority)
            .ok_or_else(|| errno(libc::ENOENT, &what, "filter with specified priority/protocol not found"))?;
        if del.protocol.is_some_and(|p| p != 0 && p != q.blocks[block][pos].protocol) {
            return Err(errno(libc::EINVAL, &what, "protocol mismatch for filter with specified priority"));
        }
        q.blocks[block].remove(pos);
        Ok(())
    }
}

/// A handle given for a place where another qdisc (or none) is attached: it must not name an
/// existing qdisc, which cannot be re-grafted here. Returns "create".
fn lookup_existing(
    others: &[(TcHandle, QdiscKind)],
    handle: TcHandle,
    excl: bool,
    kind: &QdiscKind,
    what: &str,
) -> NetResult<bool> {
    if handle.minor() != 0 {
        return Err(errno(libc::EINVAL, what, "invalid minor handle"));
    }
    match others.iter().find(|(h, _)| *h == handle) {
        None => Ok(true),
        Some(_) if excl => Err(errno(libc::EEXIST, what, "exclusivity flag on, cannot override")),
        Some((_, k)) if k.as_str() != kind.as_str() => Err(errno(libc::EINVAL, what, "invalid qdisc name")),
        Some(_) => Err(errno(libc::EINVAL, what, "cannot graft a qdisc under another parent")),
    }
}

/// `qdisc_alloc_handle`: `8001:` upwards, skipping handles in use on the link.
fn auto_handle(others: &[(TcHandle, QdiscKind)]) -> TcHandle {
    (0x8001..0xffff_u16).map(|m| TcHandle::new(m, 0)).find(|h| others.iter().all(|(x, _)| x != h)).unwrap_or_default()
}

fn delete_qdisc(link: &mut FLink, spec: &QdiscSpec, what: &str) -> NetResult<()> {
    let (handle, kind): (TcHandle, QdiscKind) = match spec.parent {
        QdiscParent::Root => match &link.tc.root {
            Root::Noop => (TcHandle::UNSPEC, QdiscKind::Other("noop".into())),
            Root::Default => (TcHandle::UNSPEC, QdiscKind::Other(default_qdisc(&link.kind).into())),
            Root::Custom { handle, kind } => (*handle, kind.clone()),
        },
        QdiscParent::Ingress => match &link.tc.ingress {
            Some(i) => (TcHandle::INGRESS_QDISC, i.kind.clone()),
            None => return Err(errno(libc::ENOENT, what, "cannot find the specified qdisc on the device")),
        },
    };
    if spec.handle.is_some_and(|h| h != handle) {
        return Err(errno(libc::EINVAL, what, "invalid handle"));
    }
    if spec.kind.as_ref().is_some_and(|k| k.as_str() != kind.as_str()) {
        return Err(errno(libc::EINVAL, what, "invalid qdisc name"));
    }
    if handle == TcHandle::UNSPEC {
        return Err(errno(libc::ENOENT, what, "cannot delete qdisc with handle of zero"));
    }
    match spec.parent {
        QdiscParent::Root => link.tc.root = if link.up { Root::Default } else { Root::Noop },
        QdiscParent::Ingress => link.tc.ingress = None,
    }
    Ok(())
}
