//! Builds workspace packages from inside a test, the way a user would (`cargo build -p`),
//! and returns the files cargo produced: the plugin libraries that dynamic-loading tests
//! load by path, and the `shiftscope` binary that end-to-end tests run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (where the top-level `Cargo.toml` is).
///
/// Found from the running test's `CARGO_MANIFEST_DIR` (cargo sets it when it runs a test),
/// not from the path compiled into this library: two checkouts that share a target
/// directory can share this library's build, and a compiled-in path would point the other
/// checkout's tests at the first one's sources.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|toml| toml.lines().any(|line| line.trim() == "[workspace]"))
        })
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// What one `cargo build` produced, by target name (`example_shift`, `shiftscope`).
#[derive(Debug, Default)]
pub struct Artifacts {
    /// Dynamic libraries (`cdylib` targets).
    pub libraries: HashMap<String, PathBuf>,
    /// Executables (`bin` targets).
    pub binaries: HashMap<String, PathBuf>,
}

/// Runs `cargo build -p <package>...` on the workspace (same profile and target directory
/// as the calling test) and collects the artifacts.
///
/// Build plugin libraries and the binary in separate calls: the binary enables each
/// first-party plugin's `builtin` feature, and cargo unifies features across one build.
pub fn build(packages: &[&str]) -> Result<Artifacts, String> {
    build_profile(packages, false)
}

/// [`build`] with `--release`, for benchmarks.
pub fn build_release(packages: &[&str]) -> Result<Artifacts, String> {
    build_profile(packages, true)
}

/// Builds the binaries of `packages` for end-to-end tests.
///
/// Under `tools/test.sh`, which runs `cargo test --workspace` and sets
/// `SHIFTSCOPE_TEST_WORKSPACE=1`, it builds with the same package and target selection as
/// that run (`cargo build --workspace --bins --tests`). Cargo unifies features over what one
/// build selects, and dev-dependencies add features (tempfile turns on rustix's `default`),
/// so a plain `cargo build -p shiftscope-cli` would compile winit, Bevy and everything
/// between them a second time; this way the binary links what the test run compiled.
/// Elsewhere (`cargo test -p …`) it builds just the packages.
pub fn build_binaries(packages: &[&str]) -> Result<Artifacts, String> {
    if std::env::var_os("SHIFTSCOPE_TEST_WORKSPACE").is_some_and(|v| v == "1") {
        run_build(&["--workspace", "--bins", "--tests"], &[], false)
    } else {
        build(packages)
    }
}

fn build_profile(packages: &[&str], release: bool) -> Result<Artifacts, String> {
    run_build(&[], packages, release)
}

fn run_build(args: &[&str], packages: &[&str], release: bool) -> Result<Artifacts, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.arg("build").args(args);
    if release {
        command.arg("--release");
    }
    command
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"));
    for package in packages {
        command.arg("-p").arg(package);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build {args:?} {packages:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut artifacts = Artifacts::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let name = message["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .replace('-', "_");
        let kinds = message["target"]["kind"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let is = |k: &str| kinds.iter().any(|v| v == k);
        // `--tests` also builds each binary as a test harness; those are not the program.
        let test_harness = message["profile"]["test"].as_bool().unwrap_or(false);
        if is("bin")
            && !test_harness
            && let Some(exe) = message["executable"].as_str()
        {
            artifacts.binaries.insert(name.clone(), PathBuf::from(exe));
        }
        if is("cdylib") {
            let files = message["filenames"].as_array().cloned().unwrap_or_default();
            if let Some(lib) = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(std::env::consts::DLL_SUFFIX))
            {
                artifacts.libraries.insert(name, PathBuf::from(lib));
            }
        }
    }
    Ok(artifacts)
}

/// Builds the plugin `packages` as dynamic libraries and copies them into `dest`, so that
/// later builds (which overwrite cargo's output files) cannot change what a test loads.
/// Returns the copies by target name.
pub fn build_plugin_libraries(
    packages: &[&str],
    dest: &Path,
) -> Result<HashMap<String, PathBuf>, String> {
    let artifacts = build(packages)?;
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut copies = HashMap::new();
    for package in packages {
        let name = package.replace('-', "_");
        let built = artifacts
            .libraries
            .get(&name)
            .ok_or_else(|| format!("cargo built no dynamic library for {package}"))?;
        let file = built
            .file_name()
            .ok_or_else(|| format!("{}: no file name", built.display()))?;
        let copy = dest.join(file);
        std::fs::copy(built, &copy).map_err(|e| format!("{}: {e}", copy.display()))?;
        copies.insert(name, copy);
    }
    Ok(copies)
}
