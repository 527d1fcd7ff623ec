//! Traffic control: `RTM_{NEW,DEL,GET}QDISC` and `RTM_{NEW,DEL,GET}TFILTER`.
//!
//! netlink-packet-route models the `u32` classifier and the `mirred` action; the `tbf`
//! parameters (`struct tc_tbf_qopt` in `TCA_TBF_PARMS`, `TCA_TBF_RATE64`) are built and parsed
//! here as raw attributes.

use futures_util::StreamExt;
use rtnetlink::packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload, Nla, NlaBuffer, NlasIterator,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::tc::{
    TcAction as NlAction, TcActionAttribute, TcActionGeneric, TcActionMirror, TcActionMirrorOption, TcActionOption,
    TcActionType, TcAttribute, TcFilterU32, TcFilterU32Option, TcHandle as NlHandle, TcMessage, TcMirror,
    TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};

use super::{RealBackend, nl_err};
use crate::net::tc::{FilterDelete, FilterSpec, QdiscOp, QdiscParent, QdiscSpec};
use crate::net::{
    Filter, FilterKind, MirredKind, NetError, NetErrorKind, NetResult, Qdisc, QdiscKind, Tbf, TcAction, TcHandle,
    U32Filter, U32Key,
};

// linux/pkt_sched.h
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
/// `struct tc_tbf_qopt`: two `tc_ratespec` (12 bytes each), then limit, buffer, mtu.
const TBF_QOPT_LEN: usize = 36;
/// The offset of `rate.rate` in `struct tc_ratespec` (after cell_log, linklayer, overhead,
/// cell_align, mpu).
const RATESPEC_RATE_OFFSET: usize = 8;

fn tbf_options(tbf: &Tbf) -> Vec<TcOption> {
    let mut qopt = [0u8; TBF_QOPT_LEN];
    let rate32 = u32::try_from(tbf.rate).unwrap_or(u32::MAX);
    qopt[RATESPEC_RATE_OFFSET..RATESPEC_RATE_OFFSET + 4].copy_from_slice(&rate32.to_ne_bytes());
    qopt[24..28].copy_from_slice(&tbf.limit.to_ne_bytes());
    qopt[28..32].copy_from_slice(&tbf.buffer.to_ne_bytes());
    let mut out = vec![TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, qopt.to_vec()))];
    if tbf.rate > u64::from(u32::MAX) {
        out.push(TcOption::Other(DefaultNla::new(TCA_TBF_RATE64, tbf.rate.to_ne_bytes().to_vec())));
    }
    out
}

fn nla_value(nla: &DefaultNla) -> Vec<u8> {
    let mut v = vec![0; nla.value_len()];
    nla.emit_value(&mut v);
    v
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the nested `TCA_OPTIONS` of a `tbf` qdisc, which netlink-packet-route keeps raw.
fn parse_tbf(options: &[TcOption]) -> Option<Tbf> {
    let raw: Vec<u8> = options.iter().find_map(|o| match o {
        TcOption::Other(nla) => Some(nla_value(nla)),
        _ => None,
    })?;
    let mut tbf = None;
    let mut rate64 = None;
    for nla in NlasIterator::new(raw.as_slice()) {
        let nla: NlaBuffer<&[u8]> = nla.ok()?;
        let value = nla.value();
        match nla.kind() {
            TCA_TBF_PARMS => {
                tbf = Some(Tbf {
                    rate: u64::from(u32_at(value, RATESPEC_RATE_OFFSET)?),
                    limit: u32_at(value, 24)?,
                    buffer: u32_at(value, 28)?,
                });
            }
            TCA_TBF_RATE64 => rate64 = Some(u64::from_ne_bytes(value.get(..8)?.try_into().ok()?)),
            _ => {}
        }
    }
    let mut tbf = tbf?;
    if let Some(r) = rate64 {
        tbf.rate = r;
    }
    Some(tbf)
}

fn nl_handle(h: TcHandle) -> NlHandle {
    NlHandle::from(h.raw())
}

fn handle_of(h: NlHandle) -> TcHandle {
    TcHandle::from_raw(u32::from(h))
}

fn parse_qdisc(msg: TcMessage) -> Option<Qdisc> {
    let mut kind_name = None;
    let mut options = Vec::new();
    for attr in msg.attributes {
        match attr {
            TcAttribute::Kind(k) => kind_name = Some(k),
            TcAttribute::Options(o) => options = o,
            _ => {}
        }
    }
    let kind = match kind_name?.as_str() {
        // Parameters the parser does not understand still list as a tbf qdisc.
        "tbf" => parse_tbf(&options).map_or_else(|| QdiscKind::Other("tbf".into()), QdiscKind::Tbf),
        "ingress" => QdiscKind::Ingress,
        "clsact" => QdiscKind::Clsact,
        other => QdiscKind::Other(other.to_owned()),
    };
    Some(Qdisc {
        index: u32::try_from(msg.header.index).ok()?,
        handle: handle_of(msg.header.handle),
        parent: handle_of(msg.header.parent),
        kind,
    })
}

fn mirred_type(kind: MirredKind) -> (TcMirrorActionType, TcActionType) {
    match kind {
        MirredKind::EgressRedirect => (TcMirrorActionType::EgressRedir, TcActionType::Stolen),
        MirredKind::EgressMirror => (TcMirrorActionType::EgressMirror, TcActionType::Pipe),
        MirredKind::IngressRedirect => (TcMirrorActionType::IngressRedir, TcActionType::Stolen),
        MirredKind::IngressMirror => (TcMirrorActionType::IngressMirror, TcActionType::Pipe),
    }
}

fn nl_action(action: &TcAction, order: u16) -> NlAction {
    let mut nl = NlAction::default();
    nl.tab = order;
    if let TcAction::Mirred { kind, target } = action {
        let (eaction, control) = mirred_type(*kind);
        let mut generic = TcActionGeneric::default();
        generic.action = control;
        let mut mirror = TcMirror::default();
        mirror.generic = generic;
        mirror.eaction = eaction;
        mirror.ifindex = *target;
        nl.attributes = vec![
            TcActionAttribute::Kind(TcActionMirror::KIND.to_owned()),
            TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(mirror))]),
        ];
    }
    nl
}

