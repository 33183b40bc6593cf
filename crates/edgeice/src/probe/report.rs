//! The probe's checklist: one line per check, pass / warn / fail, with the
//! reason and, when something is wrong, what to do about it; as text for a
//! person or JSON for a script.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// As an operator would want it.
    Pass,
    /// Works here, but will not for some clients (or could not be tested).
    Warn,
    /// Broken: calls that need this will fail.
    Fail,
}

impl Status {
    /// The word printed and written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the checklist.
#[derive(Clone, Debug)]
pub struct Check {
    /// What was checked (`binding udp`, `allocate tcp`, `relay reachable`…).
    pub name: String,
    /// How it came out.
    pub status: Status,
    /// One line: what was seen.
    pub reason: String,
    /// One line: what to do, when it did not pass.
    pub fix: Option<String>,
    /// The round trip of the request behind it, when there was one.
    pub rtt_ms: Option<f64>,
}

impl Check {
    /// A passing check.
    pub fn pass(name: impl Into<String>, reason: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Pass,
            reason: reason.into(),
            fix: None,
            rtt_ms: None,
        }
    }

    /// A warning, with its fix.
    pub fn warn(
        name: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Warn,
            fix: Some(fix.into()),
            ..Check::pass(name, reason)
        }
    }

    /// A failure, with its fix.
    pub fn fail(
        name: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Fail,
            fix: Some(fix.into()),
            ..Check::pass(name, reason)
        }
    }

    /// The same check with a round-trip time.
    pub fn with_rtt(mut self, rtt_ms: f64) -> Check {
        self.rtt_ms = Some(rtt_ms);
        self
    }
}

/// The checks of one server URL.
#[derive(Clone, Debug)]
pub struct ServerReport {
    /// The URL as given.
    pub url: String,
    /// The address it resolved to, if it did.
    pub address: Option<String>,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

/// The worst status of all checks (a probe with no check passes).
pub fn overall(reports: &[ServerReport]) -> Status {
    let statuses = reports
        .iter()
        .flat_map(|r| r.checks.iter().map(|c| c.status));
    if statuses.clone().any(|s| s == Status::Fail) {
        Status::Fail
    } else if statuses.clone().any(|s| s == Status::Warn) {
        Status::Warn
    } else {
        Status::Pass
    }
}

/// The checklist for a person.
pub fn text(reports: &[ServerReport]) -> String {
    let mut out = String::new();
    let width = reports
        .iter()
        .flat_map(|r| r.checks.iter().map(|c| c.name.len()))
        .max()
        .unwrap_or(0);
    for report in reports {
        match &report.address {
            Some(address) => {
                let _ = writeln!(out, "{} ({address})", report.url);
            }
            None => {
                let _ = writeln!(out, "{}", report.url);
            }
        }
        for check in &report.checks {
            let rtt = check
                .rtt_ms
                .map(|ms| format!(" (rtt {ms:.1} ms)"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<4}  {:<width$}  {}{rtt}",
                check.status.as_str(),
                check.name,
                check.reason
            );
            if let Some(fix) = &check.fix {
                let _ = writeln!(out, "        {:<width$}  fix: {fix}", "");
            }
        }
    }
    let verdict = match overall(reports) {
        Status::Pass => "every check passed",
        Status::Warn => "no failure, but warnings",
        Status::Fail => "some checks failed",
    };
    let _ = writeln!(out, "result: {} — {verdict}", overall(reports).as_str());
    out
}

/// The checklist as one JSON document.
pub fn json(reports: &[ServerReport]) -> Value {
    let servers: Vec<Value> = reports
        .iter()
        .map(|report| {
            let checks: Vec<Value> = report
                .checks
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "status": c.status.as_str(),
                        "reason": c.reason,
                        "fix": c.fix,
                        "rtt_ms": c.rtt_ms,
                    })
                })
                .collect();
            json!({"url": report.url, "address": report.address, "checks": checks})
        })
        .collect();
    json!({"result": overall(reports).as_str(), "servers": servers})
}
