#!/bin/sh
# Migration shim: the original sequential-executor.sh is now seqexec (seqguard). Same
# arguments (the command to run), same environment names (MEMORY_LIMIT_MB, CHECK_INTERVAL,
# TIMEOUT, VERBOSE).
if [ $# -eq 0 ]; then
    echo "sequential-executor.sh: no command given; usage: sequential-executor.sh COMMAND [ARG...]" >&2
    exit 125
fi
# The original names are read under the shims only (SEQEXEC_LEGACY_NAMES=1).
SEQEXEC_LEGACY_NAMES=1 exec "${SEQGUARD_BIN:+$SEQGUARD_BIN/}seqexec" -- "$@"