fn parse_action(action: NlAction) -> TcAction {
    let mut kind = String::new();
    let mut mirred = None;
    for attr in action.attributes {
        match attr {
            TcActionAttribute::Kind(k) => kind = k,
            TcActionAttribute::Options(opts) => {
                for o in opts {
                    if let TcActionOption::Mirror(TcActionMirrorOption::Parms(m)) = o {
                        mirred = Some(m);
                    }
                }
            }
            _ => {}
        }
    }
    let m = match mirred {
        Some(m) if kind == TcActionMirror::KIND => m,
        _ => return TcAction::Other(kind),
    };
    let kind = match m.eaction {
        TcMirrorActionType::EgressRedir => MirredKind::EgressRedirect,
        TcMirrorActionType::EgressMirror => MirredKind::EgressMirror,
        TcMirrorActionType::IngressRedir => MirredKind::IngressRedirect,
        TcMirrorActionType::IngressMirror => MirredKind::IngressMirror,
        _ => return TcAction::Other(TcActionMirror::KIND.to_owned()),
    };
    TcAction::Mirred { kind, target: m.ifindex }
}

/// `tcm_info` of a filter: priority in the upper half, the protocol in network byte order in
/// the lower half.
fn filter_info(priority: u16, protocol: u16) -> u32 {
    (u32::from(priority) << 16) | u32::from(protocol.to_be())
}

/// One filter of a dump, or `None` for what is not a match rule (the per-priority classifier
/// header, `u32` hash tables).
fn parse_filter(msg: TcMessage, parent: TcHandle) -> Option<Filter> {
    let priority = (msg.header.info >> 16) as u16;
    let protocol = u16::from_be(msg.header.info as u16);
    let handle = u32::from(msg.header.handle);
    let mut kind_name = None;
    let mut options = Vec::new();
    for attr in msg.attributes {
        match attr {
            TcAttribute::Kind(k) => kind_name = Some(k),
            TcAttribute::Options(o) => options = o,
            _ => {}
        }
    }
    let kind_name = kind_name?;
    if handle == 0 {
        return None;
    }
    let kind = if kind_name == TcFilterU32::KIND {
        let mut u = U32Filter::default();
        let mut has_selector = false;
        for o in options {
            match o {
                TcOption::U32(TcFilterU32Option::Selector(sel)) => {
                    has_selector = true;
                    u.keys = sel.keys.iter().map(|k| U32Key { mask: k.mask, value: k.val, offset: k.off }).collect();
                }
                TcOption::U32(TcFilterU32Option::ClassId(c)) => u.classid = Some(handle_of(c)),
                TcOption::U32(TcFilterU32Option::Action(actions)) => {
                    u.actions = actions.into_iter().map(parse_action).collect();
                }
                _ => {}
            }
        }
        if !has_selector {
            return None;
        }
        FilterKind::U32(u)
    } else {
        FilterKind::Other(kind_name)
    };
    Some(Filter { index: u32::try_from(msg.header.index).ok()?, parent, priority, protocol, handle, kind })
}

