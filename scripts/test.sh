#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when it is missing:
# Xvfb (Debian), and the pinned third-party clients the interoperability tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_debian_packages
ensure_python_packages
ensure_node_packages
cargo build --bins --quiet
cargo test --all-targets "$@"
