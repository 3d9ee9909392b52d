#!/usr/bin/env bash
# Runs the sidecar on its default configuration (conf/skypopen.toml): the embedded emulated
# Skype network, two emulated clients on Xvfb, FreeSWITCH expected at 127.0.0.1:8021.
# The build honours CARGO_TARGET_DIR and `build.target-dir`, and shows its progress.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
. scripts/lib/target_dir.sh
ensure_debian_packages
cargo build --release --bins
exec "$(cargo_target_dir)/release/skypopen" run "$@"
