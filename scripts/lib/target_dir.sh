# cargo_target_dir: where cargo puts its builds for this checkout, as cargo itself resolves it
# (CARGO_TARGET_DIR, `build.target-dir` in a .cargo/config.toml, else ./target).
cargo_target_dir() {
    cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
