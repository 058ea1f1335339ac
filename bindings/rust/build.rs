//! Tells rustc where libkv.so is and how to find it again at run time.
//!
//! Order of search:
//!   1. `LIBKV_LIB_DIR`: a directory holding libkv.so (the Makefile's
//!      `rust-check` sets it to the in-tree build);
//!   2. the in-tree build `../../build`, when it holds libkv.so;
//!   3. `pkg-config --libs-only-L libkv`, when pkg-config knows libkv;
//!   4. the system linker's default directories.
//!
//! In cases 1 and 2 an rpath to that directory is linked into this
//! package's own binaries (tests, examples), so they run without
//! `LD_LIBRARY_PATH`. The directory is also exported to the build scripts
//! of dependent crates as `DEP_KV_LIB_DIR` (`links = "kv"`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn has_libkv(dir: &Path) -> bool {
    dir.join("libkv.so").exists()
}

fn link_dir(dir: &Path, rpath: bool) {
    println!("cargo:rustc-link-search=native={}", dir.display());
    if rpath {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
    println!("cargo:lib_dir={}", dir.display());
}

fn pkg_config_dirs() -> Vec<PathBuf> {
    let out = match Command::new("pkg-config")
        .args(["--libs-only-L", "libkv"])
        .output()
    {
        Ok(out) if out.status.success() => out,
        _ => return Vec::new(),
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|arg| arg.strip_prefix("-L"))
        .map(PathBuf::from)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBKV_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let in_tree = manifest.join("../../build");

    if let Some(dir) = env::var_os("LIBKV_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let dir = dir.canonicalize().unwrap_or(dir);
        if !has_libkv(&dir) {
            println!(
                "cargo:warning=LIBKV_LIB_DIR={} has no libkv.so (run `make all`)",
                dir.display()
            );
        }
        link_dir(&dir, true);
    } else if has_libkv(&in_tree) {
        let dir = in_tree.canonicalize().unwrap_or(in_tree);
        // Rerun when the in-tree library appears, moves or is rebuilt.
        println!("cargo:rerun-if-changed={}", dir.join("libkv.so").display());
        link_dir(&dir, true);
    } else {
        // An installed libkv: its directory is on the loader's path (or the
        // user sets LD_LIBRARY_PATH), so no rpath.
        for dir in pkg_config_dirs() {
            link_dir(&dir, false);
        }
    }
    println!("cargo:rustc-link-lib=dylib=kv");
}
