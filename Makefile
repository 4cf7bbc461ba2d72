# seqguard: build, test, install.
#
# This Makefile goes through its own make-seq once it is built (`make build`): a plain
# `make test` then waits its turn like any other make of the checkout. Before that, or with
# SEQ_MK=off, make runs as usual.
MAKE_SEQ ?= $(CURDIR)/.build/release/make-seq
SEQEXEC ?= $(CURDIR)/.build/release/seqexec
SEQ_MK_MISSING ?= ignore
# A build and the test suite together peak well above make-seq's default 2 GiB.
export MAKE_SEQ_MEMORY_LIMIT_MB ?= 8192
include scripts/seq.mk

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man/man1
MAN7DIR ?= $(PREFIX)/share/man/man7
DATADIR ?= $(PREFIX)/share/seqguard
BASHDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHDIR ?= $(PREFIX)/share/zsh/site-functions
FISHDIR ?= $(PREFIX)/share/fish/vendor_completions.d
SWIFT ?= swift
# A fully static executable: no dynamic loader work at start-up (0.6 ms instead of 1.4 ms
# for an empty Swift program here), and the Swift runtime linked in.
# Generic types by accessor, not by mangled name: a name costs a demangle and a scan of every
# type record of the static binary, once per type per process (about a tenth of start-up).
RELEASE_FLAGS = -c release -Xswiftc -static-executable \
	-Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors
# Where the binaries to install are; given on the command line, nothing is built.
BIN = $(shell $(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)

# What `make install` writes, and all that `make uninstall` removes.
INSTALLED = $(BINDIR)/seqexec $(BINDIR)/make-seq $(BINDIR)/seqpipe \
	$(MANDIR)/seqexec.1 $(MANDIR)/make-seq.1 $(MANDIR)/seqpipe.1 $(MAN7DIR)/seqguard.7 \
	$(DATADIR)/seq.mk \
	$(BASHDIR)/seqexec $(BASHDIR)/make-seq $(BASHDIR)/seqpipe \
	$(ZSHDIR)/_seqexec $(ZSHDIR)/_make-seq $(ZSHDIR)/_seqpipe \
	$(FISHDIR)/seqexec.fish $(FISHDIR)/make-seq.fish $(FISHDIR)/seqpipe.fish

.PHONY: all build test bench completions dashboard-picture install uninstall clean

all: build

build:
	$(SWIFT) build $(RELEASE_FLAGS)

# With a PostgreSQL server installed, scripts/with-postgres starts a throwaway one for the
# store's PostgreSQL tests (they skip with a note where there is none).
test:
	scripts/with-postgres $(SWIFT) test

# The completion scripts, written again from the tools' declarations (a test fails while a
# checked-in copy differs from what the tools print).
completions:
	$(SWIFT) build --product seqexec && $(SWIFT) build --product make-seq && $(SWIFT) build --product seqpipe
	bin=$$($(SWIFT) build --show-bin-path); for shell in bash zsh fish; do \
		case $$shell in bash) name='%s.bash' ;; zsh) name='_%s' ;; fish) name='%s.fish' ;; esac; \
		for tool in seqexec make-seq; do $$bin/$$tool --completion $$shell > scripts/completions/$$(printf "$$name" $$tool); done; \
		$$bin/seqpipe completion $$shell > scripts/completions/$$(printf "$$name" seqpipe); \
	done

# The README's picture of the dashboard (man/dashboard.png), taken again from the current page
# by the browser test (it needs chromium).
dashboard-picture:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter theOperatorActsFromThePageInAHeadlessBrowser
	cp .build/dashboard.png man/dashboard.png

bench: build
	scripts/bench-guard
	scripts/bench-memory
	scripts/bench-make
	scripts/bench-pipeline
	scripts/bench-agents

install: $(if $(filter command line,$(origin BIN)),,build)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(MAN7DIR) $(DESTDIR)$(DATADIR) \
		$(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) $(DESTDIR)$(FISHDIR)
	install -m 755 $(BIN)/seqexec $(BIN)/make-seq $(BIN)/seqpipe $(DESTDIR)$(BINDIR)/
	install -m 644 man/seqexec.1 man/make-seq.1 man/seqpipe.1 $(DESTDIR)$(MANDIR)/
	install -m 644 man/seqguard.7 $(DESTDIR)$(MAN7DIR)/
	install -m 644 scripts/seq.mk $(DESTDIR)$(DATADIR)/seq.mk
	install -m 644 scripts/completions/seqexec.bash $(DESTDIR)$(BASHDIR)/seqexec
	install -m 644 scripts/completions/make-seq.bash $(DESTDIR)$(BASHDIR)/make-seq
	install -m 644 scripts/completions/seqpipe.bash $(DESTDIR)$(BASHDIR)/seqpipe
	install -m 644 scripts/completions/_seqexec scripts/completions/_make-seq scripts/completions/_seqpipe $(DESTDIR)$(ZSHDIR)/
	install -m 644 scripts/completions/seqexec.fish scripts/completions/make-seq.fish scripts/completions/seqpipe.fish $(DESTDIR)$(FISHDIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(DATADIR) 2>/dev/null || true

clean:
	rm -rf .build
