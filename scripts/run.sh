#!/usr/bin/env bash
# Runs the sidecar on its default configuration (conf/skypopen.toml): the embedded emulated
# Skype network, two emulated clients on Xvfb, FreeSWITCH expected at 127.0.0.1:8021.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_debian_packages
cargo build --release --bins --quiet
exec target/release/skypopen run "$@"
