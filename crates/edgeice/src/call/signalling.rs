//! File or terminal signalling: the local description is written (and
//! grown, as candidates trickle) to a file or stdout; the remote one is
//! read from a file as it grows, or from stdin.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Where the local description goes.
pub struct LocalDescription {
    out: Box<dyn Write + Send>,
    /// Writing failed once: further lines are dropped.
    broken: bool,
}

impl LocalDescription {
    /// `-` is stdout; a path is created (truncated) now.
    pub fn open(path: &str) -> Result<LocalDescription> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create the local description {path}"))?,
            )
        };
        Ok(LocalDescription { out, broken: false })
    }

    /// Appends text and flushes, so the other side sees it at once.
    pub fn append(&mut self, text: &str) -> Result<()> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .context("cannot write the local description")
    }

    /// Appends what trickles in after the start: a reader that went away
    /// (the other side finished, a closed pipe) does not end the call, so
    /// a failure is only reported, once.
    pub fn trickle(&mut self, text: &str) {
        if self.broken {
            return;
        }
        if let Err(e) = self.append(text) {
            eprintln!("edgeice call: {e:#}; the other side will not see more of this description");
            self.broken = true;
        }
    }
}

/// Reads the remote description line by line as it appears, in a task;
/// lines arrive on the returned channel. A file that does not exist yet is
/// waited for (the other side may start later).
pub fn read_remote(path: String) -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        if path == "-" {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if tx.send(Ok(line)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
        tail(PathBuf::from(path), tx).await;
    });
    rx
}

/// Follows a growing file; a line counts once it ends with a newline.
async fn tail(path: PathBuf, tx: mpsc::Sender<std::io::Result<String>>) {
    let poll = Duration::from_millis(20);
    let mut offset = 0usize;
    let mut pending = String::new();
    loop {
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                // The file was rewritten by a new run of the other side.
                if bytes.len() < offset {
                    offset = 0;
                    pending.clear();
                }
                pending.push_str(&String::from_utf8_lossy(&bytes[offset..]));
                offset = bytes.len();
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(poll).await;
    }
}
