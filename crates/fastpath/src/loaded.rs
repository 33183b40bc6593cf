//! The programs loaded with aya and attached to interfaces: XDP where it
//! can be, TC ingress where it cannot.

use std::error::Error;
use std::net::SocketAddr;

use aya::maps::{HashMap, MapData};
use aya::programs::links::LinkOrder;
use aya::programs::tc::{self, NlOptions, TcAttachOptions};
use aya::programs::{SchedClassifier, TcAttachType, TcError, Xdp, XdpMode};

use crate::terms::{Terms, map_error};
use crate::{ChannelRoute, Counters, FastPathError, Hook, Removed, Route, ToClientKey, ToPeerKey};

// The maps' keys and values are plain `#[repr(C)]` structs of integers
// with explicit padding fields, laid out as relay.c declares them: any
// bit pattern is a valid value, which is what `Pod` promises.
#[allow(unsafe_code)]
unsafe impl aya::Pod for ToPeerKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for ToClientKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Route {}

/// The programs, as `ebpf/build.sh` compiled them from relay.c: one
/// object, so that both use the same maps.
static PROGRAM: &[u8] = include_bytes!("../ebpf/relay.bpf.o");

/// The XDP program's name in relay.c.
const XDP_PROGRAM: &str = "edgeice_relay";
/// The TC program's name in relay.c; also the name its clsact filters
/// carry, by which stale ones are found.
const TC_PROGRAM: &str = "edgeice_relay_tc";

