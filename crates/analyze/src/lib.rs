//! # edgeice-analyze: why did this call's media never flow?
//!
//! Reads what an engineer collects after a failed call — bare SDP, SIP
//! traces, Lync/Skype for Business client logs (`.uccapilog`) — pairs each
//! call's offer with its answer, decodes every candidate (with
//! [`edgeice_candidate`]) and reasons about them: the findings say what is
//! wrong, on which side, with the lines that show it and the fix.
//!
//! Reading is line by line: a multi-gigabyte log takes memory in proportion
//! to the SIP messages of interest, not to the file.
//!
//! - [`input`] recognises a file's format and yields SIP messages or SDP bodies;
//! - [`sip`] parses a SIP message and splits `multipart` bodies, setting the
//!   OCS 2007 fallback part aside;
//! - [`sdp`] cuts an SDP body into media sections with their candidates;
//! - [`call`] groups messages into calls (by Call-ID) and builds timelines;
//! - [`diagnose`] produces the findings;
//! - [`report`] writes them as text or JSON, [`decoded`] each candidate's
//!   fields for JSON, [`html`] the HTML report.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod call;
pub mod capture;
pub mod decoded;
pub mod diagnose;
pub mod html;
pub mod input;
mod reassembly;
pub mod report;
pub mod sdp;
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
