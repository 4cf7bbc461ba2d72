# fish completion for make-seq (seqguard): make's targets and options, and make-seq's own.
complete -c make-seq --wraps make
complete -c make-seq -n '__fish_is_first_arg' -l status -d 'Show both locks of the project and who waits'
complete -c make-seq -n '__fish_is_first_arg' -l kill-all -d 'End every guarded make, command and waiter'
complete -c make-seq -n '__fish_is_first_arg' -l history -d 'Show the last guarded runs of the project'
complete -c make-seq -n '__fish_is_first_arg' -l help -d 'Show the help'
complete -c make-seq -n '__fish_is_first_arg' -l version -d 'Show the version'
complete -c make-seq -n '__fish_seen_argument -l status' -l json -d 'With --status: one JSON object'
