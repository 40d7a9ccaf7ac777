# BlockOverlay — the commands a newcomer needs: `make run`, `make test` and `make check`.
# Every target installs what it needs first (make deps is idempotent and quick when done).

SHELL := /bin/bash
CONFIG ?= Release
BIN := bin/blockoverlay
DOTNET_FLAGS := -c $(CONFIG) --nologo -v quiet -clp:ErrorsOnly
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1

.PHONY: all deps build test check torture soak run bench micro fuzz fuzz-coverage clean

all: build

## deps: install the Debian packages the build, tests and benchmarks use
deps:
	@bash .ci/deps

## build: compile everything; the server lands in bin/blockoverlay
# bin/blockoverlay is one native binary (Native AOT): its first publish compiles it in about
# two minutes on 2 cores, a publish with no change since in seconds. bin/ is made anew, so no
# file of an older build lies beside it.
build: deps
	dotnet build BlockOverlay.sln $(DOTNET_FLAGS)
	rm -rf bin
	dotnet publish src/BlockOverlay.Host $(DOTNET_FLAGS) --no-build -o bin

## test: every test suite; ends with one line "N passed, N failed, N skipped"
test: build
	@bash tests/run-all $(CONFIG)

## check: the fast suites only (no guests, no real clients), same last line
# It needs make deps too since the build compiles native/ (liburing, gcc); deps takes well
# under a second when everything is installed.
check: deps
	dotnet build BlockOverlay.sln $(DOTNET_FLAGS)
	@bash tests/run-all $(CONFIG) --check

## torture: simulated power cuts and kill -9 of the server, SEEDS seeds from SEED, DURATION s per half; not in make test
# Each iteration ends with store check; no new seed starts after DURATION. The tests of
# category Torture (tests/run-all leaves them out) read these settings from the environment;
# timeout is the backstop should a seed hang. SEED and DURATION are fuzz's too (its defaults
# below): torture's DURATION defaults to 300.
SEEDS ?= 4
TORTURE_DURATION = $(if $(filter command line environment,$(origin DURATION)),$(DURATION),300)
torture: build
	@report=$$(mktemp); status=0; \
	for project in tests/BlockOverlay.Engine.Tests tests/BlockOverlay.Clients.Tests; do \
		BLOCKOVERLAY_TEST_REPORT=$$report BLOCKOVERLAY_TORTURE_SEEDS=$(SEEDS) BLOCKOVERLAY_TORTURE_SEED=$(SEED) \
		BLOCKOVERLAY_TORTURE_SECONDS=$(TORTURE_DURATION) timeout -k 10 $$(($(TORTURE_DURATION) + 900)) \
		dotnet test $$project -c $(CONFIG) --no-build --nologo -v quiet --filter TestCategory=Torture \
			--logger "console;verbosity=minimal" || status=1; \
	done; \
	echo "== torture"; cat $$report; rm -f $$report; exit $$status

## soak: one server, 64 instances x 2 libnbd connections, random I/O checked against a model, flushes and instance churn, for DURATION s (default 1800); not in make test
# Passes with no client error, no wrong read, memory, threads and open files flat, a clean
# store check and every instance read back after a restart (tests/BlockOverlay.Clients.Tests/Soak/).
# SEED picks the workload; INSTANCES and CONNECTIONS change the shape.
SOAK_DURATION = $(if $(filter command line environment,$(origin DURATION)),$(DURATION),1800)
INSTANCES ?= 64
CONNECTIONS ?= 2
soak: build
	@report=$$(mktemp); trap 'rm -f "$$report"' EXIT; \
	BLOCKOVERLAY_TEST_REPORT=$$report BLOCKOVERLAY_SOAK_SECONDS=$(SOAK_DURATION) BLOCKOVERLAY_SOAK_SEED=$(SEED) \
		BLOCKOVERLAY_SOAK_INSTANCES=$(INSTANCES) BLOCKOVERLAY_SOAK_CONNECTIONS=$(CONNECTIONS) \
		timeout -k 10 $$(($(SOAK_DURATION) + 600)) \
		dotnet test tests/BlockOverlay.Clients.Tests -c $(CONFIG) --no-build --nologo -v quiet --filter TestCategory=Soak \
		--logger "console;verbosity=minimal"; \
	status=$$?; echo "== soak"; cat "$$report"; exit $$status

