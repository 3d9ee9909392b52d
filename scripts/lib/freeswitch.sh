# Which real FreeSWITCH the real-switch suite (tests/real_switch_*.rs) runs against, by the rule
# of tests/support/real_fs.rs: SKYPOPEN_FREESWITCH names a prefix, else /usr/local/freeswitch
# (a source build's default); the prefix needs bin/freeswitch and the suite's modules.
REAL_FS_MODULES=(mod_event_socket mod_loopback mod_audio_fork mod_sofia mod_tone_stream mod_sndfile
    mod_commands mod_dptools mod_dialplan_xml)

# Prints one line: "real FreeSWITCH suite: ran against PREFIX" or "... not run (why)".
real_switch_summary() {
    local prefix="${SKYPOPEN_FREESWITCH:-/usr/local/freeswitch}" m missing=()
    if [ ! -x "$prefix/bin/freeswitch" ]; then
        echo "real FreeSWITCH suite: not run (no bin/freeswitch under $prefix; install FreeSWITCH 1.10.12 there or set SKYPOPEN_FREESWITCH to its prefix)"
        return
    fi
    for m in "${REAL_FS_MODULES[@]}"; do
        [ -f "$prefix/lib/freeswitch/mod/$m.so" ] || missing+=("$m")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "real FreeSWITCH suite: not run ($prefix lacks ${missing[*]})"
    else
        echo "real FreeSWITCH suite: part of this run, against $prefix ($("$prefix/bin/freeswitch" -version 2>/dev/null | head -1))"
    fi
}
