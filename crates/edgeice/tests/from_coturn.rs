//! `edgeice config from-coturn`: coturn's own example configuration
//! (coturn 4.17.1's examples/etc/turnserver.conf, in tests/data/coturn) and
//! a realistic one convert to TOML that `edgeice serve --check-config`
//! accepts, and the server started from the realistic one relays for
//! coturn's own client, `turnutils_uclient`, with each kind of credential.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/coturn")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("edgeice-from-coturn-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn edgeice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeice"))
        .args(args)
        .output()
        .unwrap()
}

/// Converts `conf` to `out`; the converter's stderr.
fn convert(conf: &Path, out: &Path) -> String {
    let output = edgeice(&[
        "config",
        "from-coturn",
        conf.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "from-coturn failed: {stderr}");
    stderr
}

/// `edgeice serve --config out --check-config` succeeds; its output.
fn checks(out: &Path) -> String {
    let output = edgeice(&["serve", "--config", out.to_str().unwrap(), "--check-config"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "--check-config refused the converted file:\n{}\n{stdout}\n{}",
        std::fs::read_to_string(out).unwrap(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn coturns_example_converts_as_it_is_and_with_every_option_uncommented() {
    let dir = scratch("example");
    let out = dir.join("example.toml");
    // As shipped, every option is commented out: nothing to carry, nothing lost.
    let stderr = convert(&data("turnserver.conf"), &out);
    assert!(stderr.is_empty(), "{stderr}");
    checks(&out);

    // Every option the example documents, uncommented: each is carried
    // over, said to be edgeice's behaviour, or listed with why not.
    let example = std::fs::read_to_string(data("turnserver.conf")).unwrap();
    let mut options = Vec::new();
    let uncommented: String = example
        .lines()
        .map(|line| {
            let Some(rest) = line.strip_prefix('#') else {
                return format!("{line}\n");
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            let after = rest[name.len()..].chars().next();
            if name.len() > 1
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && matches!(after, None | Some('=') | Some(' '))
                && !rest.contains("  ")
            {
                options.push(name);
                format!("{rest}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert!(options.len() > 100, "{} options found", options.len());
    let conf = dir.join("uncommented.conf");
    std::fs::write(&conf, uncommented).unwrap();
    let stderr = convert(&conf, &out);
    let toml = std::fs::read_to_string(&out).unwrap();
    // A line that names the option as a word: a carried key's `# coturn:`
    // or a note.
    let names = |line: &str, option: &str| {
        line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .any(|word| word == option)
    };
    for option in &options {
        assert!(
            toml.lines()
                .filter(|l| l.contains("# coturn: ") || l.starts_with("#   "))
                .any(|l| names(l, option)),
            "{option} is neither carried over nor listed:\n{toml}"
        );
    }
    assert!(
        stderr.contains("not carried over: ") && stderr.contains("userdb"),
        "{stderr}"
    );
    assert!(toml.contains(r#"external-ip = ["60.70.80.91", "60.70.80.91/172.17.19.101", "60.70.80.92/172.17.19.102"]"#), "{toml}");
    assert!(
        toml.contains(r#"user-key = ["ninefingers:0xbc807ee29df3c9ffa736523fb2c4e8ee"]"#),
        "{toml}"
    );
    assert!(toml.contains(r#"relay-ports = "49152-65535""#), "{toml}");
    // What coturn would serve from it, edgeice checks without complaint.
    let effective = checks(&out);
    assert!(
        effective.contains("realm = \"mycompany.org\""),
        "{effective}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_realistic_coturn_configuration_serves_once_converted() {
    let dir = scratch("realistic");
    let (_ca, cert, key) = common::certificates(&dir);
    let mut conf = std::fs::read_to_string(data("turnserver-realistic.conf")).unwrap();
    conf.push_str(&format!(
        "cert={}\npkey={}\n",
        cert.display(),
        key.display()
    ));
    let conf_path = dir.join("turnserver.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let out = dir.join("edgeice.toml");
    let stderr = convert(&conf_path, &out);
    for why in ["stale-nonce", "cipher-list", "log-file", "pidfile"] {
        assert!(stderr.contains(why), "{why} not listed: {stderr}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the converted file (passwords) is readable by others"
    );
    let effective = checks(&out);
    for line in [
        r#"tls-listen = ["127.0.0.1:5349"]"#,
        r#"user-key = ["bob:***"]"#,
        r#"deny-peer = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]"#,
        "max-allocations-per-user = 12",
        "max-allocate-lifetime = 1800",
        "no-software = true",
    ] {
        assert!(effective.contains(line), "{line} missing:\n{effective}");
    }
    // Served from the converted file; the fixed ports are moved to free
    // ones on the command line, which wins over the file.
    let (_server, listeners) = common::start_server(
        &[
            "--config",
            out.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ],
        4,
    );
    let find = |proto: &str| listeners.iter().find(|(p, _)| p == proto).unwrap().1;
    let (udp, tls) = (find("udp"), find("tls"));
    assert!(
        common::uclient_relays(&["-u", "alice", "-w", "wonderland"], udp),
        "alice, a password"
    );
    assert!(
        common::uclient_relays(&["-u", "bob", "-w", "builder"], udp),
        "bob, a 0x key"
    );
    assert!(
        common::uclient_relays(&["-u", "rest", "-W", "north"], udp),
        "a REST credential"
    );
    assert!(
        common::uclient_relays(&["-t", "-S", "-u", "alice", "-w", "wonderland"], tls),
        "over TLS"
    );
    assert!(
        !common::uclient_relays(&["-u", "alice", "-w", "wrong"], udp),
        "a wrong password relayed"
    );
    let _ = std::fs::remove_dir_all(dir);
}
