#!/usr/bin/env bash
# A single-node SLURM on this machine, for the cluster test (make test-cluster) and for trying
# profiles/slurm by hand:
#   bash .test/slurm/up.sh && source .test/slurm/state/env.sh && sinfo
#   bash .test/slurm/down.sh
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when missing (needs root: the
# daemons run as root), writes its own munge key and slurm.conf into a state folder, starts munged,
# slurmctld and slurmd in the foreground of background shells, records their pids, and waits until
# `sinfo` shows the node idle. down.sh stops exactly these pids.
# /etc/slurm/slurm.conf becomes a link to the state folder's slurm.conf (down.sh removes it): the
# jobs' nested `srun` (snakemake-executor-plugin-slurm-jobstep) drops SLURM_CONF from its
# environment, so only the default path works. An existing /etc/slurm/slurm.conf is left alone
# and up.sh refuses to start.
#
# The node has this machine's CPUs and memory and sits in two partitions, `cpu` (default) and
# `gpu` (no GPU: it only checks that GPU-stage rules are routed there). No accounting database:
# `sacct` knows no jobs, so Snakemake must query job states with `squeue` (MinJobAge=3600 keeps
# finished jobs visible to it, and to the checks of tests/test_cluster.py, for an hour).
#
# Environment: SINKPRUNE_SLURM_STATE (state folder, default .test/slurm/state),
# SINKPRUNE_SLURM_PORT (slurmctld port, default 6817; slurmd uses the next one).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${SINKPRUNE_SLURM_STATE:-$HERE/state}"
PORT="${SINKPRUNE_SLURM_PORT:-6817}"
PACKAGES=(slurmctld slurmd slurm-client munge)

die() {
    echo "up.sh: $*" >&2
    exit 1
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "needs root to install ${missing[*]} (apt-get) and to run the daemons"
    command -v apt-get >/dev/null || die "${missing[*]} missing and no apt-get: install SLURM 22.05+ and munge yourself"
    echo "up.sh: installing ${missing[*]}"
    # keep the packages' init scripts from starting daemons we would not know the pids of
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends)
    "${apt[@]}" "${missing[@]}" >"$STATE/apt.log" 2>&1 ||
        { apt-get update -qq >>"$STATE/apt.log" 2>&1 && "${apt[@]}" "${missing[@]}" >>"$STATE/apt.log" 2>&1; } ||
        { [ $own_policy -eq 1 ] && rm -f "$policy"; die "apt-get install failed, see $STATE/apt.log"; }
    [ $own_policy -eq 1 ] && rm -f "$policy"
    return 0
}

port_free() {
    ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

start() { # name, command...: run in the background in its own session, record its pid
    local name=$1
    shift
    setsid "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/pid/$name"
}

[ "$(id -u)" -eq 0 ] || die "needs root: munged, slurmctld and slurmd run as root here"
if [ -d "$STATE/pid" ] && ls "$STATE/pid"/* >/dev/null 2>&1; then
    die "$STATE/pid holds pids of a running test cluster: run .test/slurm/down.sh first"
fi
rm -rf "$STATE"
mkdir -p -m 700 "$STATE"
mkdir -p -m 700 "$STATE"/{munge,ctld,spool,log,pid}
install_packages
port_free "$PORT" && port_free $((PORT + 1)) ||
    die "port $PORT or $((PORT + 1)) is in use (another SLURM?); set SINKPRUNE_SLURM_PORT"

ETC_CONF=/etc/slurm/slurm.conf
CONF="$STATE/slurm.conf"
if [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
    [ "$(readlink "$ETC_CONF")" = "$CONF" ] ||
        die "$ETC_CONF exists and is not this test cluster's: not touching a real SLURM"
fi
NODE="$(hostname -s)"
# the node line as slurmd measures it: CPUs, sockets, cores, threads, RealMemory
NODE_HW="$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*//")"
cat >"$CONF" <<EOF
# Written by .test/slurm/up.sh: one node, no accounting, no cgroups.
ClusterName=sinkprune-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/ctld/slurmctld.pid
SlurmdPidFile=$STATE/spool/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=3600
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1$NODE_HW State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF

cat >"$STATE/env.sh" <<EOF
# source me: the client commands (sinfo, sbatch, squeue) and Snakemake then talk to the test cluster
export SLURM_CONF=$CONF
export SINKPRUNE_SLURM_ACCOUNT=""
export SINKPRUNE_CPU_PARTITION=cpu
export SINKPRUNE_GPU_PARTITION=gpu
export SINKPRUNE_GPU_MODEL=""
EOF
mkdir -p "$(dirname "$ETC_CONF")"
ln -sfn "$CONF" "$ETC_CONF"
export SLURM_CONF="$CONF"

# munge: a fresh key for this cluster only
dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1 count=1024 status=none
chmod 600 "$STATE/munge/munge.key"
start munged munged --foreground --force --key-file="$STATE/munge/munge.key" \
    --socket="$STATE/munge/munge.socket" --pid-file="$STATE/munge/munged.pid" \
    --seed-file="$STATE/munge/munged.seed" --log-file="$STATE/log/munged.log"
for _ in $(seq 50); do [ -S "$STATE/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$STATE/munge/munge.socket" ] || die "munged did not start: $STATE/log/munged.log"

start slurmctld slurmctld -D -f "$CONF"
start slurmd slurmd -D -f "$CONF" -N "$NODE"

for i in $(seq 60); do
    state="$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -1 || true)"
    [ "$state" = idle ] && break
    for name in munged slurmctld slurmd; do
        kill -0 "$(cat "$STATE/pid/$name")" 2>/dev/null ||
            die "$name exited: $STATE/log/$name.out, $STATE/log/$name.log"
    done
    sleep 0.5
done
[ "$state" = idle ] || die "node $NODE not idle after 30 s (state '$state'): $STATE/log/"
echo "up.sh: SLURM $(sinfo -V | cut -d' ' -f2) up, node $NODE idle in partitions cpu, gpu ($((i / 2)) s)"
echo "up.sh: source $STATE/env.sh to use it"
