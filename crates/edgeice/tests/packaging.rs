//! What the .deb ships, checked from the source tree: the unit and its
//! socket-path-only drop-in pass `systemd-analyze verify` without a
//! warning and keep systemd's exposure score low; the default settings file
//! starts `edgeice serve`; the man pages and completions are made from the
//! flags. (packaging/test-deb.sh builds, installs and removes the package
//! itself; scripts/test.sh runs it.) Needs systemd-analyze (the Debian
//! package systemd, which scripts/test.sh installs).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const EDGEICE: &str = env!("CARGO_BIN_EXE_edgeice");

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgeice-pkg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The unit (and, with `drop_in`, the socket-path-only drop-in beside it) in a
/// directory of its own, pointing at the binary under test: verify checks
/// that ExecStart's program exists.
fn unit_copy(name: &str, drop_in: bool) -> PathBuf {
    let dir = scratch(name);
    let retarget = |text: String| text.replace("/usr/bin/edgeice", EDGEICE);
    let unit = std::fs::read_to_string(packaging().join("edgeice.service")).unwrap();
    std::fs::write(dir.join("edgeice.service"), retarget(unit)).unwrap();
    if drop_in {
        let conf = std::fs::read_to_string(packaging().join("socket-path-only.conf")).unwrap();
        std::fs::create_dir_all(dir.join("edgeice.service.d")).unwrap();
        std::fs::write(
            dir.join("edgeice.service.d/socket-path-only.conf"),
            retarget(conf),
        )
        .unwrap();
    }
    dir.join("edgeice.service")
}

fn systemd_analyze(args: &[&str], unit: &Path) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("run systemd-analyze (Debian's systemd; scripts/test.sh installs it)")
}

#[test]
fn the_unit_and_its_drop_in_verify_without_a_warning() {
    for drop_in in [false, true] {
        let unit = unit_copy(if drop_in { "drop-in" } else { "unit" }, drop_in);
        // Man pages are checked where the package installed them
        // (packaging/test-deb.sh).
        let out = systemd_analyze(&["verify", "--man=no"], &unit);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify (drop-in: {drop_in}): {}\n{stderr}",
            out.status
        );
        let _ = std::fs::remove_dir_all(unit.parent().unwrap());
    }
}

#[test]
fn a_unit_with_a_mistake_fails_the_check() {
    // The check above would pass a unit systemd ignores lines of: it must
    // see a misspelt key.
    let unit = unit_copy("mistake", false);
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, text.replace("ProtectHome=", "ProtectHomes=")).unwrap();
    let out = systemd_analyze(&["verify", "--man=no"], &unit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unknown key"), "{stderr}");
    let _ = std::fs::remove_dir_all(unit.parent().unwrap());
}

#[test]
fn the_unit_is_confined() {
    // systemd's exposure score (0 confined .. 10 unconfined; 100 here is
    // 10.0): 1.9 for the unit (with the fast path's capabilities), 1.6
    // with the socket-path-only drop-in.
    for drop_in in [false, true] {
        let unit = unit_copy(if drop_in { "sec-drop-in" } else { "sec" }, drop_in);
        let out = systemd_analyze(&["security", "--offline=yes", "--threshold=25"], &unit);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "exposure above 2.5 (drop-in: {drop_in}):\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(unit.parent().unwrap());
    }
}

