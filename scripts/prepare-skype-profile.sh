#!/usr/bin/env bash
# Prepares one Skype for Linux (4.x) profile directory per skypopen interface, so that real
# clients start headless under `[clients] kind = "skype"`:
#
#   <profiles>/<interface>/shared.xml            client-wide settings
#   <profiles>/<interface>/<account>/config.xml  the account's settings: the Desktop API
#                                                pre-authorization for "skypopen" (no dialog
#                                                on a display nobody looks at), automatic
#                                                updates off, video off, chat history off
#
# and each account's password as <credentials>/<account> (mode 0600), never in a script or on
# a command line. The sidecar passes --dbpath=<profiles>/<interface> and pipes the password.
#
# Interactive, like the original installer (without downloading anything). Every question can
# be answered in advance through the environment, and --yes takes the defaults:
#   PROFILES=/var/lib/skypopen/profiles CREDENTIALS=/etc/skypopen/accounts COUNT=5 FIRST=101
#   MODE=one|multi ACCOUNT=name (one) / ACCOUNT_1..ACCOUNT_n (multi) OWNER=skypopen
#   PASSWORD / PASSWORD_<k>: the password(s); unset means "ask", empty means "skip".
set -euo pipefail

assume_yes=false
for arg in "$@"; do
    case "$arg" in
        -y|--yes) assume_yes=true ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

# ask VAR "question" default: keeps $VAR when set, else asks (or takes the default with --yes).
ask() {
    local var="$1" question="$2" default="$3" answer
    if [ -n "${!var+x}" ]; then return; fi
    if $assume_yes || [ ! -t 0 ]; then
        printf -v "$var" '%s' "$default"
        return
    fi
    read -r -p "$question [$default]: " answer
    printf -v "$var" '%s' "${answer:-$default}"
}

# ask_secret VAR "question": keeps $VAR when set (even empty), else asks without echo.
ask_secret() {
    local var="$1" question="$2" answer=""
    if [ -n "${!var+x}" ]; then return; fi
    if $assume_yes || [ ! -t 0 ]; then
        printf -v "$var" '%s' ""
        return
    fi
    read -r -s -p "$question (empty: set it later): " answer
    echo
    printf -v "$var" '%s' "$answer"
}

ask PROFILES "Directory for the client profiles" /var/lib/skypopen/profiles
ask CREDENTIALS "Directory for the account passwords" /etc/skypopen/accounts
ask COUNT "How many clients (interfaces)" 5
ask FIRST "Display number of the first client" 101
ask MODE "One account for every client, or one per client (one/multi)" one
ask OWNER "User the sidecar runs as" skypopen

case "$COUNT" in ''|*[!0-9]*) echo "COUNT must be a number" >&2; exit 2 ;; esac
case "$FIRST" in ''|*[!0-9]*) echo "FIRST must be a number" >&2; exit 2 ;; esac
case "$MODE" in one|multi) ;; *) echo "MODE must be one or multi" >&2; exit 2 ;; esac
if [ "$COUNT" -lt 1 ] || [ "$COUNT" -gt 63 ]; then
    echo "COUNT must be 1..63 (interface ids)" >&2
    exit 2
fi

valid_account() {
    # Skype names: letters, digits, and . , - _ ; no path separators.
    [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9.,_-]{0,63}$ ]]
}

owner_exists=false
if id -u "$OWNER" >/dev/null 2>&1; then owner_exists=true; fi

install_dir() { # mode path
    mkdir -p "$2"
    chmod "$1" "$2"
    if $owner_exists && [ "$(id -u)" -eq 0 ]; then chown "$OWNER:" "$2"; fi
}

install_file() { # mode path (content on stdin)
    local tmp
    tmp="$(mktemp "$2.XXXXXX")"
    cat >"$tmp"
    chmod "$1" "$tmp"
    if $owner_exists && [ "$(id -u)" -eq 0 ]; then chown "$OWNER:" "$tmp"; fi
    mv -f "$tmp" "$2"
}

