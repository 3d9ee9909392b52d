//! `scripts/run.sh` finds the binaries where cargo put them, also when the target directory
//! is moved with `CARGO_TARGET_DIR` or `build.target-dir`.

use std::path::Path;
use std::process::Command;

fn target_dir(dir: &Path, env: &[(&str, &str)]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(
            ". {root}/scripts/lib/target_dir.sh && cargo_target_dir"
        ))
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_target_directory_is_cargo_s_own_answer() {
    let checkout = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        checkout.path().join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::create_dir(checkout.path().join("src")).unwrap();
    std::fs::write(checkout.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let plain = target_dir(checkout.path(), &[]);
    assert_eq!(Path::new(&plain), checkout.path().join("target"));

    let moved = tempfile::tempdir().expect("temp dir");
    let by_env = target_dir(
        checkout.path(),
        &[("CARGO_TARGET_DIR", moved.path().to_str().unwrap())],
    );
    assert_eq!(Path::new(&by_env), moved.path());

    std::fs::create_dir(checkout.path().join(".cargo")).unwrap();
    std::fs::write(
        checkout.path().join(".cargo/config.toml"),
        format!("[build]\ntarget-dir = {:?}\n", moved.path().join("cfg")),
    )
    .unwrap();
    let by_config = target_dir(checkout.path(), &[]);
    assert_eq!(Path::new(&by_config), moved.path().join("cfg"));
}
