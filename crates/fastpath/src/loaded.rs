//! The XDP program loaded with aya and attached to one interface.

use aya::maps::{HashMap, MapData};
use aya::programs::{Xdp, XdpMode};

use crate::{ChannelRoute, Counters, FastPathError, Route, ToClientKey, ToPeerKey};

// The maps' keys and values are plain `#[repr(C)]` structs of integers
// with explicit padding fields, laid out as relay.c declares them: any
// bit pattern is a valid value, which is what `Pod` promises.
#[allow(unsafe_code)]
unsafe impl aya::Pod for ToPeerKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for ToClientKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Route {}

/// The program, compiled by build.rs.
static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/relay.o"));

/// The XDP program attached to an interface, and its maps.
pub struct FastPath {
    /// Kept for as long as the program is to stay attached.
    _ebpf: aya::Ebpf,
    to_peer: HashMap<MapData, ToPeerKey, Route>,
    to_client: HashMap<MapData, ToClientKey, Route>,
    /// The interfaces it is attached to, each with whether natively
    /// (in the driver) or in generic (skb) mode.
    interfaces: Vec<(String, bool)>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl FastPath {
    /// Loads the program (the kernel's verifier checks it here) and
    /// attaches it to each of `interfaces` (where clients and peers
    /// arrive), natively where the driver allows, in generic mode
    /// otherwise.
    pub fn attach(interfaces: &[String]) -> Result<FastPath, FastPathError> {
        let mut ebpf = aya::Ebpf::load(PROGRAM).map_err(|e| FastPathError::Load(e.to_string()))?;
        let program: &mut Xdp = ebpf
            .program_mut("edgeice_relay")
            .ok_or_else(|| FastPathError::Load("no edgeice_relay program".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| FastPathError::Load(e.to_string()))?;
        program
            .load()
            .map_err(|e| FastPathError::Load(verifier_text(&e)))?;
        let mut attached = Vec::new();
        for interface in interfaces {
            let native = match program.attach(interface, XdpMode::Driver) {
                Ok(_) => true,
                Err(_) => {
                    program
                        .attach(interface, XdpMode::Skb)
                        .map_err(|e| FastPathError::Attach {
                            interface: interface.clone(),
                            reason: e.to_string(),
                        })?;
                    false
                }
            };
            attached.push((interface.clone(), native));
        }
        let map = |ebpf: &mut aya::Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| FastPathError::Load(format!("no {name} map")))
        };
        let to_peer = HashMap::try_from(map(&mut ebpf, "to_peer")?)
            .map_err(|e| FastPathError::Map(e.to_string()))?;
        let to_client = HashMap::try_from(map(&mut ebpf, "to_client")?)
            .map_err(|e| FastPathError::Map(e.to_string()))?;
        Ok(FastPath {
            _ebpf: ebpf,
            to_peer,
            to_client,
            interfaces: attached,
        })
    }

    /// The interfaces it is attached to, each with whether natively (in
    /// the driver) rather than in generic mode.
    pub fn interfaces(&self) -> &[(String, bool)] {
        &self.interfaces
    }

    /// Relays `route`'s channel in the kernel from now on, both ways.
    pub fn install(&mut self, route: &ChannelRoute) -> Result<(), FastPathError> {
        let map_error = |e: aya::maps::MapError| FastPathError::Map(e.to_string());
        self.to_peer
            .insert(route.to_peer_key(), route.to_peer_route(), 0)
            .map_err(map_error)?;
        if let Err(e) = self
            .to_client
            .insert(route.to_client_key(), route.to_client_route(), 0)
        {
            let _ = self.to_peer.remove(&route.to_peer_key());
            return Err(map_error(e));
        }
        Ok(())
    }

    /// Stops relaying `route` in the kernel; returns what went the fast way
    /// (client → peer, peer → client) until now.
    pub fn remove(&mut self, route: &ChannelRoute) -> (Counters, Counters) {
        let counters = self.counters(route);
        let _ = self.to_peer.remove(&route.to_peer_key());
        let _ = self.to_client.remove(&route.to_client_key());
        counters
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
