# Shared by scripts/run.sh and scripts/test.sh: install what is missing, nothing else.

# Debian packages: Xvfb for the emulated clients' X displays, npm, SIPp.
ensure_debian_packages() {
    local missing=()
    command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
    command -v xdpyinfo >/dev/null 2>&1 || missing+=(x11-utils)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    # SIPp: the SIP phone that subscribes to a Skype contact's presence on the real switch.
    command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

# Third-party clients for interoperability tests, pinned.
PYTHON_PINS=("greenswitch==0.0.19" "python-xlib==0.33")
ensure_python_packages() {
    if ! python3 -c 'import greenswitch, Xlib' >/dev/null 2>&1; then
        echo "installing Python packages: ${PYTHON_PINS[*]}" >&2
        python3 -m pip install --quiet --disable-pip-version-check "${PYTHON_PINS[@]}"
    fi
}

# Node ESL client for the listener's interoperability test, pinned, into the gitignored
# node_modules/ at the top of the checkout (the caller's working directory).
NODE_PINS=("modesl@1.2.1")
ensure_node_packages() {
    if ! node -e "require('modesl')" >/dev/null 2>&1; then
        echo "installing Node packages: ${NODE_PINS[*]}" >&2
        npm install --no-save --no-package-lock --no-audit --no-fund --silent "${NODE_PINS[@]}"
    fi
}
