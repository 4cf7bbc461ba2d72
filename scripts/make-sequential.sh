#!/bin/sh
# Migration shim: the original make-sequential.sh is now make-seq (seqguard). Same arguments,
# same environment names (MEMORY_LIMIT_MB, CHECK_INTERVAL, TIMEOUT, VERBOSE).
# The original names are read under the shims only (SEQEXEC_LEGACY_NAMES=1).
SEQEXEC_LEGACY_NAMES=1 exec "${SEQGUARD_BIN:+$SEQGUARD_BIN/}make-seq" "$@"
