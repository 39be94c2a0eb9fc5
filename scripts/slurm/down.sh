#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by scripts/slurm/up.sh.
#
# Best effort and idempotent: anything already stopped is skipped, and the
# script exits 0 either way. Only processes recorded in up.sh's pid files are
# signalled (never "kill everything called slurmd"), so nothing else on the
# machine is touched. The state dir (configs, logs, job history, accounting DB)
# is kept, so the next up.sh resumes with the same job ids and sacct history;
# delete $TUNELAB_SLURM_DIR by hand for a completely fresh cluster.
set -euo pipefail

STATE_DIR="${TUNELAB_SLURM_DIR:-/tmp/tunelab-slurm}"
RUN_DIR="$STATE_DIR/run"
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH}"
export SLURM_CONF="$STATE_DIR/slurm.conf"

say() { printf '[slurm-down] %s\n' "$*"; }

# pid_of PIDFILE NAME: print the pid if PIDFILE names a live process called NAME.
pid_of() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
    echo "$pid"
}

# stop NAME PIDFILE: SIGTERM, wait up to 15 s, then SIGKILL.
stop() {
    local name=$1 pidfile=$2 pid
    if ! pid=$(pid_of "$pidfile" "$name"); then
        say "$name not running"
        return 0
    fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
        [ -d "/proc/$pid" ] || return 0
        sleep 0.5
    done
    say "  $name still alive after 15 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# Jobs still running are killed with their slurmd/slurmstepd; slurmctld saves
# them in its state and marks them failed/requeued on the next start.
# `scontrol shutdown` is the clean way: slurmctld writes its state and tells
# every slurmd to exit. The pid-file based stop below is the fallback when the
# controller is already gone or does not answer.
if pid_of "$RUN_DIR/slurmctld.pid" slurmctld >/dev/null; then
    running=$(timeout 5 squeue -h -t RUNNING,PENDING 2>/dev/null | wc -l || true)
    if [ "${running:-0}" -gt 0 ]; then
        say "note: $running job(s) still queued or running; they will be lost"
    fi
    say "scontrol shutdown (slurmctld + slurmd)"
    timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do
        pid_of "$RUN_DIR/slurmctld.pid" slurmctld >/dev/null ||
            pid_of "$RUN_DIR/slurmd.pid" slurmd >/dev/null || break
        sleep 0.5
    done
fi
# Order matters little for stopping, but reverse start order keeps the logs
# free of "lost connection" noise: compute, controller, accounting, DB, auth.
stop slurmd "$RUN_DIR/slurmd.pid"
stop slurmctld "$RUN_DIR/slurmctld.pid"
stop slurmdbd "$RUN_DIR/slurmdbd.pid"
# mariadbd flushes InnoDB and exits cleanly on SIGTERM.
stop mariadbd "$RUN_DIR/mariadb.pid"
# munged may serve other software too: stop it only if up.sh started this instance.
if pid=$(pid_of /run/munge/munged.pid munged) && [ "$pid" = "$(cat "$RUN_DIR/munged.ours" 2>/dev/null)" ]; then
    stop munged /run/munge/munged.pid
else
    say "munged not running or not started by up.sh, left alone"
fi
rm -f "$RUN_DIR/munged.ours"

say "done (state kept in $STATE_DIR)"
exit 0