#[test]
fn the_default_settings_start_the_server() {
    let dir = scratch("config");
    let store = dir.join("users.db");
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    // The file as shipped; only what must differ on a test machine is
    // given as flags (which win): loopback, a free metrics port, a store
    // of the test's own.
    let mut command = Command::new(EDGEICE);
    command
        .arg("serve")
        .arg("--config")
        .arg(packaging().join("edgeice.toml"))
        .args(["--listen", &listen, "--metrics", "127.0.0.1:0"])
        .arg("--users-db")
        .arg(&store)
        .args(["--relay-ports", "61000-65535"]);
    let (_server, listeners) = common::start_server_command(command, 3);
    let kinds: Vec<&str> = listeners.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["udp", "tcp", "metrics"]);
    assert!(store.exists(), "the user store was not made");
    let body = common::scrape(listeners[2].1);
    assert!(body.contains("edgeice_"), "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn man_pages_and_completions_come_from_the_flags() {
    let dir = scratch("assets");
    let status = Command::new(EDGEICE)
        .arg("assets")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    for page in [
        "edgeice.1",
        "edgeice-serve.1",
        "edgeice-credentials.1",
        "edgeice-user-add.1",
    ] {
        let text = std::fs::read_to_string(dir.join("man").join(page)).unwrap();
        assert!(text.starts_with(".ie"), "{page} is not roff:\n{text}");
    }
    let serve = std::fs::read_to_string(dir.join("man/edgeice-serve.1")).unwrap();
    assert!(
        serve.contains("relay\\-ports"),
        "--relay-ports is not in the page"
    );
    // The hidden subcommand has no page.
    assert!(!dir.join("man/edgeice-assets.1").exists());
    for (file, mark) in [
        ("edgeice.bash", "complete -F"),
        ("_edgeice", "#compdef edgeice"),
        ("edgeice.fish", "complete -c edgeice"),
    ] {
        let text = std::fs::read_to_string(dir.join("completions").join(file)).unwrap();
        assert!(text.contains(mark), "{file} lacks {mark:?}");
        assert!(
            text.contains("credentials"),
            "{file} lacks the credentials subcommand"
        );
    }
    // Each shell reads its file without a syntax error, where installed.
    for (shell, file) in [
        ("bash", "edgeice.bash"),
        ("zsh", "_edgeice"),
        ("fish", "edgeice.fish"),
    ] {
        let path = dir.join("completions").join(file);
        let check = match shell {
            "fish" => Command::new(shell).arg("--no-execute").arg(&path).status(),
            _ => Command::new(shell).arg("-n").arg(&path).status(),
        };
        match check {
            Ok(status) => assert!(status.success(), "{shell} -n {file}: {status}"),
            Err(_) if shell != "bash" => {} // zsh and fish are optional here
            Err(e) => panic!("cannot run bash: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The capabilities a unit file grants (its AmbientCapabilities= lines).
fn granted_capabilities(file: &str) -> Vec<String> {
    let conf = std::fs::read_to_string(packaging().join(file)).unwrap();
    conf.lines()
        .filter_map(|line| line.strip_prefix("AmbientCapabilities="))
        .flat_map(|caps| caps.split_whitespace())
        .map(|cap| cap.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

/// `edgeice serve --kernel-fast-path on` as user nobody holding only
/// `caps`, in a network namespace of its own with forwarding on (loopback
/// only: the TC hook on lo); what it printed.
fn fast_path_with(caps: &[String]) -> common::Outcome {
    let caps: Vec<String> = caps.iter().map(|cap| format!("+{cap}")).collect();
    let caps = format!("-all,{}", caps.join(","));
    let script = format!(
        "ip link set lo up && sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.lo.forwarding=1 && \
         exec timeout 20 setpriv --reuid=nobody --regid=nogroup --clear-groups \
         --inh-caps={caps} --ambient-caps={caps} --bounding-set={caps} \
         {EDGEICE} serve --listen 127.0.0.1:3478 --no-tcp --user u:p \
         --relay-ports 61000-65535 --private-relay-ok --kernel-fast-path on"
    );
    let mut command = Command::new("unshare");
    command.args(["--net", "bash", "-c", &script]);
    common::run_bounded(command, std::time::Duration::from_secs(30))
}

#[test]
fn the_unit_grants_what_the_fast_path_needs_and_no_less_will_do() {
    let caps = granted_capabilities("edgeice.service");
    assert_eq!(caps, ["net_bind_service", "bpf", "net_admin", "perfmon"]);
    // The drop-in takes them back, to the one ports below 1024 need.
    assert_eq!(
        granted_capabilities("socket-path-only.conf"),
        ["net_bind_service"]
    );
    let caps: Vec<String> = caps.into_iter().skip(1).collect();
    let out = fast_path_with(&caps);
    assert!(
        out.stderr
            .contains("kernel fast path on: bound channels are relayed in the kernel"),
        "with {caps:?}:\n{}{}",
        out.stdout,
        out.stderr
    );
    // Each one is needed: without CAP_BPF no map, without CAP_NET_ADMIN no
    // program, without CAP_PERFMON the verifier refuses the program.
    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let out = fast_path_with(&fewer);
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(1),
            "without {missing}:\n{}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stderr
                .contains("--kernel-fast-path on: the kernel refused"),
            "without {missing}:\n{}",
            out.stderr
        );
    }
}
