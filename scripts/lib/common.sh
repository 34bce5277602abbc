# common.sh -- helpers shared by the bash scripts (setup, test, run, nginx/run; sourced, not run).
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

# The local stack's one definition (free ports, the private redis-server's command line) is
# scripts/lib/localstack.py, which the Python tools import; these functions call it.
CG_LOCALSTACK="$CG_ROOT/scripts/lib/localstack.py"

# cg_port_free PORT -- succeeds when nothing can stop us binding 127.0.0.1:PORT. SO_REUSEADDR as
# chartgate, nginx and redis-server set it: connections of a process that just stopped, left in
# TIME-WAIT, do not count (a listener still does).
cg_port_free() {
    "$CG_PYTHON" "$CG_LOCALSTACK" port-free "$1"
}

# cg_pick_port PREFERRED -- prints PREFERRED if free, else a free port chosen by the kernel.
cg_pick_port() {
    "$CG_PYTHON" "$CG_LOCALSTACK" pick-port "$1"
}

# cg_redis_start PORT DIR LOG -- starts a private redis-server on 127.0.0.1:PORT (persistence
# off, working directory DIR, its log and any output appended to LOG) in its own session (setsid:
# a terminal's Ctrl-C reaches only the calling script, which stops it by PID after the gateways),
# as a child of the calling shell, then waits up to 10 s for its PONG. Sets CG_REDIS_PID, also
# when it fails (the caller's cleanup stops it). Returns 0 once it answers, 1 when it exited (its
# status is left for the caller's wait), 2 when it did not answer in time. Call it directly, not
# in $(...): the server must be this shell's child.
cg_redis_start() {
    local port=$1 dir=$2 log=$3 argv i
    mapfile -d '' -t argv < <("$CG_PYTHON" "$CG_LOCALSTACK" redis-argv "$port" "$dir" "$log")
    ((${#argv[@]})) || cg_die "$CG_LOCALSTACK redis-argv printed nothing"
    setsid "${argv[@]}" </dev/null >>"$log" 2>&1 &
    CG_REDIS_PID=$!
    for ((i = 0; i < 100; i++)); do
        [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] && return 0
        kill -0 "$CG_REDIS_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 2
}
