# common.sh -- helpers shared by scripts/setup, scripts/test and scripts/run (sourced, not run).
# shellcheck shell=bash

# The repository root, whatever the caller's cwd.
CG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CG_ROOT

# Debian's interpreter and python3-* packages, never a pyenv/venv python3 found earlier on PATH.
# /usr/bin goes first so that meson's find_program('python3') and the tests' shebangs agree.
CG_PYTHON=/usr/bin/python3
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:${PATH}"

CG_SCRIPT=$(basename "$0")

cg_log() {
    printf '%s: %s\n' "$CG_SCRIPT" "$*" >&2
}

cg_die() {
    cg_log "error: $*"
    exit 1
}

# cg_meson_configure DIR [MESON_ARGS...] -- configure DIR, or reconfigure it with the same
# options when it already holds a meson build. A leftover directory that is not a meson build
# (for example an interrupted first setup) is removed first. Warnings are errors in every build
# the project's own scripts make (meson.build leaves them off for packagers). Returns meson's
# status.
cg_meson_configure() {
    local dir=$1
    shift
    set -- -Dwerror=true "$@"
    if [[ -f "$CG_ROOT/$dir/meson-private/coredata.dat" ]]; then
        meson setup --reconfigure "$CG_ROOT/$dir" "$CG_ROOT" "$@"
    else
        rm -rf -- "${CG_ROOT:?}/$dir"
        meson setup "$CG_ROOT/$dir" "$CG_ROOT" "$@"
    fi
}

# cg_port_free PORT -- succeeds when nothing can stop us binding 127.0.0.1:PORT. SO_REUSEADDR as
# chartgate, nginx and redis-server set it: connections of a process that just stopped, left in
# TIME-WAIT, do not count (a listener still does).
cg_port_free() {
    "$CG_PYTHON" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

# cg_pick_port PREFERRED -- prints PREFERRED if free, else a free port chosen by the kernel.
cg_pick_port() {
    if cg_port_free "$1"; then
        printf '%s\n' "$1"
        return
    fi
    "$CG_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