shared_xml() {
    cat <<'XML'
<?xml version="1.0"?>
<config version="1.0" serial="1" timestamp="0">
  <UI>
    <Installed>2</Installed>
    <Language>en</Language>
  </UI>
</config>
XML
}

account_config_xml() {
    cat <<'XML'
<?xml version="1.0"?>
<config version="1.0" serial="1" timestamp="0">
  <Lib>
    <Chat>
      <!-- No chat history on disk: skypopen hands every message to FreeSWITCH. -->
      <DisableHistory>1</DisableHistory>
    </Chat>
    <Video>
      <!-- No camera on a server; never start video. -->
      <Disable>1</Disable>
    </Video>
  </Lib>
  <UI>
    <API>
      <!-- Pre-authorizes the Desktop API client named "skypopen": no dialog, no ERROR 68. -->
      <Authorizations>skypopen</Authorizations>
      <BlockedPrograms></BlockedPrograms>
    </API>
    <General>
      <!-- Updates are the operator's decision, not the client's. -->
      <AutoUpdate>0</AutoUpdate>
    </General>
  </UI>
</config>
XML
}

install_dir 0700 "$PROFILES"
install_dir 0700 "$CREDENTIALS"

if [ "$MODE" = one ]; then
    ask ACCOUNT "Skype account (used by every client)" ""
    if ! valid_account "$ACCOUNT"; then echo "invalid Skype account name: '$ACCOUNT'" >&2; exit 2; fi
fi

toml_interfaces=""
declare -A passwords_done=()
for k in $(seq 1 "$COUNT"); do
    n=$((FIRST + k - 1))
    iface="skype$n"
    if [ "$MODE" = multi ]; then
        var="ACCOUNT_$k"
        ask "$var" "Skype account of client $k ($iface, display :$n)" ""
        account="${!var}"
        if ! valid_account "$account"; then echo "invalid Skype account name: '$account'" >&2; exit 2; fi
    else
        account="$ACCOUNT"
    fi

    profile="$PROFILES/$iface"
    install_dir 0700 "$profile"
    install_dir 0700 "$profile/$account"
    shared_xml | install_file 0600 "$profile/shared.xml"
    # An existing account config is kept (it may hold more than this template), except that
    # its API authorization is added when missing.
    if [ -f "$profile/$account/config.xml" ]; then
        if ! grep -q '<Authorizations>[^<]*skypopen' "$profile/$account/config.xml"; then
            echo "warning: $profile/$account/config.xml exists without the skypopen authorization;" \
                 "add <Authorizations>skypopen</Authorizations> under <UI><API>" >&2
        fi
    else
        account_config_xml | install_file 0600 "$profile/$account/config.xml"
    fi

    if [ -z "${passwords_done[$account]+x}" ]; then
        if [ "$MODE" = multi ]; then pvar="PASSWORD_$k"; else pvar="PASSWORD"; fi
        ask_secret "$pvar" "Password of Skype account $account"
        if [ -n "${!pvar}" ]; then
            printf '%s\n' "${!pvar}" | install_file 0600 "$CREDENTIALS/$account"
        elif [ ! -f "$CREDENTIALS/$account" ]; then
            echo "note: no password yet for $account: put it in $CREDENTIALS/$account (mode 0600)" >&2
        fi
        passwords_done[$account]=1
    fi

    toml_interfaces+=$'\n[[interface]]\n'
    toml_interfaces+="id = $k"$'\n'"name = \"$iface\""$'\n'"x11_display = \":$n\""$'\n'"skype_user = \"$account\""$'\n'
    echo "prepared $profile (account $account, display :$n)"
done

cat <<TOML

# For conf/skypopen.toml (or /etc/skypopen/skypopen.toml):
[clients]
kind = "skype"
manage = true
command = ["/opt/skype/skype", "--dbpath={dbpath}", "--pipelogin"]
dbpath_root = "$PROFILES"
credentials_dir = "$CREDENTIALS"
$toml_interfaces
TOML
