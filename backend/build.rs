//! Compiles the XDP program (ebpf/*.c) with clang for the BPF target. The object lands in
//! OUT_DIR and is embedded into relayd; it is never committed.
//!
//! Also compiles and runs ebpf/abi_layout.c for the build host: it prints the sizes,
//! field offsets and constants of ebpf/relay_abi.h as Rust into OUT_DIR/abi_layout.rs,
//! which src/xdp/abi.rs checks its structs against at compile time.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let src_dir = manifest.join("../ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed={}", src_dir.join("relay_abi.h").display());
    let arch_include = format!("/usr/include/{}-linux-gnu", std::env::var("CARGO_CFG_TARGET_ARCH").unwrap());
    for prog in ["relay_xdp", "ceiling_xdp"] {
        let src = src_dir.join(format!("{prog}.c"));
        println!("cargo:rerun-if-changed={}", src.display());
        let obj = out.join(format!("{prog}.o"));
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-I", &arch_include, "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&obj);
        run_clang(&clang, &src, cmd);
    }
    abi_layout(&clang, &src_dir, &out, &arch_include);
}

fn run_clang(clang: &str, src: &Path, mut cmd: Command) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("clang failed ({s}) compiling {}", src.display()),
        Err(e) => panic!(
            "cannot run `{clang}` ({e}): the XDP program in ebpf/ is compiled with clang. \
             Install it: apt-get install clang (Debian/Ubuntu package `clang`), or set CLANG=/path/to/clang"
        ),
    }
}

/// Writes OUT_DIR/abi_layout.rs: the C side of the map layouts, as Rust constants.
fn abi_layout(clang: &str, src_dir: &Path, out: &Path, arch_include: &str) {
    let src = src_dir.join("abi_layout.c");
    println!("cargo:rerun-if-changed={}", src.display());
    let exe = out.join("abi_layout");
    let mut cmd = Command::new(clang);
    cmd.args(["-Wall", "-Werror", "-I", arch_include]).arg(&src).arg("-o").arg(&exe);
    run_clang(clang, &src, cmd);
    let run = Command::new(&exe).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    assert!(run.status.success(), "{} failed: {}", exe.display(), run.status);
    // C names (flow_key_port) become Rust constant names (FLOW_KEY_PORT)
    let rust: String = String::from_utf8(run.stdout)
        .expect("abi_layout prints ASCII")
        .lines()
        .map(|l| match l.strip_prefix("pub const ").and_then(|r| r.split_once(':')) {
            Some((name, rest)) => format!("pub const {}:{rest}\n", name.to_uppercase()),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(out.join("abi_layout.rs"), rust).expect("write abi_layout.rs");
}
