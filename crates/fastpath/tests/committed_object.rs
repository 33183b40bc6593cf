//! The committed `ebpf/relay.bpf.o` is what `ebpf/relay.c` compiles to
//! with the pinned clang and flags (`ebpf/relay.bpf.toolchain`), and
//! compiling is reproducible: `ebpf/build.sh` run from two directories of
//! different names gives the same bytes as the object in the repository.
//! (As Go projects check what bpf2go generated.)
//!
//! Without clang the check cannot run and says so (SKIPPED on stderr); so
//! does a clang of another version, whose object would differ, unless
//! `EDGEICE_BPF_CHECK=required` (scripts/test.sh sets it, having installed
//! Debian's clang and libbpf-dev), which makes either a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ebpf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ebpf")
}

fn required() -> bool {
    std::env::var("EDGEICE_BPF_CHECK").is_ok_and(|v| v == "required")
}

/// Says why the check did not run: a failure if it is required.
fn skip(why: &str) {
    assert!(!required(), "EDGEICE_BPF_CHECK=required, but {why}");
    eprintln!("SKIPPED: {why}");
}

/// Copies build.sh, the toolchain pin and relay.c into a fresh directory
/// named `name`, builds there, and returns the object's bytes, or the exit
/// code and stderr of a build that failed.
fn build_in(name: &str) -> Result<Vec<u8>, (Option<i32>, String)> {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["build.sh", "relay.bpf.toolchain", "relay.c"] {
        std::fs::copy(ebpf_dir().join(file), dir.join(file)).unwrap();
    }
    let out = Command::new("bash")
        .arg(dir.join("build.sh"))
        .arg(dir.join("out.o"))
        .output()
        .expect("run bash");
    let result = if out.status.success() {
        Ok(std::fs::read(dir.join("out.o")).unwrap())
    } else {
        Err((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn the_committed_object_is_what_relay_c_compiles_to() {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    if Command::new(&clang).arg("--version").output().is_err() {
        skip(&format!(
            "no {clang} to rebuild ebpf/relay.bpf.o with (apt-get install clang libbpf-dev)"
        ));
        return;
    }
    let committed = std::fs::read(ebpf_dir().join("relay.bpf.o")).unwrap();
    let first = match build_in("edgeice-bpf-a") {
        Ok(bytes) => bytes,
        // Another clang: build.sh said which and which is pinned.
        Err((Some(3), why)) => {
            skip(why.trim());
            return;
        }
        Err((code, why)) => panic!("ebpf/build.sh failed ({code:?}):\n{why}"),
    };
    let second = build_in("edgeice-bpf-second-directory").expect("the second build");
    assert!(
        first == second,
        "two builds of relay.c in different directories differ: the build is not reproducible"
    );
    assert!(
        first == committed,
        "ebpf/relay.bpf.o is not what relay.c compiles to: run crates/fastpath/ebpf/build.sh \
         and commit the object ({} bytes built, {} committed)",
        first.len(),
        committed.len()
    );
}

#[test]
fn the_object_is_an_elf_for_bpf_with_both_programs_and_their_btf() {
    // What the loader needs, checked without clang: a little-endian ELF
    // for machine 247 (BPF), the two programs' sections and BTF (the maps
    // are declared through it).
    let object = std::fs::read(ebpf_dir().join("relay.bpf.o")).unwrap();
    assert_eq!(&object[..4], b"\x7fELF", "not an ELF (a Git LFS pointer?)");
    assert_eq!(object[5], 1, "not little-endian");
    assert_eq!(u16::from_le_bytes([object[18], object[19]]), 247);
    let has = |name: &[u8]| object.windows(name.len()).any(|w| w == name);
    for name in [
        &b"edgeice_relay\0"[..],
        b"edgeice_relay_tc\0",
        b".BTF\0",
        b".maps\0",
    ] {
        assert!(
            has(name),
            "no {:?} in the object",
            String::from_utf8_lossy(name)
        );
    }
    // No path of the machine that built it.
    assert!(!has(b"/work/") && !has(b"/home/") && !has(b"/tmp/"));
}
