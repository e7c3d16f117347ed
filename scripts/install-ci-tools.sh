#!/bin/sh
# Tools the CI-template tests drive, in a project-local, gitignored directory (.ci-tools/).
# gitlab-ci-local runs the GitLab template with the shell executor (no Docker needed).
# 4.73.0 is pinned: 4.74+ call Set.prototype.union at start-up and crash on Node 20.
# Idempotent: does nothing when everything is already there.
set -eu
cd "$(dirname "$0")/.."
GCL_VERSION=4.73.0
DEST=.ci-tools
BIN="$DEST/node_modules/.bin/gitlab-ci-local"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install-ci-tools: node and npm are required (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
# Debian packages: rsync (gitlab-ci-local copies the work tree with it) and shellcheck
# (actionlint runs it on workflow scripts; the tests run it on the GitLab job scripts).
missing=""
for tool in rsync shellcheck; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-ci-tools: missing:$missing (apt-get install$missing); not root, not installing" >&2
        exit 1
    fi
    echo "install-ci-tools: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    }
fi
if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "$GCL_VERSION" ]; then
    exit 0
fi
mkdir -p "$DEST"
# A package.json of our own keeps npm from walking up to a parent project's.
[ -f "$DEST/package.json" ] || echo '{"name": "sslm-ci-tools", "private": true}' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --no-save --loglevel=error \
    "gitlab-ci-local@$GCL_VERSION"
installed="$("$BIN" --version)"
if [ "$installed" != "$GCL_VERSION" ]; then
    echo "install-ci-tools: expected gitlab-ci-local $GCL_VERSION, got $installed" >&2
    exit 1
fi
echo "gitlab-ci-local $installed in $DEST"
