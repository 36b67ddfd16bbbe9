#!/usr/bin/env bash
# Stop the test cluster of up.sh: cancel its jobs, then stop slurmd, slurmctld and munged by the
# pids up.sh recorded (SIGTERM, SIGKILL after 10 s). Safe to run twice or after a failed up.sh.
# Exits 1 if a recorded process or a job step of the cluster outlives it.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${SINKPRUNE_SLURM_STATE:-$HERE/state}"
export SLURM_CONF="$STATE/slurm.conf"

[ -d "$STATE/pid" ] || { echo "down.sh: no test cluster state in $STATE"; exit 0; }

alive() { [ -f "$STATE/pid/$1" ] && kill -0 "$(cat "$STATE/pid/$1")" 2>/dev/null; }

# jobs first, while slurmctld and slurmd can still end their steps
if alive slurmctld; then
    jobs="$(squeue -h -o %i 2>/dev/null)"
    if [ -n "$jobs" ]; then
        echo "down.sh: cancelling jobs $(echo $jobs)"
        scancel $jobs 2>/dev/null
        for _ in $(seq 30); do
            [ -z "$(squeue -h -t RUNNING,COMPLETING,PENDING -o %i 2>/dev/null)" ] && break
            sleep 1
        done
    fi
fi
# job steps slurmd started (slurmstepd daemons), found by their pid files in our spool folder
steps() {
    local f
    for f in "$STATE"/spool/*_*; do
        [ -S "$f" ] || continue
        # socket name: <node>_<jobid>.<step>; its slurmstepd holds it open
        fuser "$f" 2>/dev/null
    done
}

status=0
for name in slurmd slurmctld munged; do
    [ -f "$STATE/pid/$name" ] || continue
    pid="$(cat "$STATE/pid/$name")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "down.sh: $name ($pid) ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid"
            sleep 0.5
        fi
    fi
    if kill -0 "$pid" 2>/dev/null; then
        echo "down.sh: $name ($pid) still running" >&2
        status=1
    else
        rm -f "$STATE/pid/$name"
    fi
done
left="$(steps | tr -s ' ')"
if [ -n "${left// /}" ]; then
    echo "down.sh: job steps still running: pids$left" >&2
    status=1
fi
ETC_CONF=/etc/slurm/slurm.conf
[ "$(readlink "$ETC_CONF" 2>/dev/null)" = "$STATE/slurm.conf" ] && rm -f "$ETC_CONF"
[ $status -eq 0 ] && echo "down.sh: test cluster stopped"
exit $status
