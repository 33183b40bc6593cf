//! The process's own figures, read from `/proc` at scrape time under the
//! names Prometheus's client libraries use (`process_*`), so the usual
//! dashboards and alerts find them.

use std::io;

/// What the kernel says about this process now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory, in bytes.
    pub virtual_bytes: u64,
    /// File descriptors open.
    pub open_fds: u64,
    /// The soft limit on open files.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Threads.
    pub threads: u64,
}

/// Reads this process's figures from `/proc`.
pub fn read() -> io::Result<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let boot = boot_time(&std::fs::read_to_string("/proc/stat")?)?;
    let mut stats = parse_stat(&stat, ticks_per_second(), page_size(), boot)?;
    stats.open_fds = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    stats.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| max_open_files(&limits));
    Ok(stats)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {what}"))
}

/// The fields of `/proc/self/stat` (proc_pid_stat(5)) that matter here.
fn parse_stat(stat: &str, ticks: f64, page: u64, boot: u64) -> io::Result<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces
    // or parentheses itself: the fields after the last ')' are plain.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| invalid("/proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field n is fields[n - 3].
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| invalid("/proc/self/stat"))
    };
    let (utime, stime) = (field(14)?, field(15)?);
    Ok(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks,
        threads: field(20)?,
        start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)?.saturating_mul(page),
        ..ProcessStats::default()
    })
}

/// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
fn boot_time(proc_stat: &str) -> io::Result<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| invalid("/proc/stat"))
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    // "unlimited" is no figure to graph.
    soft.parse().ok()
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        // A command name with a space and a parenthesis, as a process may
        // name itself.
        let stat = "4242 (edge ice) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.threads, 7);
        assert!((s.start_time_seconds - 1_700_000_123.45).abs() < 1e-3);
        assert_eq!(s.virtual_bytes, 104_857_600);
        assert_eq!(s.resident_bytes, 2560 * 4096);
        assert!(parse_stat("4242 (edgeice S 1", 100.0, 4096, 0).is_err());
        assert!(parse_stat("4242 (edgeice) S 1", 100.0, 4096, 0).is_err());
    }

    #[test]
    fn limits_and_boot_time_are_found() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63475                63475                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\n").unwrap(),
            1_700_000_000
        );
        assert!(boot_time("cpu 1 2 3\n").is_err());
    }

    #[test]
    fn this_process_reads() {
        let s = read().unwrap();
        assert!(s.resident_bytes > 0 && s.open_fds > 0 && s.threads > 0);
        assert!(s.max_fds.is_some_and(|max| max >= s.open_fds));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started in the past, and not before 2020.
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > 1.5e9);
    }
}
