//! # edgeice-analyze: why did this call's media never flow?
//!
//! Reads what an engineer collects after a failed call — bare SDP, SIP
//! traces, Lync/Skype for Business client and server logs, packet
//! captures, webrtc-internals dumps, `edgeice call --trace` files — pairs
//! each call's offer with its answer, decodes every candidate (with
//! [`edgeice_candidate`]) and reasons about them: the findings say what is
//! wrong, on which side, with the lines that show it and the fix.
//!
//! The analysis is a stream: a call is reported and dropped as soon as it
//! ends, so a multi-gigabyte log takes constant memory.
//!
//! - [`input`] recognises a file's format and yields SIP messages, SDP
//!   bodies, STUN packets, peer connections or traces, one at a time;
//! - [`capture`] reads pcap and pcapng files: link layers, IPv4/IPv6 with
//!   extension headers, fragments reassembled, TCP streams followed, STUN
//!   in every framing (classic RFC 3489 too);
//! - [`sip`] parses a SIP message and splits `multipart` bodies, setting the
//!   OCS 2007 fallback part aside;
//! - [`sdp`] cuts an SDP body into media sections with their candidates;
//! - [`serve_log`] reads `edgeice serve`'s session and refusal records and
//!   explains failed sessions;
//! - [`trace`] reads `edgeice call --trace` files and folds one or two of
//!   them into a call;
//! - [`call`] builds calls (by Call-ID) message by message, with timelines;
//! - [`stream`] is the [`Analyzer`]: it finishes calls as they end and hands
//!   them to a [`Sink`], keeping a bounded [`Summary`];
//! - [`diagnose`] produces the findings;
//! - [`pairs`] forms each media line's candidate pairs and says which can
//!   cross, from the diagnosis' address classes, findings and the checks
//!   the input shows (the HTML diagram draws them);
//! - [`report`] writes them as text or JSON, [`decoded`] each candidate's
//!   fields for JSON, [`html`] the HTML report.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod call;
pub mod capture;
mod captured_checks;
mod classic_stun;
pub mod decoded;
pub mod diagnose;
pub mod dialect;
pub mod excerpt;
mod fragments;
pub mod html;
pub mod input;
mod json_walk;
mod link;
pub mod ms_codes;
mod network;
pub mod pairs;
mod reassembly;
pub mod report;
pub mod sdp;
pub mod serve_log;
pub mod sip;
mod spool;
pub mod stream;
pub mod trace;
pub mod webrtc_internals;

#[doc(hidden)]
pub mod fuzzing;

pub use call::{Analysis, analyze};
pub use diagnose::{Finding, Severity};
pub use stream::{Analyzer, Limits, Sink, Summary};
