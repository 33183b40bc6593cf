//! The few Linux system calls the load generator needs and std does not
//! offer: `recvmmsg`/`sendmmsg` (one syscall for up to [`BATCH`] datagrams),
//! `epoll` (thousands of client sockets on one thread) and the file
//! descriptor limit. Every `unsafe` block of the benchmark is here, each
//! with the reason it is sound.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Datagrams moved per `recvmmsg`/`sendmmsg`.
pub const BATCH: usize = 64;
/// Room for one datagram in a batch: the largest payload accepted
/// (`--size` ≤ [`MAX_PAYLOAD`]) plus a Send indication's overhead.
pub const SLOT: usize = 2048;
/// The largest `--size`.
pub const MAX_PAYLOAD: usize = 1400;

/// Buffers for [`BATCH`] datagrams and their addresses, reused for every
/// call so that the data path allocates nothing.
pub struct Batch {
    data: Box<[u8]>,
    lens: [usize; BATCH],
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    addr_lens: [libc::socklen_t; BATCH],
    /// Room for each datagram's ancillary data (its arrival time).
    control: Box<[[u64; 8]; BATCH]>,
    /// Arrival times (CLOCK_REALTIME, ns) from SO_TIMESTAMPNS; 0 if none.
    stamps: [u64; BATCH],
}

/// SO_TIMESTAMPNS (and SCM_TIMESTAMPNS) on x86-64 and arm64, where the
/// `libc` crate does not export it.
const SO_TIMESTAMPNS: libc::c_int = 35;

/// Asks the kernel to stamp each datagram received on `fd` with its arrival
/// time, so that round trips are timed exactly even when the generator reads
/// its sockets only once per tick.
pub fn enable_timestamps(fd: RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the option value is a c_int that lives through the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The current CLOCK_REALTIME in nanoseconds: the clock of the kernel's
/// receive timestamps, written into every payload.
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Batch {
    /// Empty buffers.
    pub fn new() -> Self {
        // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid
        // (AF_UNSPEC) value.
        let zero: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        Batch {
            data: vec![0; BATCH * SLOT].into_boxed_slice(),
            lens: [0; BATCH],
            addrs: Box::new([zero; BATCH]),
            addr_lens: [0; BATCH],
            control: Box::new([[0; 8]; BATCH]),
            stamps: [0; BATCH],
        }
    }

    /// Slot `i` to write a datagram into; say its length with
    /// [`Batch::set_len`].
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.data[i * SLOT..(i + 1) * SLOT]
    }

    /// Sets the length of the datagram in slot `i`.
    pub fn set_len(&mut self, i: usize, len: usize) {
        self.lens[i] = len.min(SLOT);
    }

    /// Datagram `i` as received (or written).
    pub fn packet(&self, i: usize) -> &[u8] {
        &self.data[i * SLOT..i * SLOT + self.lens[i]]
    }

    /// When datagram `i` arrived (CLOCK_REALTIME ns), if the socket has
    /// [`enable_timestamps`].
    pub fn stamp(&self, i: usize) -> Option<u64> {
        Some(self.stamps[i]).filter(|&s| s != 0)
    }

    /// Sends datagrams `0..count` on `fd`: to the connected peer when
    /// `to_sources` is false, else each back to the address it came from
    /// (an echo). Returns how many went before the socket buffer filled.
    pub fn send(&mut self, fd: RawFd, count: usize, to_sources: bool) -> io::Result<usize> {
        let count = count.min(BATCH);
        let mut sent = 0;
        while sent < count {
            let mut iovecs = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; BATCH];
            // SAFETY: mmsghdr is plain old data; zeroes are valid.
            let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            let n = count - sent;
            for k in 0..n {
                let i = sent + k;
                iovecs[k] = libc::iovec {
                    iov_base: self.data[i * SLOT..].as_mut_ptr().cast(),
                    iov_len: self.lens[i],
                };
                let header = &mut headers[k].msg_hdr;
                header.msg_iov = &mut iovecs[k];
                header.msg_iovlen = 1;
                if to_sources {
                    header.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
                    header.msg_namelen = self.addr_lens[i];
                }
            }
            // SAFETY: every header points at an iovec and (optionally) an
            // address inside `self` or on this stack frame, all alive and
            // unaliased for the duration of the call; n ≤ BATCH.
            let r =
                unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
            if r < 0 {
                let error = io::Error::last_os_error();
                return match error.kind() {
                    io::ErrorKind::WouldBlock => Ok(sent),
                    // A refused datagram (ICMP port unreachable reported on
                    // a connected socket) is skipped, not fatal.
                    io::ErrorKind::ConnectionRefused => {
                        sent += 1;
                        continue;
                    }
                    _ => Err(error),
                };
            }
            sent += r as usize;
        }
        Ok(sent)
    }

    /// Receives up to [`BATCH`] datagrams without blocking; returns how
    /// many (0 when none is waiting).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: mmsghdr is plain old data; zeroes are valid.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let base = self.data.as_mut_ptr();
        for k in 0..BATCH {
            // SAFETY: k * SLOT + SLOT ≤ data.len(), so the offset stays in
            // the allocation.
            iovecs[k] = libc::iovec {
                iov_base: unsafe { base.add(k * SLOT) }.cast(),
                iov_len: SLOT,
            };
            let header = &mut headers[k].msg_hdr;
            header.msg_iov = &mut iovecs[k];
            header.msg_iovlen = 1;
            header.msg_name = (&mut self.addrs[k] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            header.msg_control = self.control[k].as_mut_ptr().cast();
            header.msg_controllen = std::mem::size_of::<[u64; 8]>();
        }
        // SAFETY: as in `send`: every pointer is into `self` or this frame
        // and outlives the call; each iovec covers one SLOT of `data`.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionRefused => Ok(0),
                _ => Err(error),
            };
        }
        let n = r as usize;
        for (k, header) in headers[..n].iter().enumerate() {
            self.lens[k] = (header.msg_len as usize).min(SLOT);
            self.addr_lens[k] = header.msg_hdr.msg_namelen;
            self.stamps[k] = arrival(&header.msg_hdr);
        }
        Ok(n)
    }
}

/// The SCM_TIMESTAMPNS of a received message, in nanoseconds; 0 if absent.
fn arrival(header: &libc::msghdr) -> u64 {
    // SAFETY: the header was filled by recvmmsg: msg_control points at our
    // buffer and msg_controllen says how much of it the kernel wrote, which
    // is what the CMSG macros walk.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
    }
    0
}

/// An epoll instance: which of many sockets are readable, in one call.
pub struct Poller {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    /// A new epoll instance reporting up to `capacity` sockets per wait.
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
        })
    }

    /// Watches `fd` for input, reported with `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: event is a valid epoll_event for the call's duration.
        let r =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` for input; returns the tokens of the
    /// readable sockets.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<impl Iterator<Item = u64> + '_> {
        // SAFETY: the buffer holds events.len() entries, as told.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        let n = if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
            0
        } else {
            n as usize
        };
        Ok(self.events[..n].iter().map(|e| e.u64))
    }
}

/// Raises the soft limit on open files to the hard one: each client holds
/// a socket, and 10,000 clients exceed the usual soft limit of 1,024.
pub fn raise_fd_limit() -> io::Result<u64> {
    crate::open_files::raise_to_hard_limit().map(|limit| limit.now)
}

/// CPU time (user + system) of this whole process, in seconds.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain old data written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: usage is a valid rusage for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } < 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
