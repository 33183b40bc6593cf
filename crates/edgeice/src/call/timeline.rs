//! The call's four phases as a person reads them (a timeline on the
//! terminal) and as `edgeice analyze` reads them (`--trace`, JSON lines in
//! the format of docs/call-trace.md).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use edgeice_ice::{Candidate, Event, PairDescription};
use serde_json::{Value, json};

/// Writes each event to the terminal and, with `--trace`, to a file.
pub struct Timeline {
    start: Instant,
    terminal: Box<dyn Write + Send>,
    trace: Option<std::io::BufWriter<std::fs::File>>,
}

fn short(candidate: &Candidate) -> String {
    match candidate.tcp_type {
        Some(tcp_type) => format!(
            "{} tcp-{} {}",
            candidate.kind.as_str(),
            tcp_type.as_str(),
            candidate.address
        ),
        None => format!("{} {}", candidate.kind.as_str(), candidate.address),
    }
}

fn pair_text(pair: &PairDescription) -> String {
    format!("{} -> {}", short(&pair.local), short(&pair.remote))
}

fn pair_json(pair: &PairDescription) -> Value {
    json!({ "local": pair.local.to_string(), "remote": pair.remote.to_string() })
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

impl Timeline {
    /// A timeline starting now; the terminal is stdout, or stderr when
    /// stdout carries the description.
    pub fn new(start: Instant, to_stderr: bool, trace: Option<&str>) -> Result<Timeline> {
        let terminal: Box<dyn Write + Send> = if to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        let trace = trace
            .map(|path| {
                std::fs::File::create(path)
                    .map(std::io::BufWriter::new)
                    .with_context(|| format!("cannot create the trace {path}"))
            })
            .transpose()?;
        Ok(Timeline {
            start,
            terminal,
            trace,
        })
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// A line for people.
    pub fn say(&mut self, phase: &str, text: &str) {
        let t = self.elapsed().as_secs_f64();
        let _ = writeln!(self.terminal, "[{t:8.3}] {phase:<10} {text}");
    }

    /// A line for the trace (`t_ms` and `event` are added).
    pub fn record(&mut self, event: &str, mut fields: Value) {
        let Some(trace) = &mut self.trace else { return };
        if let Value::Object(map) = &mut fields {
            map.insert("t_ms".into(), json!(ms(self.start.elapsed())));
            map.insert("event".into(), json!(event));
        }
        let _ = serde_json::to_writer(&mut *trace, &fields);
        let _ = trace.write_all(b"\n");
        let _ = trace.flush();
    }

    /// Records that the agent's timer `timer`, due at `due`, woke it: a
    /// wake-up that looks wrong says what scheduled it.
    pub fn timer(&mut self, due: Instant, timer: edgeice_ice::Timer) {
        let due_ms = ms(due.saturating_duration_since(self.start));
        self.record("timer", json!({"reason": timer.as_str(), "due_ms": due_ms}));
    }

    /// Shows and records one agent event.
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::CandidateGathered { candidate, server } => {
                let from = server
                    .as_ref()
                    .map(|s| format!(" from {s}"))
                    .unwrap_or_default();
                self.say(
                    "1 gather",
                    &format!(
                        "{}{from} (component {}, priority {})",
                        short(candidate),
                        candidate.component,
                        candidate.priority
                    ),
                );
                self.record(
                    "candidate",
                    json!({"side": "local", "candidate": candidate.to_string(), "server": server}),
                );
            }
            Event::GatheringFailed {
                server,
                code,
                reason,
            } => {
                let code_text = code.map(|c| format!(" error {c}")).unwrap_or_default();
                self.say(
                    "1 gather",
                    &format!("{server} gave no candidate:{code_text} {reason}"),
                );
                self.record(
                    "gather-error",
                    json!({"server": server, "code": code, "reason": reason}),
                );
            }
            Event::GatheringComplete => {
                self.say("1 gather", "complete (a=end-of-candidates sent)");
                self.record("end-of-candidates", json!({"side": "local"}));
            }
            Event::RemoteCandidateLearned { candidate } => {
                self.say(
                    "2 exchange",
                    &format!("learned from a check: {}", short(candidate)),
                );
                self.record(
                    "candidate",
                    json!({"side": "remote", "candidate": candidate.to_string(), "learned": true}),
                );
            }
            Event::Check {
                pair,
                state,
                rtt,
                code,
                reason,
                nominated,
            } => {
                let mut text = format!("{} {}", pair_text(pair), state.as_str());
                if let Some(rtt) = rtt {
                    text.push_str(&format!(" rtt {:.1} ms", ms(*rtt)));
                }
                if let Some(code) = code {
                    text.push_str(&format!(" error {code}"));
                }
                if let Some(reason) = reason {
                    text.push_str(&format!(" ({reason})"));
                }
                if *nominated {
                    text.push_str(" nominated");
                }
                self.say("3 check", &text);
                self.record(
                    "check",
                    json!({
                        "component": pair.component,
                        "local": pair.local.to_string(),
                        "remote": pair.remote.to_string(),
                        "state": state.as_str(),
                        "rtt_ms": rtt.map(ms),
                        "code": code,
                        "reason": reason,
                        "nominated": nominated,
                    }),
                );
            }
            Event::RoleChanged { controlling } => {
                let role = if *controlling {
                    "controlling"
                } else {
                    "controlled"
                };
                self.say("3 check", &format!("role conflict: now {role}"));
                self.record("role", json!({"role": role}));
            }
            Event::Selected { pair } => {
                self.say(
                    "4 select",
                    &format!("component {}: {}", pair.component, pair_text(pair)),
                );
                self.record(
                    "selected",
                    json!({"component": pair.component, "local": pair.local.to_string(), "remote": pair.remote.to_string()}),
                );
            }
            Event::Promoted { from, to, reason } => {
                self.say(
                    "4 promote",
                    &format!(
                        "component {}: {} => {} ({reason})",
                        to.component,
                        pair_text(from),
                        pair_text(to)
                    ),
                );
                self.record(
                    "promoted",
                    json!({"component": to.component, "from": pair_json(from), "to": pair_json(to), "reason": reason}),
                );
            }
            Event::StateChanged { state, reason } => {
                let because = reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                self.say("state", &format!("{}{because}", state.as_str()));
                self.record("state", json!({"state": state.as_str(), "reason": reason}));
            }
        }
    }
}
