//! With the `ebpf` feature, compiles `ebpf/relay.c` (the XDP program and
//! the TC one, sharing maps) into `$OUT_DIR/relay.o` with clang (Debian's `clang` and `libbpf-dev`):
//! nothing is downloaded. Without the feature, does nothing.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=ebpf/relay.c");
    println!("cargo:rerun-if-env-changed=CLANG");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    // <asm/types.h> lives under the multiarch directory on Debian.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => panic!("the ebpf feature knows no multiarch include directory for {other}"),
    };
    let status = Command::new(&clang)
        // v3: atomic adds that return the old value (the loan of a capped
        // allocation), kernels 5.12 and later.
        .args([
            "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-mcpu=v3",
        ])
        .arg(format!("-I/usr/include/{multiarch}"))
        .args(["-c", "ebpf/relay.c", "-o"])
        .arg(out.join("relay.o"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile ebpf/relay.c ({s})"),
        Err(e) => panic!(
            "the ebpf feature needs clang and libbpf-dev (apt-get install clang libbpf-dev): {clang}: {e}"
        ),
    }
}
