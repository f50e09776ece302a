//! Build facts for `jans_exporter_build_info` and `--version`: the compiler's version and
//! the commit built. A build outside a git checkout (a source tarball, a Docker build
//! context without `.git`) says `unknown`, or what `JANSX_BUILD_REVISION` says. Not
//! under `JANS_EXPORTER_`: cargo passes these to the tests' processes too, and the
//! configuration reads every variable with that prefix.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let revision = std::env::var("JANSX_BUILD_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=JANSX_BUILD_RUSTC={rustc_version}");
    println!("cargo:rustc-env=JANSX_BUILD_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=JANSX_BUILD_REVISION");
    // A new commit changes HEAD's target; these two files cover a checkout and a commit.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=build.rs");
}
