#!/bin/sh
# Install the Debian packages that the real-part tests use, when we are root.
# Non-root: print what is missing; the test suite decides (CI=true fails on a missing tool).
set -eu
PKGS="git openssl openssh-client pebble bind9 bind9-utils bind9-dnsutils unbound ldnsutils hash-slinger chromium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "not root: cannot install Debian packages:$missing" >&2
fi
