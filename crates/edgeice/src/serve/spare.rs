//! Spare relay sockets: UDP sockets bound ahead of demand, so that the
//! common Allocate (any port: no EVEN-PORT, no reservation) takes one
//! instead of binding on the request path. A profile put binding
//! (`bind`, `socket`) at about a sixth of an allocation's cost.
//!
//! Why it is shaped so:
//! - One small bounded queue per address family, refilled by one
//!   background thread woken when a queue falls below its low-water mark:
//!   the request path only pops under a short lock, never binds.
//! - Spares are bound from the relay port range by the same search (and
//!   cursor) as any relay, so `--relay-ports` holds and ports stay spread.
//!   They are used ports: at most a quarter of the range is held spare
//!   (none for a range under four ports), and the refill stops at the
//!   first port it cannot find. A bind that finds the range full takes a
//!   spare (waiting out a refill caught mid-bind), and an EVEN-PORT bind
//!   that finds it full closes the spares and tries again, so no
//!   allocation fails that the range could serve.
//! - Nothing here runs per relayed packet.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use edgeice_stun::AddressFamily;

use super::relay::Ports;

/// The most spares held per family.
pub const MAX_SPARES: usize = 64;

/// How many spares a range of `ports` ports holds per family: a quarter of
/// the range (split between families when both are in use), at most
/// [`MAX_SPARES`].
pub fn capacity(ports: u64, families: usize) -> usize {
    let share = ports / 4 / families.max(1) as u64;
    (share as usize).min(MAX_SPARES)
}

/// The spares of every family, and the thread that refills them.
#[derive(Debug)]
pub struct Spares {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ports: Arc<Ports>,
    v4: Option<Queue>,
    v6: Option<Queue>,
    /// Wakes the refill thread.
    wake: Condvar,
    /// Set from a wake until the refill thread goes back to sleep.
    pending: Mutex<bool>,
    /// Set while the refill thread binds a port not yet in its queue: a
    /// bind that finds the range full then waits for it.
    refilling: AtomicBool,
    stop: AtomicBool,
}

#[derive(Debug)]
struct Queue {
    ip: IpAddr,
    capacity: usize,
    low_water: usize,
    sockets: Mutex<VecDeque<(StdUdpSocket, SocketAddr)>>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<(StdUdpSocket, SocketAddr)>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Spares {
    /// Spares for each family that has a relay IP; `None` when the range is
    /// too small to hold any. Starts the refill thread, which fills them.
    pub fn start(v4: Option<IpAddr>, v6: Option<IpAddr>, ports: Arc<Ports>) -> Option<Self> {
        let families = usize::from(v4.is_some()) + usize::from(v6.is_some());
        let capacity = capacity(ports.count(), families);
        if capacity == 0 {
            return None;
        }
        let queue = |ip: IpAddr| Queue {
            ip,
            capacity,
            low_water: capacity.div_ceil(2),
            sockets: Mutex::new(VecDeque::with_capacity(capacity)),
        };
        let inner = Arc::new(Inner {
            ports,
            v4: v4.map(queue),
            v6: v6.map(queue),
            wake: Condvar::new(),
            pending: Mutex::new(true),
            refilling: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let refill = inner.clone();
        std::thread::Builder::new()
            .name("relay-spares".into())
            .spawn(move || refill.run())
            .ok()?;
        Some(Spares { inner })
    }

    /// A spare socket of `family`, if one is ready; wakes the refill when
    /// the queue runs low. Only a pop under the lock: no bind, no close.
    pub fn take(&self, family: AddressFamily) -> Option<(StdUdpSocket, SocketAddr)> {
        let queue = self.inner.queue(family)?;
        let (taken, left) = {
            let mut sockets = queue.lock();
            (sockets.pop_front(), sockets.len())
        };
        if left < queue.low_water {
            self.inner.wake();
        }
        taken
    }

    /// After a bind found every port in use: a spare, waiting out a refill
    /// that may hold the last free port not yet queued.
    pub fn take_when_full(&self, family: AddressFamily) -> Option<(StdUdpSocket, SocketAddr)> {
        for _ in 0..10_000 {
            if let Some(spare) = self.take(family) {
                return Some(spare);
            }
            if !self.inner.refilling.load(Ordering::SeqCst) {
                return self.take(family);
            }
            std::thread::yield_now();
        }
        None
    }

    /// Closes every spare of `family`, freeing their ports for a bind that
    /// needs a port of its own (EVEN-PORT) and found the range full.
    /// Returns whether there were any.
    pub fn release(&self, family: AddressFamily) -> bool {
        let Some(queue) = self.inner.queue(family) else {
            return false;
        };
        while self.inner.refilling.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let spares: Vec<_> = queue.lock().drain(..).collect();
        !spares.is_empty()
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake();
    }
}

impl Inner {
    fn queue(&self, family: AddressFamily) -> Option<&Queue> {
        match family {
            AddressFamily::V4 => self.v4.as_ref(),
            AddressFamily::V6 => self.v6.as_ref(),
        }
    }

    fn wake(&self) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_one();
    }

    /// The refill thread: sleeps until woken, then tops every queue up to
    /// its capacity, one bind at a time, each pushed at once.
    fn run(&self) {
        loop {
            {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                while !*pending && !self.stop.load(Ordering::SeqCst) {
                    pending = self
                        .wake
                        .wait_timeout(pending, Duration::from_secs(1))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                *pending = false;
            }
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            for queue in self.v4.iter().chain(self.v6.iter()) {
                self.fill(queue);
            }
        }
    }

    fn fill(&self, queue: &Queue) {
        while queue.lock().len() < queue.capacity && !self.stop.load(Ordering::SeqCst) {
            self.refilling.store(true, Ordering::SeqCst);
            match self.ports.bind_std(queue.ip, false, false).map(|b| b.0) {
                Ok(spare) => queue.lock().push_back(spare),
                Err(e) => {
                    self.refilling.store(false, Ordering::SeqCst);
                    if e.kind() != io::ErrorKind::AddrInUse {
                        tracing::debug!(error = %e, "cannot bind a spare relay socket");
                    }
                    // The range is full (or binding fails): stop until the
                    // next take wakes us.
                    return;
                }
            }
            self.refilling.store(false, Ordering::SeqCst);
        }
    }
}
