//! Compiles the XDP program (ebpf/*.c) with clang for the BPF target. The object lands in
//! OUT_DIR and is embedded into relayd; it is never committed.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let src_dir = manifest.join("../ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    println!("cargo:rerun-if-env-changed=CLANG");
    for prog in ["relay_xdp", "ceiling_xdp"] {
        let src = src_dir.join(format!("{prog}.c"));
        println!("cargo:rerun-if-changed={}", src.display());
        let obj = out.join(format!("{prog}.o"));
        let arch_include = format!("/usr/include/{}-linux-gnu", std::env::var("CARGO_CFG_TARGET_ARCH").unwrap());
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-I", &arch_include, "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("clang failed ({s}) compiling {}", src.display()),
            Err(e) => panic!(
                "cannot run `{clang}` ({e}): the XDP program in ebpf/ is compiled with clang. \
                 Install it: apt-get install clang (Debian/Ubuntu package `clang`), or set CLANG=/path/to/clang"
            ),
        }
    }
}
