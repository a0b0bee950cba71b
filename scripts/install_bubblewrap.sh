#!/usr/bin/env bash
# Install bubblewrap (Debian package `bubblewrap`, the `bwrap` command): the sandbox that
# predictor workers run in (benchmark/sandbox.py, docs/sandbox.md). No-op when present.
# Usage: scripts/install_bubblewrap.sh        (root, or a user with passwordless sudo)
# Without it, `gapbench evaluate` stops with "bubblewrap is not installed"; --no-sandbox runs
# predictors unsandboxed (development only; the board marks such runs).
set -euo pipefail

check() {
    # bubblewrap must also be able to create its namespaces here (user namespaces allowed)
    local err
    err=$(mktemp)
    # the options benchmark/sandbox.py uses (--disable-userns and --size need bubblewrap >= 0.8)
    if bwrap --unshare-all --unshare-user --disable-userns --uid 65534 --gid 65534 --cap-drop ALL \
            --ro-bind /usr /usr --ro-bind-try /lib /lib --ro-bind-try /lib64 /lib64 --proc /proc --dev /dev \
            --size 1048576 --tmpfs /tmp -- /usr/bin/true 2>"$err"; then
        rm -f "$err"
        echo "install_bubblewrap: $(command -v bwrap) ($(bwrap --version)) can sandbox processes here."
        return 0
    fi
    echo "install_bubblewrap: bwrap is installed but cannot create a sandbox here:" \
         "$(tail -n 1 "$err"). It needs bubblewrap >= 0.8 and user namespaces (sysctl" \
         "kernel.unprivileged_userns_clone=1, or an AppArmor profile for bwrap), or root." >&2
    rm -f "$err"
    return 1
}

if command -v bwrap >/dev/null 2>&1; then
    check
    exit $?
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_bubblewrap: no apt-get on this machine; install bubblewrap with your package manager" \
         "(dnf/yum/pacman/apk: bubblewrap; brew has none: use --no-sandbox on macOS)." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install_bubblewrap: need root or sudo to run apt-get." >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q bubblewrap
check