impl RealBackend {
    /// Sends `msg` and collects the messages of the answer; an error answer becomes `Err`.
    async fn tc_request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, rtnetlink::Error> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | flags;
        let mut handle = self.handle.clone();
        let mut response = handle.request(req)?;
        let mut out = Vec::new();
        while let Some(answer) = response.next().await {
            match answer.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(e) if e.raw_code() != 0 => return Err(rtnetlink::Error::NetlinkError(e)),
                _ => {}
            }
        }
        Ok(out)
    }

    pub(super) async fn list_qdiscs(&self, index: Option<u32>) -> NetResult<Vec<Qdisc>> {
        let answers = self
            .tc_request(RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()), NLM_F_DUMP)
            .await
            .map_err(|e| nl_err(e, "list qdiscs"))?;
        let mut out: Vec<Qdisc> = answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(q) => parse_qdisc(q),
                _ => None,
            })
            .filter(|q| index.is_none_or(|i| q.index == i))
            .collect();
        // Root first, then the ingress side, per link (the kernel's own order).
        out.sort_by_key(|q| (q.index, q.parent == TcHandle::INGRESS));
        Ok(out)
    }

    pub(super) async fn qdisc_change(&self, spec: &QdiscSpec) -> NetResult<()> {
        if spec.op == QdiscOp::Delete && spec.parent == QdiscParent::Ingress {
            return self.ingress_delete(spec).await;
        }
        let index = i32::try_from(spec.index).map_err(|_| {
            NetError::new(NetErrorKind::InvalidArgument, format!("{spec}: interface index out of range"))
        })?;
        let mut msg = TcMessage::with_index(index);
        msg.header.parent = nl_handle(spec.parent.handle());
        let ingress_side = spec.kind.as_ref().is_some_and(QdiscKind::is_ingress);
        msg.header.handle = match spec.handle {
            Some(h) => nl_handle(h),
            // The kernel names the ingress/clsact qdisc `ffff:` whatever is asked.
            None if ingress_side && spec.op != QdiscOp::Delete => nl_handle(TcHandle::INGRESS_QDISC),
            None => NlHandle::UNSPEC,
        };
        if let Some(kind) = &spec.kind {
            msg.attributes.push(TcAttribute::Kind(kind.as_str().to_owned()));
            if let (QdiscKind::Tbf(tbf), QdiscOp::Add | QdiscOp::Replace) = (kind, spec.op) {
                msg.attributes.push(TcAttribute::Options(tbf_options(tbf)));
            }
        }
        let (msg, flags) = match spec.op {
            QdiscOp::Add => (RouteNetlinkMessage::NewQueueDiscipline(msg), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL),
            QdiscOp::Replace => {
                (RouteNetlinkMessage::NewQueueDiscipline(msg), NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE)
            }
            QdiscOp::Delete => (RouteNetlinkMessage::DelQueueDiscipline(msg), NLM_F_ACK),
        };
        self.tc_request(msg, flags).await.map(drop).map_err(|e| nl_err(e, spec))
    }

    /// Deleting the ingress-side qdisc. Once a link had one, the kernel keeps an ingress queue
    /// holding `noop` and compares a given kind with that ("Invalid qdisc name", `EINVAL`)
    /// before noticing there is nothing to delete; checking kind and handle here keeps "not
    /// there" an `ENOENT` as on a link that never had one.
    async fn ingress_delete(&self, spec: &QdiscSpec) -> NetResult<()> {
        let current = self.list_qdiscs(Some(spec.index)).await?.into_iter().find(|q| q.parent == TcHandle::INGRESS);
        let Some(current) = current else {
            return Err(NetError::from_errno(libc::ENOENT, format_args!("{spec}: no ingress or clsact qdisc")));
        };
        if spec.kind.as_ref().is_some_and(|k| k.as_str() != current.kind.as_str()) {
            return Err(NetError::from_errno(libc::EINVAL, format_args!("{spec}: the qdisc is {}", current.kind)));
        }
        if spec.handle.is_some_and(|h| h != current.handle) {
            return Err(NetError::from_errno(libc::EINVAL, format_args!("{spec}: the handle is {}", current.handle)));
        }
        let index = i32::try_from(spec.index).map_err(|_| {
            NetError::new(NetErrorKind::InvalidArgument, format!("{spec}: interface index out of range"))
        })?;
        let mut msg = TcMessage::with_index(index);
        msg.header.parent = nl_handle(TcHandle::INGRESS);
        msg.header.handle = nl_handle(current.handle);
        self.tc_request(RouteNetlinkMessage::DelQueueDiscipline(msg), NLM_F_ACK)
            .await
            .map(drop)
            .map_err(|e| nl_err(e, spec))
    }

    pub(super) async fn list_filters(&self, index: u32, parent: TcHandle) -> NetResult<Vec<Filter>> {
        let what = format!("list filters on #{index} parent {parent}");
        let ifindex = i32::try_from(index)
            .map_err(|_| NetError::new(NetErrorKind::InvalidArgument, format!("{what}: index out of range")))?;
        let mut msg = TcMessage::with_index(ifindex);
        msg.header.parent = nl_handle(parent);
        let answers = self
            .tc_request(RouteNetlinkMessage::GetTrafficFilter(msg), NLM_F_DUMP)
            .await
            .map_err(|e| nl_err(e, &what))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewTrafficFilter(f) => parse_filter(f, parent),
                _ => None,
            })
            .collect())
    }

    pub(super) async fn filter_add(&self, spec: &FilterSpec) -> NetResult<()> {
        let what = format!("add {spec}");
        let ifindex = i32::try_from(spec.index)
            .map_err(|_| NetError::new(NetErrorKind::InvalidArgument, format!("{what}: index out of range")))?;
        let mut msg = TcMessage::with_index(ifindex);
        msg.header.parent = nl_handle(spec.parent);
        msg.header.info = filter_info(spec.priority.unwrap_or(0), spec.protocol);
        let mut selector = TcU32Selector::default();
        selector.flags = TcU32SelectorFlags::Terminal;
        selector.keys = spec
            .u32
            .keys
            .iter()
            .map(|k| {
                let mut key = TcU32Key::default();
                key.mask = k.mask;
                key.val = k.value & k.mask;
                key.off = k.offset;
                key
            })
            .collect();
        selector.nkeys = u8::try_from(selector.keys.len())
            .map_err(|_| NetError::new(NetErrorKind::InvalidArgument, format!("{what}: too many keys")))?;
        let mut options = vec![TcOption::U32(TcFilterU32Option::Selector(selector))];
        if let Some(c) = spec.u32.classid {
            options.push(TcOption::U32(TcFilterU32Option::ClassId(nl_handle(c))));
        }
        if !spec.u32.actions.is_empty() {
            let actions = spec.u32.actions.iter().zip(1u16..).map(|(a, order)| nl_action(a, order)).collect();
            options.push(TcOption::U32(TcFilterU32Option::Action(actions)));
        }
        msg.attributes.push(TcAttribute::Kind(TcFilterU32::KIND.to_owned()));
        msg.attributes.push(TcAttribute::Options(options));
        self.tc_request(RouteNetlinkMessage::NewTrafficFilter(msg), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .await
            .map(drop)
            .map_err(|e| nl_err(e, &what))
    }

    pub(super) async fn filter_delete(&self, del: &FilterDelete) -> NetResult<()> {
        let what = format!("delete {del}");
        let ifindex = i32::try_from(del.index)
            .map_err(|_| NetError::new(NetErrorKind::InvalidArgument, format!("{what}: index out of range")))?;
        let mut msg = TcMessage::with_index(ifindex);
        msg.header.parent = nl_handle(del.parent);
        msg.header.info = filter_info(del.priority.unwrap_or(0), del.protocol.unwrap_or(0));
        self.tc_request(RouteNetlinkMessage::DelTrafficFilter(msg), NLM_F_ACK)
            .await
            .map(drop)
            .map_err(|e| nl_err(e, &what))
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::Emitable;

    use super::*;

    #[test]
    fn tbf_parameters_round_trip() {
        for tbf in
            [Tbf { rate: 125_000, buffer: 1_250_000, limit: 13_125 }, Tbf { rate: 5_000_000_000, buffer: 10, limit: 1 }]
        {
            let opts = tbf_options(&tbf);
            assert_eq!(opts.len(), if tbf.rate > u64::from(u32::MAX) { 2 } else { 1 });
            // What the kernel sends back is the same attributes nested in one TCA_OPTIONS.
            let mut nested = vec![0u8; opts.iter().map(Emitable::buffer_len).sum()];
            let mut at = 0;
            for o in &opts {
                let len = o.buffer_len();
                o.emit(&mut nested[at..at + len]);
                at += len;
            }
            let raw = vec![TcOption::Other(DefaultNla::new(2, nested))];
            assert_eq!(parse_tbf(&raw), Some(tbf));
        }
    }

    #[test]
    fn filter_info_puts_the_protocol_in_network_order() {
        let info = filter_info(1, crate::net::ETH_P_ALL);
        assert_eq!(info >> 16, 1);
        assert_eq!((info as u16).to_ne_bytes(), [0x00, 0x03]);
        assert_eq!(u16::from_be(info as u16), crate::net::ETH_P_ALL);
    }
}