/// The relay attached to interfaces, and its maps.
pub struct FastPath {
    /// Kept for as long as the programs are to stay attached: dropping it
    /// detaches them (and a process that dies closes the links' file
    /// descriptors, which detaches XDP and tcx links too).
    _ebpf: aya::Ebpf,
    to_peer: HashMap<MapData, ToPeerKey, Route>,
    to_client: HashMap<MapData, ToClientKey, Route>,
    /// Deadlines and loans.
    terms: Terms,
    /// The routes in the kernel: each one's deadline index, and whether it
    /// spends its allocation's loan.
    routes: std::collections::HashMap<ChannelRoute, (u32, bool)>,
    /// The interfaces it is attached to, each with its hook.
    interfaces: Vec<(String, Hook)>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl FastPath {
    /// Loads the XDP program (the kernel's verifier checks it here) and
    /// attaches the relay to each of `interfaces` (where clients and peers
    /// arrive): XDP in the driver where it can be, otherwise the TC
    /// program on ingress, otherwise generic XDP. Another program already
    /// attached is never replaced.
    ///
    /// Why that order: native XDP runs before the kernel builds a socket
    /// buffer, which is what makes it the fastest. It cannot be attached
    /// where the driver lacks it or, the usual case, where the interface
    /// already has an XDP program (only one can be attached, and someone
    /// else's must stay). TC comes next: like generic XDP it runs on the
    /// socket buffer, but it takes the buffer as it is where generic XDP
    /// first makes it linear with XDP's headroom (often a copy), and it
    /// runs alongside other TC programs. Generic XDP is left for kernels
    /// without TC BPF; it cannot coexist with another XDP program either.
    pub fn attach(interfaces: &[String]) -> Result<FastPath, FastPathError> {
        let mut ebpf = aya::Ebpf::load(PROGRAM).map_err(|e| FastPathError::Load(e.to_string()))?;
        xdp_program(&mut ebpf)?
            .load()
            .map_err(|e| FastPathError::Load(verifier_text(&e)))?;
        // A clsact filter of ours that outlived its process (killed, on a
        // kernel without tcx) would go on relaying with the maps it had:
        // take it out before anything is attached, whichever hook wins.
        for interface in interfaces {
            remove_stale_filter(interface);
        }
        let mut attached = Vec::new();
        for interface in interfaces {
            let hook = attach_one(&mut ebpf, interface)?;
            attached.push((interface.clone(), hook));
        }
        let map = |ebpf: &mut aya::Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| FastPathError::Load(format!("no {name} map")))
        };
        let to_peer = HashMap::try_from(map(&mut ebpf, "to_peer")?).map_err(map_error)?;
        let to_client = HashMap::try_from(map(&mut ebpf, "to_client")?).map_err(map_error)?;
        let terms = Terms::take_from(&mut ebpf)?;
        Ok(FastPath {
            _ebpf: ebpf,
            to_peer,
            to_client,
            terms,
            routes: std::collections::HashMap::new(),
            interfaces: attached,
        })
    }

    /// The interfaces it is attached to, each with the hook it runs in.
    pub fn interfaces(&self) -> &[(String, Hook)] {
        &self.interfaces
    }

    /// Relays `route`'s channel in the kernel from now on, both ways,
    /// until `until`, and if `capped` only while its allocation's loan
    /// lasts ([`FastPath::lend`]). For a route already there, moves its
    /// deadline (its counters go on).
    pub fn install(
        &mut self,
        route: &ChannelRoute,
        until: std::time::Instant,
        capped: bool,
    ) -> Result<(), FastPathError> {
        if let Some(&(slot, _)) = self.routes.get(route) {
            return self.terms.move_deadline(slot, until);
        }
        if route.family().is_none() {
            return Err(FastPathError::MixedFamilies);
        }
        let slot = self.terms.new_deadline(until)?;
        let budget = if capped {
            match self.terms.join_loan(route.client, route.server) {
                Ok(budget) => budget,
                Err(e) => {
                    self.terms.free_deadline(slot);
                    return Err(e);
                }
            }
        } else {
            0
        };
        let inserted = self
            .to_peer
            .insert(route.to_peer_key(), route.to_peer_route(slot, budget), 0)
            .and_then(|()| {
                self.to_client.insert(
                    route.to_client_key(),
                    route.to_client_route(slot, budget),
                    0,
                )
            });
        if let Err(e) = inserted {
            let _ = self.to_peer.remove(&route.to_peer_key());
            self.release(route, slot, capped);
            return Err(map_error(e));
        }
        self.routes.insert(*route, (slot, capped));
        Ok(())
    }

    /// Lends the capped allocation of the 5-tuple (`client`, `server`)
    /// `bytes` more for its routes in the kernel; returns what was left of
    /// the last loan, or all of `bytes` if it has no route here.
    pub fn lend(&mut self, client: SocketAddr, server: SocketAddr, bytes: u64) -> u64 {
        self.terms.lend(client, server, bytes)
    }

    /// Stops relaying `route` in the kernel; returns what went the fast way
    /// until now, and what its allocation's loan had left if it was the
    /// last of its routes here.
    pub fn remove(&mut self, route: &ChannelRoute) -> Removed {
        let (to_peer, to_client) = self.counters(route);
        let _ = self.to_peer.remove(&route.to_peer_key());
        let _ = self.to_client.remove(&route.to_client_key());
        let unspent = match self.routes.remove(route) {
            Some((slot, capped)) => self.release(route, slot, capped),
            None => 0,
        };
        Removed {
            to_peer,
            to_client,
            unspent,
        }
    }

    /// Frees the deadline and the loan share of a route out of the maps;
    /// returns what the loan had left if this route was its last.
    fn release(&mut self, route: &ChannelRoute, slot: u32, capped: bool) -> u64 {
        self.terms.free_deadline(slot);
        if capped {
            self.terms.leave_loan(route.client, route.server)
        } else {
            0
        }
    }

    /// What went the fast way for `route` so far (client → peer, peer →
    /// client).
    pub fn counters(&self, route: &ChannelRoute) -> (Counters, Counters) {
        let read = |route: Option<Route>| {
            route.map_or_else(Counters::default, |r| Counters {
                packets: r.packets,
                bytes: r.bytes,
            })
        };
        (
            read(self.to_peer.get(&route.to_peer_key(), 0).ok()),
            read(self.to_client.get(&route.to_client_key(), 0).ok()),
        )
    }
}

/// The XDP program of `ebpf`.
fn xdp_program(ebpf: &mut aya::Ebpf) -> Result<&mut Xdp, FastPathError> {
    ebpf.program_mut(XDP_PROGRAM)
        .ok_or_else(|| FastPathError::Load(format!("no {XDP_PROGRAM} program")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| FastPathError::Load(e.to_string()))
}

/// The TC program of `ebpf`, loaded on first use: an interface that takes
/// XDP never needs it.
fn tc_program(ebpf: &mut aya::Ebpf) -> Result<&mut SchedClassifier, String> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(TC_PROGRAM)
        .ok_or_else(|| format!("no {TC_PROGRAM} program"))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    if program.fd().is_err() {
        program.load().map_err(|e| verifier_text(&e))?;
    }
    Ok(program)
}

