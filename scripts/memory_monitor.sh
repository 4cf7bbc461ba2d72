#!/bin/sh
# Migration shim: the original memory_monitor.sh watched the process tree of a command the
# sequential executor ran. The monitor is part of seqexec now: this runs the command under it
# (and under the project's lock). MEMORY_LIMIT_MB and CHECK_INTERVAL keep their meaning.
case $# in
    0)
        echo "memory_monitor.sh: no command given; usage: memory_monitor.sh COMMAND [ARG...]" >&2
        exit 125 ;;
esac
case $1 in
    *[!0-9]*) ;;
    *)
        echo "memory_monitor.sh: watching a running pid ($1) is not supported; the monitor is built into seqexec: run the command as 'seqexec -- COMMAND'" >&2
        exit 125 ;;
esac
# The original names are read under the shims only (SEQEXEC_LEGACY_NAMES=1).
SEQEXEC_LEGACY_NAMES=1 exec "${SEQGUARD_BIN:+$SEQGUARD_BIN/}seqexec" -- "$@"
