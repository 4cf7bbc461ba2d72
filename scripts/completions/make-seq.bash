# bash completion for make-seq (seqguard)

# The targets of the Makefile make would read, found as bash-completion's make does: make's
# database for the goal .DEFAULT, which runs no recipe. Never through make-seq: completing
# must not wait for the project's lock.
_make_seq_targets() {
    "${MAKE_SEQ_MAKE:-make}" -npq "$@" .DEFAULT 2>/dev/null | awk -F: '
        /^# Not a target/ { skip = 1; next }
        /^[^#\t.%=][^#\t%=$]*:([^=]|$)/ {
            if (!skip) { n = split($1, names, " "); for (k = 1; k <= n; k++) print names[k] }
        }
        { skip = 0 }' | sort -u
}

_make_seq() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    if [ "$COMP_CWORD" -eq 1 ] && [[ $cur == --* ]]; then
        COMPREPLY=($(compgen -W "--status --kill-all --history --json --lines --help --version --" -- "$cur"))
        return
    fi
    case "$prev" in
        --status) COMPREPLY=($(compgen -W "--json" -- "$cur")); return ;;
        -C | --directory | -I | --include-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        -f | --file | --makefile | -o | --old-file | -W | --what-if) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    # Pass make's -C and -f on, so the targets are those of the Makefile make will read.
    local args=() i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -C | -f | --directory | --file | --makefile) args+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}") ;;
        esac
    done
    COMPREPLY=($(compgen -W "$(_make_seq_targets "${args[@]}")" -- "$cur"))
}
complete -F _make_seq make-seq