/// Attaches the relay to `interface` by the first hook that takes it, in
/// the order [`FastPath::attach`] explains.
fn attach_one(ebpf: &mut aya::Ebpf, interface: &str) -> Result<Hook, FastPathError> {
    // Both XDP attachments refuse, rather than replace, a program already
    // there: aya asks for a BPF link, which the kernel refuses (EBUSY)
    // while another XDP program is attached, and on kernels without XDP
    // links it sets the program by netlink with XDP_FLAGS_UPDATE_IF_NOEXIST
    // (EEXIST). lab/fast-path.sh checks this.
    let native = match xdp_program(ebpf)?.attach(interface, XdpMode::Driver) {
        Ok(_) => return Ok(Hook::XdpNative),
        Err(e) => chain(&e),
    };
    let tc = match attach_tc(ebpf, interface) {
        Ok(hook) => return Ok(hook),
        Err(e) => e,
    };
    match xdp_program(ebpf)?.attach(interface, XdpMode::Skb) {
        Ok(_) => Ok(Hook::XdpGeneric),
        Err(e) => Err(FastPathError::Attach {
            interface: interface.to_owned(),
            reason: format!("native XDP: {native}; TC: {tc}; generic XDP: {}", chain(&e)),
        }),
    }
}

/// Attaches the TC program to `interface`'s ingress: as a tcx link where
/// the kernel has them (6.6 and later), which goes away with the process
/// however it ends; otherwise as a clsact filter.
fn attach_tc(ebpf: &mut aya::Ebpf, interface: &str) -> Result<Hook, String> {
    let program = tc_program(ebpf)?;
    // Last in the interface's tcx chain: programs already there keep
    // seeing packets first, as they did before edgeice started.
    let tcx = match program.attach_with_options(
        interface,
        TcAttachType::Ingress,
        TcAttachOptions::TcxOrder(LinkOrder::default()),
    ) {
        Ok(_) => return Ok(Hook::Tc),
        Err(e) => chain(&e),
    };
    // Kernels before 6.6 have no tcx (EINVAL): a filter on the clsact
    // qdisc, added unless there already is one (someone else's included,
    // which is then shared, as clsact is meant to be).
    match tc::qdisc_add_clsact(interface) {
        Ok(()) | Err(TcError::AlreadyAttached) => {}
        Err(TcError::NetlinkError(e))
            if e.raw_os_error()
                .map(std::io::Error::from_raw_os_error)
                .map(|e| e.kind())
                == Some(std::io::ErrorKind::AlreadyExists) => {}
        Err(e) => return Err(format!("tcx: {tcx}; clsact qdisc: {}", chain(&e))),
    }
    match program.attach_with_options(
        interface,
        TcAttachType::Ingress,
        TcAttachOptions::Netlink(NlOptions::default()),
    ) {
        Ok(_) => Ok(Hook::TcFilter),
        Err(e) => Err(format!("tcx: {tcx}; clsact filter: {}", chain(&e))),
    }
}

/// Removes the clsact ingress filters named after the TC program from
/// `interface`: left by a process that was killed on a kernel without
/// tcx (a filter, unlike a link, belongs to the interface, not to a file
/// descriptor). The name is all a filter says about its owner, so a
/// second edgeice on the same interface of such a kernel would lose its
/// filter too: one server per interface, as with XDP. Nothing to do is
/// the usual case, and a failure here leaves no worse than before, so
/// neither is reported.
fn remove_stale_filter(interface: &str) {
    let _ = tc::qdisc_detach_program(interface, TcAttachType::Ingress, TC_PROGRAM);
}

/// An error and its sources, on one line: aya's errors keep the OS error
/// (EBUSY, EEXIST...) in their source.
fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The verifier's log, when that is why loading failed: the reason an
/// operator needs.
fn verifier_text(e: &aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            format!("{io_error}\n{verifier_log}")
        }
        other => other.to_string(),
    }
}
