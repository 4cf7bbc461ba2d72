#!/bin/sh
# Migration shim: the original make-sequential.sh is now make-seq (seqguard). Same arguments,
# same environment names (MEMORY_LIMIT_MB, CHECK_INTERVAL, TIMEOUT, VERBOSE).
exec "${SEQGUARD_BIN:+$SEQGUARD_BIN/}make-seq" "$@"
