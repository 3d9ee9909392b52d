#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when it is missing:
# Xvfb (Debian), and the pinned third-party clients the interoperability tests use.
# The real-FreeSWITCH suite runs when a switch is installed (scripts/lib/freeswitch.sh says
# where it looks); the last line says whether it ran.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
. scripts/lib/freeswitch.sh
trap real_switch_summary EXIT
ensure_debian_packages
ensure_python_packages
ensure_node_packages
cargo build --bins --quiet
cargo test --all-targets "$@"
