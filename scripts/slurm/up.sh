#!/usr/bin/env bash
# Start a real, single-node SLURM cluster (with accounting) on this machine.
#
#   bash scripts/slurm/up.sh          # install if needed, start, wait until the node is idle
#   bash scripts/slurm/down.sh        # stop everything this script started
#
# What runs afterwards (all as root, no systemd needed):
#   munged     - authentication: every SLURM message is signed with the munge key
#   mariadbd   - database behind the accounting daemon (own datadir, 127.0.0.1 only)
#   slurmdbd   - accounting daemon; makes `sacct` work
#   slurmctld  - the controller (scheduler)
#   slurmd     - the compute daemon for the single node (this machine)
# with one partition `debug` (the default) holding this machine's CPUs and memory.
#
# Idempotent: every step checks whether its daemon already runs, so a second
# call on a running cluster only checks and returns in about a second.
#
# Environment:
#   TUNELAB_SLURM_DIR      state dir: configs, logs, pid files, spool, database
#                          (default /tmp/tunelab-slurm)
#   TUNELAB_SLURM_DB_PORT  TCP port of the private MariaDB (default 13306; not
#                          3306, so it never collides with a system MariaDB)
#   TUNELAB_SLURM_WAIT_S   how long to wait for the node to become idle (default 60)
set -euo pipefail

STATE_DIR="${TUNELAB_SLURM_DIR:-/tmp/tunelab-slurm}"
DB_PORT="${TUNELAB_SLURM_DB_PORT:-13306}"
WAIT_S="${TUNELAB_SLURM_WAIT_S:-60}"
CLUSTER=tunelab
PARTITION=debug

# The daemons live in /usr/sbin, which is not on every PATH (e.g. `sudo -E`, CI shells).
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH}"
# Every slurm command in this script reads *our* config, whatever /etc/slurm holds.
export SLURM_CONF="$STATE_DIR/slurm.conf"

LOG_DIR="$STATE_DIR/log"
RUN_DIR="$STATE_DIR/run"
DB_DIR="$STATE_DIR/mysql"
DB_SOCK="$RUN_DIR/mysqld.sock"
T0=$(date +%s)

say() { printf '[slurm-up] %s\n' "$*"; }
die() {
    printf '[slurm-up] ERROR: %s\n' "$*" >&2
    exit 1
}
# die_log MESSAGE LOGFILE: fail and show the end of the daemon's log, which is
# almost always where the real reason is.
die_log() {
    printf '[slurm-up] ERROR: %s\n' "$1" >&2
    if [ -f "$2" ]; then
        printf '[slurm-up] --- last lines of %s ---\n' "$2" >&2
        tail -n 20 "$2" >&2 || true
    fi
    exit 1
}

# alive PIDFILE NAME: true if the pid in PIDFILE runs a process called NAME.
# Checking the name (not just `kill -0`) guards against a stale pid file whose
# number the kernel has since handed to an unrelated process.
alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it
# succeeds. If WATCH_PID is set and that process dies meanwhile, give up at once
# instead of waiting out the limit for a daemon that already crashed.
WATCH_PID=""
wait_for() {
    local limit=$1 what=$2 i=0
    shift 2
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -ge $((limit * 2)) ] && return 1
        if [ -n "$WATCH_PID" ] && ! kill -0 "$WATCH_PID" 2>/dev/null; then
            say "  $what: process $WATCH_PID exited"
            return 1
        fi
        sleep 0.5
    done
    say "  waited ~$((i / 2)) s for: $what"
}

# port_busy PORT: true if something already listens on 127.0.0.1:PORT (bash's
# /dev/tcp needs no extra tools).
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# check_port PORT WHO: a daemon of ours is about to bind PORT; if another process
# holds it, the daemon would die with a bind error buried in its log. Say it here.
check_port() {
    if port_busy "$1"; then
        die "port $1 (for $2) is already in use by another process; is another SLURM/MariaDB running? ($3)"
    fi
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts system daemons)"

