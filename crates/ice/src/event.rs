//! What the agent tells its application: the four phases as they happen.

use std::time::Duration;

use crate::candidate::Candidate;

/// The state of one candidate pair's checks (RFC 8445 §6.1.2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckState {
    /// Not checked until a pair of the same foundation works.
    Frozen,
    /// Will be checked when pacing allows.
    Waiting,
    /// A check was sent; no answer yet.
    InProgress,
    /// A check was answered: the pair works.
    Succeeded,
    /// No answer, or an error.
    Failed,
}

impl CheckState {
    /// The name used in timelines and traces (`in-progress`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Frozen => "frozen",
            CheckState::Waiting => "waiting",
            CheckState::InProgress => "in-progress",
            CheckState::Succeeded => "succeeded",
            CheckState::Failed => "failed",
        }
    }
}

/// The agent's overall state, as RTCIceConnectionState names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Gathering; no remote candidates yet.
    New,
    /// Checks are running; nothing selected yet.
    Checking,
    /// Every component has a selected pair.
    Connected,
    /// Connected, and no check is left to run.
    Completed,
    /// Consent checks on a selected pair went unanswered for a while.
    Disconnected,
    /// Every pair failed, or consent expired.
    Failed,
    /// Closed by the application.
    Closed,
}

impl State {
    /// The name used in timelines and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Checking => "checking",
            State::Connected => "connected",
            State::Completed => "completed",
            State::Disconnected => "disconnected",
            State::Failed => "failed",
            State::Closed => "closed",
        }
    }
}

/// A local and a remote candidate checked together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairDescription {
    /// The component both belong to.
    pub component: u16,
    /// The local candidate (for a working pair: the one the other side saw).
    pub local: Candidate,
    /// The remote candidate.
    pub remote: Candidate,
}

/// Something the application may show, log or act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Phase 1: a local candidate; send it to the other side (trickle).
    CandidateGathered {
        /// The candidate.
        candidate: Candidate,
        /// The STUN/TURN server it came from, as configured.
        server: Option<String>,
    },
    /// Phase 1: a server gave no candidate.
    GatheringFailed {
        /// The server, as configured.
        server: String,
        /// The STUN error code, when the server answered with one.
        code: Option<u16>,
        /// What went wrong.
        reason: String,
    },
    /// Phase 1 is over: send `a=end-of-candidates`.
    GatheringComplete,
    /// Phase 2: a remote candidate learned from a check (peer-reflexive).
    RemoteCandidateLearned {
        /// The candidate.
        candidate: Candidate,
    },
    /// Phase 3: a pair's check changed state.
    Check {
        /// The pair.
        pair: PairDescription,
        /// Its new state.
        state: CheckState,
        /// Round-trip time, when it succeeded.
        rtt: Option<Duration>,
        /// The error code the other side answered with.
        code: Option<u16>,
        /// Why it failed.
        reason: Option<String>,
        /// Whether the pair is now nominated.
        nominated: bool,
    },
    /// The agent changed role after a role conflict (RFC 8445 §7.3.1.1).
    RoleChanged {
        /// The new role.
        controlling: bool,
    },
    /// Phase 4: a pair was selected for a component.
    Selected {
        /// The pair.
        pair: PairDescription,
    },
    /// Phase 4, later: the selected pair was replaced by a better one.
    Promoted {
        /// The pair given up.
        from: PairDescription,
        /// The pair now used.
        to: PairDescription,
        /// Why.
        reason: String,
    },
    /// The overall state changed.
    StateChanged {
        /// The new state.
        state: State,
        /// Why, for `Disconnected` and `Failed`.
        reason: Option<String>,
    },
}
