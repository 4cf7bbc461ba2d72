# seq.mk: route every plain `make` of a project through make-seq (seqguard).
#
# Put this line at the top of the project's Makefile, before any rule:
#
#     include path/to/seq.mk
#
# From then on `make TARGET...` typed in a shell waits its turn for the project, like
# `make-seq TARGET...`: one make of the project at a time, under seqexec's memory limit,
# timeout and process-tree cleanup. Inside make-seq the targets run as usual. Needs GNU make
# 4.3 or newer.
#
# How: a make that make-seq did not start (its MAKELEVEL is not the MAKE_SEQ_LEVEL make-seq
# sets) runs one recipe, `make-seq` with the same goals, flags and variables (they travel in
# MAKEFLAGS), and turns every other recipe into a no-op, so nothing of the Makefile runs
# outside the guard. A nested `$(MAKE)` goes through make-seq as well; make-seq sees that
# its parent holds the project and runs it straight through.
#
# Settings (before the include, on the command line, or in the environment):
#   MAKE_SEQ           the make-seq program (default: make-seq on PATH)
#   SEQEXEC            the seqexec program, for `make kill-all` (default: seqexec)
#   SEQ_MK_MISSING     what to do when MAKE_SEQ is not found: warn (default; run make
#                      unguarded with a warning), ignore (the same, silently), or error
#   SEQ_MK=off         run this make unguarded
# `make -n`, `-q` and `-t` run unguarded: they run no recipe of the Makefile.
# Limits: a target-specific SHELL in the Makefile beats the outer make's no-op shell, so that
# target's recipe would run outside the guard; a mandatory `include` of a makefile that a
# rule generates cannot be generated in the outer make (use `-include`).

MAKE_SEQ ?= make-seq
SEQEXEC ?= seqexec
SEQ_MK_MISSING ?= warn

# The Makefile that included this one, for the make that make-seq runs.
SEQ_MK_MAKEFILE := $(firstword $(filter-out $(MAKEFILES) $(lastword $(MAKEFILE_LIST)),$(MAKEFILE_LIST)))

# The emergency stop runs at once, never queued behind the make it is meant to stop.
.PHONY: kill-all
kill-all:
	$(SEQEXEC) --kill-all
# kill-all is not the default goal: the Makefile's first target still is.
.DEFAULT_GOAL :=

SEQ_MK_ROUTE := yes
ifeq ($(MAKE_SEQ_LEVEL),$(MAKELEVEL))
SEQ_MK_ROUTE := no
endif
ifeq ($(SEQ_MK),off)
SEQ_MK_ROUTE := no
endif
ifneq ($(filter kill-all,$(MAKECMDGOALS)),)
SEQ_MK_ROUTE := no
endif
# The single-letter flags are the first word of MAKEFLAGS: n, q, t run no recipe.
ifneq ($(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS)))$(findstring t,$(firstword -$(MAKEFLAGS))),)
SEQ_MK_ROUTE := no
endif
ifeq ($(SEQ_MK_ROUTE),yes)
SEQ_MK_FOUND := $(if $(findstring /,$(MAKE_SEQ)),$(wildcard $(MAKE_SEQ)),$(shell command -v $(MAKE_SEQ) 2>/dev/null))
ifeq ($(SEQ_MK_FOUND),)
SEQ_MK_ROUTE := no
ifeq ($(SEQ_MK_MISSING),error)
$(error seq.mk: $(MAKE_SEQ) not found; install seqguard ('make install' in its checkout) or set MAKE_SEQ to its path)
endif
ifeq ($(SEQ_MK_MISSING),warn)
$(warning seq.mk: $(MAKE_SEQ) not found, running make unguarded; install seqguard or set MAKE_SEQ, or SEQ_MK_MISSING=ignore)
endif
endif
endif

ifeq ($(SEQ_MK_ROUTE),yes)
# Every recipe of this make is a no-op, in silence; the one recipe that runs is make-seq's.
%: SHELL := /bin/true
.SILENT:
# Whatever goal make picks (the ones given, the default, a .DEFAULT_GOAL set later), it
# depends on the hand-over. `override`: an .EXTRA_PREREQS of the Makefile must not drop it.
override .EXTRA_PREREQS := seq-mk-hand-over
.PHONY: seq-mk-hand-over
seq-mk-hand-over: SHELL := /bin/sh
seq-mk-hand-over: override .EXTRA_PREREQS :=
seq-mk-hand-over:
	+MAKE_SEQ_FROM_SEQ_MK=1 $(MAKE_SEQ) -f $(SEQ_MK_MAKEFILE) $(MAKECMDGOALS)
.DEFAULT_GOAL :=
endif
