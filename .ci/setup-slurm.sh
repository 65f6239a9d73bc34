#!/usr/bin/env bash
# A one-node Slurm cluster on loopback, for the sweep integration test (tests/test_sweep_slurm.py).
#
# Runs as root on a fresh Debian machine (CI) and again on a development machine where it may already have run:
# every step checks before it acts, so running it twice is harmless. Installs Debian's slurm-wlm and munge, writes a
# key and a slurm.conf for this host only, starts munged, slurmctld and slurmd, and waits until a job runs.
set -euo pipefail

SLURM_CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)
PARTITION=debug

log() { echo "setup-slurm: $*"; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    # The packages try to start their services before there is a configuration; a policy-rc.d that says "no"
    # (as container images have) stops that, and this script starts the daemons itself below.
    local policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge
}

start_munge() {
    # munged refuses to run without a private key owned by its user, and with folders owned by anyone else.
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.5
    done
    log "munged does not answer (munge -n | unmunge fails)" >&2
    exit 1
}

write_config() {
    local memory_mb
    # Slurm drains a node that reports less memory than configured: stay 10 % under what the machine has.
    memory_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    cat >"$SLURM_CONF.new" <<EOF
# Written by .ci/setup-slurm.sh: one node, this host, loopback only.
ClusterName=merbench
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# A restarted slurmd comes back as usable instead of DOWN ("unexpectedly rebooted").
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    if [ -f "$SLURM_CONF" ] && cmp -s "$SLURM_CONF.new" "$SLURM_CONF"; then
        rm "$SLURM_CONF.new"
        return 1   # unchanged
    fi
    mv "$SLURM_CONF.new" "$SLURM_CONF"
    return 0
}

is_running() {  # is_running PIDFILE
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_daemon() {  # stop_daemon PIDFILE
    if is_running "$1"; then
        kill "$(cat "$1")"
        for _ in $(seq 20); do is_running "$1" || return 0; sleep 0.5; done
    fi
}

start_slurm() {
    local changed=$1
    if [ "$changed" = yes ]; then
        # A daemon started with an older slurm.conf would keep it: restart both.
        stop_daemon /run/slurmd.pid
        stop_daemon /run/slurmctld.pid
    fi
    if ! is_running /run/slurmctld.pid; then
        log "starting slurmctld"
        slurmctld
    fi
    if ! is_running /run/slurmd.pid; then
        log "starting slurmd"
        slurmd
    fi
}

wait_for_node() {
    local state
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n1 || true)
        case "$state" in
            idle*|mixed*|allocated*|completing*) return 0 ;;
            down*|drain*|drained*|draining*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    log "node $HOST did not become usable (state '${state:-none}'); see /var/log/slurm/" >&2
    exit 1
}

install_packages
start_munge
if write_config; then start_slurm yes; else start_slurm no; fi
wait_for_node
log "check: $(srun -N1 -t 1 hostname)"
sinfo