## run: serve the demo disks demo1 and demo2 (made in var/ once) on 127.0.0.1:10809 and var/blockoverlay.sock; Ctrl-C stops
# `serve` with no arguments makes and serves the demo in var/ under its working directory:
# RUN_DIR moves it (the test of this target uses a temporary one), and RUN_ARGS adds serve
# options, e.g. RUN_ARGS='--listen unix:var/blockoverlay.sock --listen tcp:127.0.0.1:10810'
# when 10809 is taken (a --listen replaces both default addresses).
RUN_DIR ?= .
run: build
	cd "$(RUN_DIR)" && exec "$(CURDIR)/$(BIN)" serve $(RUN_ARGS)

## bench: the benchmarks of perf/ (results go to perf/RESULTS.md)
bench: build
	@bash perf/run-all

## micro: BenchmarkDotNet micro-benchmarks of whole requests (perf/micro): bytes allocated and Gen0 collections per request; not in make test or make bench
# perf/micro is not in BlockOverlay.sln (make build does not compile it); this builds it alone.
# About a minute after the build. MICRO_ARGS adds BenchmarkDotNet options (e.g. --filter '*Read*');
# perf/micro/compare.sh REV runs them over two commits side by side.
MICRO_ARGS ?=
micro: deps
	dotnet build perf/micro $(DOTNET_FLAGS)
	TMPDIR=/var/tmp dotnet perf/micro/bin/$(CONFIG)/net10.0/BlockOverlay.Micro.dll --filter '*' --inProcess --job short --artifacts perf/out/micro $(MICRO_ARGS)

## fuzz: the NBD protocol fuzzer, long: cases SEED, SEED+1, ... for DURATION seconds, then it stops; prints its counts
# The same test runs bounded (a few seconds, seeds from 1) in make test. A failure names the
# seed of its case: `make fuzz SEED=n DURATION=1` replays that case first.
SEED ?= 1
DURATION ?= 600
fuzz:
	dotnet build tests/BlockOverlay.Nbd.Tests $(DOTNET_FLAGS)
	@report=$$(mktemp); trap 'rm -f "$$report"' EXIT; \
	BLOCKOVERLAY_FUZZ_SEED=$(SEED) BLOCKOVERLAY_FUZZ_DURATION=$(DURATION) BLOCKOVERLAY_TEST_REPORT="$$report" \
		dotnet test tests/BlockOverlay.Nbd.Tests -c $(CONFIG) --no-build --nologo -v quiet \
		--filter 'FullyQualifiedName~BlockOverlay.Nbd.Tests.Fuzz.' --logger 'console;verbosity=minimal'; \
	status=$$?; cat "$$report"; exit $$status

## fuzz-coverage: coverage-guided fuzzing (afl-fuzz + SharpFuzz) of the parsers, TARGET=NAME|all, DURATION s each; not in make test
# The targets are the folders of tests/BlockOverlay.Fuzz.Tests/Corpus/ (NBD handshake and
# requests, the store's format decoders). It prints inputs run, paths, crashes and hangs per
# target, and the command that replays each finding. make test replays the committed corpus.
TARGET ?= all
COVERAGE_DURATION = $(if $(filter command line environment,$(origin DURATION)),$(DURATION),180)
fuzz-coverage: deps
	dotnet build tests/BlockOverlay.Fuzz.Tests $(DOTNET_FLAGS)
	@bash tests/BlockOverlay.Fuzz.Tests/run-afl $(CONFIG) "$(TARGET)" $(COVERAGE_DURATION)

clean:
	rm -rf bin var perf/out
	$(MAKE) -C native clean
	dotnet clean BlockOverlay.sln $(DOTNET_FLAGS)