# ---------------------------------------------------------------------------
# 1. Packages (Debian bookworm ships SLURM 22.05).
# ---------------------------------------------------------------------------
PKGS="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing Debian packages:$missing"
    t=$(date +%s)
    # The packages' maintainer scripts would try to start munge, mariadb and
    # slurm through init scripts with the *system* configs. We start our own
    # copies below, so forbid that (exit 101 = "action not allowed") for the
    # duration of the install, unless the image already has such a policy.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    install_pkgs() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; }
    if ! install_pkgs >"/tmp/tunelab-slurm-apt.log" 2>&1; then
        # Most common cause on fresh images: empty or stale package lists.
        say "  install failed; running apt-get update and retrying"
        if ! { apt-get update -q && install_pkgs; } >>"/tmp/tunelab-slurm-apt.log" 2>&1; then
            if [ "$own_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
            die_log "apt-get install failed (need network access to a Debian mirror)" /tmp/tunelab-slurm-apt.log
        fi
    fi
    if [ "$own_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    say "  installed in $(($(date +%s) - t)) s (log: /tmp/tunelab-slurm-apt.log)"
else
    say "packages already installed"
fi

mkdir -p "$LOG_DIR" "$RUN_DIR" "$STATE_DIR/spool/ctld" "$STATE_DIR/spool/d"

# ---------------------------------------------------------------------------
# 2. munge: SLURM daemons and clients authenticate each other with it.
# ---------------------------------------------------------------------------
# The package normally creates the key; recreate it if an image stripped it.
if [ ! -s /etc/munge/munge.key ]; then
    say "creating munge key"
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
if alive /run/munge/munged.pid munged && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running"
else
    say "starting munged"
    # /run is a tmpfs: its socket dir vanishes on every boot and must belong to
    # the munge user, because munged refuses to run as root.
    install -d -o munge -g munge -m 0755 /run/munge
    # --force: start even if a stale socket from a killed munged is still there.
    runuser -u munge -- munged --force </dev/null >>"$LOG_DIR/munged.out" 2>&1 ||
        die_log "munged did not start" /var/log/munge/munged.log
    wait_for 10 "munge" sh -c 'munge -n | unmunge' ||
        die_log "munge -n | unmunge does not say Success" /var/log/munge/munged.log
    # Remember that this munged is ours, so down.sh stops it but never a munged
    # that something else on the machine started.
    cat /run/munge/munged.pid >"$RUN_DIR/munged.ours"
fi

# ---------------------------------------------------------------------------
# 3. MariaDB: storage for slurmdbd. A private instance (own datadir, socket and
#    port under the state dir) so it never touches a system database.
# ---------------------------------------------------------------------------
db() { mariadb --no-defaults --socket="$DB_SOCK" -u root "$@"; }
if alive "$RUN_DIR/mariadb.pid" mariadbd; then
    say "mariadbd already running"
else
    if [ ! -d "$DB_DIR/mysql" ]; then
        say "initialising MariaDB datadir $DB_DIR"
        install -d -o mysql -g mysql "$DB_DIR"
        # root@localhost authenticates by unix socket (we are root): no password to manage.
        mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
            --auth-root-authentication-method=socket >"$LOG_DIR/mariadb-install.log" 2>&1 ||
            die_log "mariadb-install-db failed" "$LOG_DIR/mariadb-install.log"
    fi
    check_port "$DB_PORT" mariadbd "choose another with TUNELAB_SLURM_DB_PORT"
    say "starting mariadbd on 127.0.0.1:$DB_PORT"
    # mariadbd runs as the mysql user: it must be able to write its socket, pid
    # file and error log.
    chown mysql:mysql "$RUN_DIR" "$DB_DIR"
    touch "$LOG_DIR/mariadb.log"
    chown mysql:mysql "$LOG_DIR/mariadb.log"
    # mariadbd does not daemonise itself: setsid + nohup detach it from this
    # shell (and from CI's process group), and no fd of ours stays open in it,
    # so a caller that pipes our output does not hang waiting for EOF.
    # --no-defaults: ignore /etc/mysql/*.cnf so the system config cannot interfere.
    # The two innodb values are what slurmdbd checks at startup: it logs an
    # error unless they reach half of its recommendation (1 GB pool, 900 s lock
    # wait). The 512M pool is only reserved; InnoDB touches the pages it uses
    # (a few MB for the accounting tables).
    setsid nohup mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" \
        --socket="$DB_SOCK" --pid-file="$RUN_DIR/mariadb.pid" \
        --bind-address=127.0.0.1 --port="$DB_PORT" \
        --log-error="$LOG_DIR/mariadb.log" \
        --innodb-buffer-pool-size=512M --innodb-lock-wait-timeout=900 \
        </dev/null >>"$LOG_DIR/mariadb.out" 2>&1 &
    WATCH_PID=$!
    wait_for 30 "mariadbd" mariadb-admin --no-defaults --socket="$DB_SOCK" -u root ping ||
        die_log "mariadbd did not start or answer within 30 s" "$LOG_DIR/mariadb.log"
    WATCH_PID=""
fi
# The slurm DB user; the password only guards a database bound to 127.0.0.1.
DB_PASS=tunelab-slurmdbd
db -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
       CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
    die "could not create the slurm database user"

# ---------------------------------------------------------------------------
# 4. Configuration, generated from this machine.
# ---------------------------------------------------------------------------
# slurmd finds "its" node by the short host name, so NodeName must be exactly that.
HOST=$(hostname -s)
CPUS=$(nproc)
# RealMemory in MB. Declaring more than slurmd measures makes the controller
# mark the node invalid/drained, so declare 95 % of MemTotal to stay safely below.
MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
[ -n "$HOST" ] && [ "$CPUS" -ge 1 ] && [ "$MEM_MB" -ge 256 ] ||
    die "could not read host name / CPU count / memory (got '$HOST' / '$CPUS' / '$MEM_MB')"

new_conf=$(
    cat <<EOF
# Generated by scripts/slurm/up.sh for host $HOST ($CPUS CPUs, $MEM_MB MB). Do not edit:
# the next up.sh regenerates it.
ClusterName=$CLUSTER
# Controller on this host; the address in brackets avoids any DNS lookup.
SlurmctldHost=$HOST(127.0.0.1)
# Everything runs as root: no slurm user, no permission games on the spool dirs.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE_DIR/spool/ctld
SlurmdSpoolDir=$STATE_DIR/spool/d
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No systemd and no cgroup hierarchy we may manage (containers/CI VMs): track job
# processes through /proc and do no CPU binding, so no cgroup.conf is needed.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# Allocate individual cores and memory, so several 1-CPU jobs of a sweep run
# side by side and mem_gb requests are checked against the node's memory.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs that ask for no memory get 1 GB per CPU instead of the whole node
# (which would serialise every job of a sweep).
DefMemPerCPU=1024
SchedulerType=sched/backfill
# Reject at submit time a job that can never run here (e.g. cpus_per_task larger
# than this machine), instead of leaving it PENDING forever and a test hanging.
EnforcePartLimits=ALL
# Accounting through slurmdbd. REQUIRED for submitit: it asks sacct for the state
# of finished jobs; without it a job killed before writing its result looks
# "still running" forever and the Hydra sweep hangs.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
# No per-job resource sampling (needs nothing and costs nothing); sacct still
# reports job states and exit codes, which is what submitit needs.
JobAcctGatherType=jobacct_gather/none
# Mail is not configured on test machines; Debian's default mailer path is absent.
MailProg=/bin/true
# A node that went DOWN (e.g. after down.sh or a crash) rejoins as soon as its
# slurmd registers with a valid config, instead of waiting for an admin.
ReturnToService=2
# Seconds between SIGTERM and SIGKILL when a job is cancelled or hits its time
# limit (default 30). submitit ignores SIGTERM, so this is how long a cancelled
# job lingers; short keeps failure tests quick.
KillWait=10
# Keep finished jobs visible in squeue/scontrol for 5 minutes (sacct keeps them forever).
MinJobAge=300
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)

new_dbd=$(
    cat <<EOF
# Generated by scripts/slurm/up.sh. slurmdbd refuses to start unless this file is
# mode 600 and owned by SlurmUser, because it holds the database password.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
# 127.0.0.1 (not "localhost") forces TCP to our private MariaDB instead of the
# client library's default socket path, which belongs to a system instance.
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)

conf_changed=0
if [ "$(cat "$STATE_DIR/slurm.conf" 2>/dev/null)" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" >"$STATE_DIR/slurm.conf"
    conf_changed=1
    say "wrote $STATE_DIR/slurm.conf (node $HOST: $CPUS CPUs, $MEM_MB MB; partition $PARTITION)"
fi
if [ "$(cat "$STATE_DIR/slurmdbd.conf" 2>/dev/null)" != "$new_dbd" ]; then
    printf '%s\n' "$new_dbd" >"$STATE_DIR/slurmdbd.conf"
    say "wrote $STATE_DIR/slurmdbd.conf"
fi
chmod 600 "$STATE_DIR/slurmdbd.conf"

# /etc/slurm/slurm.conf is linked to our config at the end (see step 7); refuse
# early, before starting anything, if it is a real file that someone else wrote.
if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    die "/etc/slurm/slurm.conf exists and is not ours; move it away or export SLURM_CONF=$STATE_DIR/slurm.conf yourself"
fi

# ---------------------------------------------------------------------------
# 5. slurmdbd, then slurmctld (which registers the cluster with slurmdbd), then slurmd.
# ---------------------------------------------------------------------------
if alive "$RUN_DIR/slurmdbd.pid" slurmdbd; then
    say "slurmdbd already running"
else
    check_port 6819 slurmdbd "stop it first"
    say "starting slurmdbd"
    # slurmdbd has no -f option: it reads slurmdbd.conf next to $SLURM_CONF.
    slurmdbd </dev/null >>"$LOG_DIR/slurmdbd.out" 2>&1 || die_log "slurmdbd did not start" "$LOG_DIR/slurmdbd.log"
    # sacctmgr answers only once slurmdbd has connected to MariaDB and created its tables.
    wait_for 30 "slurmdbd" sacctmgr -n list cluster ||
        die_log "slurmdbd does not answer within 30 s" "$LOG_DIR/slurmdbd.log"
fi

if [ "$conf_changed" -eq 1 ] && alive "$RUN_DIR/slurmctld.pid" slurmctld; then
    say "slurm.conf changed: restarting slurmctld and slurmd"
    scontrol shutdown >/dev/null 2>&1 || true
    wait_for 15 "old slurmctld and slurmd to exit" sh -c \
        "! pgrep -F '$RUN_DIR/slurmctld.pid' >/dev/null && ! pgrep -F '$RUN_DIR/slurmd.pid' >/dev/null" || true
fi

if alive "$RUN_DIR/slurmctld.pid" slurmctld; then
    say "slurmctld already running"
else
    check_port 6817 slurmctld "stop it first"
    say "starting slurmctld"
    # Daemon mode (no -D): it forks into the background and closes our stdio.
    slurmctld -f "$SLURM_CONF" </dev/null >>"$LOG_DIR/slurmctld.out" 2>&1 ||
        die_log "slurmctld did not start" "$LOG_DIR/slurmctld.log"
    wait_for 20 "slurmctld" scontrol ping ||
        die_log "slurmctld does not answer scontrol ping" "$LOG_DIR/slurmctld.log"
fi

if alive "$RUN_DIR/slurmd.pid" slurmd; then
    say "slurmd already running"
else
    check_port 6818 slurmd "stop it first"
    say "starting slurmd"
    slurmd -f "$SLURM_CONF" </dev/null >>"$LOG_DIR/slurmd.out" 2>&1 ||
        die_log "slurmd did not start" "$LOG_DIR/slurmd.log"
    # After a restart the controller restores the node as idle from its saved
    # state, before this slurmd has registered; wait until slurmd itself answers
    # so no job is sent to a node that is not listening yet.
    wait_for 20 "slurmd" scontrol show slurmd ||
        die_log "slurmd does not answer scontrol show slurmd" "$LOG_DIR/slurmd.log"
fi

# ---------------------------------------------------------------------------
# 6. Wait until the node accepts jobs.
# ---------------------------------------------------------------------------
node_ready() {
    # idle / mixed / allocated all mean "up"; a trailing * (not responding),
    # ~ (powered off) or a drain/down state do not.
    sinfo -h -n "$HOST" -p "$PARTITION" -o '%t' 2>/dev/null | grep -Eqx 'idle|mix|alloc'
}
if ! node_ready; then
    # A node left DOWN/DRAINED by an earlier unclean stop: ask for it back.
    if sinfo -h -n "$HOST" -o '%t' 2>/dev/null | grep -Eq 'down|drain|fail'; then
        say "node $HOST is $(sinfo -h -n "$HOST" -o '%t'), resuming it"
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
    fi
    wait_for "$WAIT_S" "node $HOST" node_ready || {
        sinfo -N -l >&2 || true
        scontrol show node "$HOST" 2>/dev/null | grep -E 'State|Reason' >&2 || true
        die_log "node $HOST not idle after $WAIT_S s" "$LOG_DIR/slurmd.log"
    }
fi

# Accounting must be wired up too: slurmctld registers the cluster in slurmdbd on
# its first connection. Without that entry sacct returns nothing for our jobs.
wait_for 20 "cluster '$CLUSTER' in accounting" sh -c \
    "sacctmgr -n -P list cluster format=cluster | grep -qx '$CLUSTER'" ||
    die_log "cluster '$CLUSTER' never appeared in sacctmgr (slurmctld <-> slurmdbd link broken)" "$LOG_DIR/slurmctld.log"

# ---------------------------------------------------------------------------
# 7. Client config. sbatch/squeue/sacct, as run by submitit from any shell, read
#    /etc/slurm/slurm.conf unless SLURM_CONF is set. Point it at our config so
#    users and CI need no extra environment. Done last, so a failed start never
#    redirects the clients of a cluster that was working.
# ---------------------------------------------------------------------------
mkdir -p /etc/slurm
if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" != "$STATE_DIR/slurm.conf" ]; then
    ln -sfn "$STATE_DIR/slurm.conf" /etc/slurm/slurm.conf
    say "linked /etc/slurm/slurm.conf -> $STATE_DIR/slurm.conf"
fi

say "SLURM is up in $(($(date +%s) - T0)) s: partition '$PARTITION' (default), node $HOST, $CPUS CPUs, $MEM_MB MB"
say "state, configs and logs: $STATE_DIR (stop with: bash scripts/slurm/down.sh)"
sinfo
