# bash completion for seqexec (seqguard)

_seqexec() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local options="-p --project --state-dir -t --timeout --kill-grace -w --wait-timeout --slots
        --priority -v --verbose -q --quiet --machine -m --memory-limit -i --check-interval
        --memory-metric --memory-action --min-available --git-wait --git-guard --no-git-wait
        --clean-stale-git-locks --status --history -n --lines --json --kill-all --submit --wait --tail
        --runs --cancel -h --help --version"
    local with_value=" -p --project --state-dir -t --timeout --kill-grace -w --wait-timeout --slots --priority -m --memory-limit -i --check-interval --memory-metric --memory-action --min-available --git-wait -n --lines --wait --cancel "
    # Where the command starts: the first word that is not an option or an option's value.
    local i=1
    while [ "$i" -lt "$COMP_CWORD" ]; do
        local word=${COMP_WORDS[i]}
        if [ "$word" = "--" ]; then i=$((i + 1)); break; fi
        case "$with_value" in *" $word "*) i=$((i + 2)); continue ;; esac
        case "$word" in -*) i=$((i + 1)) ;; *) break ;; esac
    done
    if [ "$i" -lt "$COMP_CWORD" ]; then
        # Inside the command: complete it as that command would be.
        if declare -F _command_offset >/dev/null; then
            _command_offset "$i"
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return
    fi
    case "$prev" in
        --memory-metric) COMPREPLY=($(compgen -W "rss pss" -- "$cur")); return ;;
        --memory-action) COMPREPLY=($(compgen -W "tree largest" -- "$cur")); return ;;
        --priority) COMPREPLY=($(compgen -W "high normal low" -- "$cur")); return ;;
        -p | --project | --state-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --wait | --cancel)
            # The submitted runs' ids, from seqexec itself.
            COMPREPLY=($(compgen -W "$(seqexec --runs 2>/dev/null | awk 'NR > 1 { print $1 }')" -- "$cur")); return ;;
        -t | --timeout | --kill-grace | -w | --wait-timeout | --slots | -m | --memory-limit | -i | \
            --check-interval | --min-available | --git-wait | -n | --lines) return ;;
    esac
    case "$cur" in
        -*) COMPREPLY=($(compgen -W "$options" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -c -- "$cur" | sort -u)) ;;
    esac
}
complete -F _seqexec seqexec
