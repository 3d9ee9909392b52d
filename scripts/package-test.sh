#!/usr/bin/env bash
# Builds the Debian package with cargo-deb, installs it on this machine, runs the service from
# it (as its own user, with its packaged configuration: emulated network and clients), checks
# `sk list` and /health, then purges it and checks nothing is left. Needs root; not part of
# scripts/test.sh (it changes the machine). Installs cargo-deb when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/target_dir.sh
. scripts/lib/deps.sh
ensure_debian_packages
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
step() { printf '\n== %s\n' "$*"; }

step "build"
deb=$(cargo deb --strip | tail -n 1)
ls -l "$deb"
step "contents: two stripped service binaries, the conffile, the unit, the examples"
dpkg-deb --contents "$deb" | awk '{print $1, $3, $6}'
binaries=$(dpkg-deb --contents "$deb" | awk '$6 ~ /^\.\/usr\/bin\// && $6 !~ /\/$/' | wc -l)
[ "$binaries" -eq 2 ] || { echo "expected 2 binaries in /usr/bin, found $binaries"; exit 1; }
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'

step "install"
dpkg -i "$deb"
getent passwd skypopen
stat -c '%U:%G %a %n' /etc/skypopen /etc/skypopen/skypopen.toml /etc/skypopen/skypopen.env /var/lib/skypopen
file /usr/bin/skypopen /usr/bin/skype-sim | sed 's/, BuildID[^,]*//'
file /usr/bin/skypopen | grep -q ', stripped' || { echo "skypopen is not stripped"; exit 1; }
unit=$(dpkg -L skypopen | grep 'skypopen.service$')
systemd-analyze verify "$unit"
echo "systemd-analyze verify $unit: OK"

step "run the service from the package, as its user"
runuser -u skypopen -- /usr/bin/skypopen --config /etc/skypopen/skypopen.toml check
(cd /var/lib/skypopen && exec runuser -u skypopen -- /usr/bin/skypopen \
    --config /etc/skypopen/skypopen.toml run) >/tmp/skypopen-package-run.log 2>&1 &
runner=$!
ok=""
for _ in $(seq 1 100); do
    if out=$(/usr/bin/skypopen --config /etc/skypopen/skypopen.toml sk list 2>/dev/null) &&
        [ "$(awk -F'\t' '$2 ~ /^\[interface/ && $5 == "IDLE"' <<<"$out" | wc -l)" -ge 2 ]; then
        ok=1
        break
    fi
    sleep 0.2
done
echo "$out"
curl -s -o /dev/null -w 'GET /metrics: %{http_code}\n' http://127.0.0.1:9464/metrics || true
curl -s -w ' (%{http_code})\n' http://127.0.0.1:9464/health || true
pkill -TERM -f '/usr/bin/skypopen --config /etc/skypopen/skypopen.toml run' || true
wait "$runner" || true
tail -n 3 /tmp/skypopen-package-run.log
[ -n "$ok" ] || { echo "the packaged service never showed two IDLE interfaces"; cat /tmp/skypopen-package-run.log; exit 1; }

step "purge"
dpkg --purge skypopen
left=""
for path in /usr/bin/skypopen /usr/bin/skype-sim /etc/skypopen /var/lib/skypopen /usr/share/skypopen; do
    [ -e "$path" ] && left="$left $path"
done
getent passwd skypopen >/dev/null && left="$left user:skypopen"
[ -z "$left" ] || { echo "left behind:$left"; exit 1; }
echo "purged: nothing left"
