# fish completion for seqexec (seqguard)

# The position (in the tokens before the cursor) where the command starts, if one has been
# typed: the first word that is not an option of seqexec or an option's value.
function __seqexec_command_start
    set -l words (commandline -opc)
    set -l with_value -p --project --state-dir -t --timeout --kill-grace -w --wait-timeout --slots --priority -m --memory-limit -i --check-interval --memory-metric --memory-action --min-available --git-wait -n --lines
    set -l i 2
    while test $i -le (count $words)
        set -l word $words[$i]
        if test "$word" = --
            set i (math $i + 1)
            break
        else if contains -- $word $with_value
            set i (math $i + 2)
        else if string match -q -- '-*' $word
            set i (math $i + 1)
        else
            break
        end
    end
    test $i -le (count $words); and echo $i
end

function __seqexec_no_command
    not __seqexec_command_start >/dev/null
end

# Inside the command: complete it as that command would be.
function __seqexec_complete_command
    set -l start (__seqexec_command_start)
    set -l words (commandline -opc)
    complete -C (string join ' ' -- (string escape -- $words[$start..-1]) (commandline -ct))
end

set -l c complete -c seqexec -n __seqexec_no_command
$c -s p -l project -x -a '(__fish_complete_directories)' -d 'Project root'
$c -l state-dir -x -a '(__fish_complete_directories)' -d 'Base of the lock state'
$c -s t -l timeout -x -d 'End the tree after S seconds, exit 124'
$c -l kill-grace -x -d 'Seconds from SIGTERM to SIGKILL'
$c -s w -l wait-timeout -x -d 'Give up waiting after S seconds, exit 75'
$c -l slots -x -d 'Commands of the project that may run at once'
$c -l priority -x -a 'high normal low' -d 'Queue priority'
$c -s v -l verbose -d 'Log each step to stderr'
$c -s q -l quiet -d 'Print nothing but errors'
$c -l machine -d 'Take the machine-wide lock'
$c -s m -l memory-limit -x -d 'End the tree past MB MiB, exit 137'
$c -s i -l check-interval -x -d 'Longest gap between memory samples'
$c -l memory-metric -x -a 'rss pss' -d 'What to add up'
$c -l memory-action -x -a 'tree largest' -d 'What to end at the limit'
$c -l min-available -x -d 'Stay queued while MemAvailable is below MB'
$c -l git-wait -x -d 'Wait up to S seconds for other git operations'
$c -l git-guard -d 'Git safety for a command that is not git'
$c -l no-git-wait -d 'No git safety'
$c -l clean-stale-git-locks -d 'Remove git locks no live git process holds'
$c -l status -d 'Show the holder and the queue'
$c -l history -d 'Show the last runs'
$c -s n -l lines -x -d 'With --history: how many runs'
$c -l json -d 'With --status or --history: print JSON'
$c -l kill-all -d 'End every guarded run and waiter of the project'
$c -l submit -d 'Queue the command as a run that outlives this call'
$c -l wait -x -a '(seqexec --runs 2>/dev/null | awk \'NR > 1 { print $1 }\')' -d 'Follow a submitted run, exit with its status'
$c -l tail -d 'With --wait: only the output from now on'
$c -l runs -d 'List the submitted runs'
$c -l cancel -x -a '(seqexec --runs 2>/dev/null | awk \'NR > 1 { print $1 }\')' -d 'End a submitted run'
$c -s h -l help -d 'Show the help'
$c -l version -d 'Show the version'
$c -x -a '(__fish_complete_command)'
complete -c seqexec -n 'not __seqexec_no_command' -x -a '(__seqexec_complete_command)'
