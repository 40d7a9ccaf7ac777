# BlockOverlay — the commands a newcomer needs: `make run` and `make test`.
# Every target installs what it needs first (make deps is idempotent and quick when done).

SHELL := /bin/bash
CONFIG ?= Release
BIN := bin/blockoverlay
DOTNET_FLAGS := -c $(CONFIG) --nologo -v quiet -clp:ErrorsOnly
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1

.PHONY: all deps build test run bench clean

all: build

## deps: install the Debian packages the build, tests and benchmarks use
deps:
	@bash .ci/deps

## build: compile everything; the server lands in bin/blockoverlay
build: deps
	dotnet build BlockOverlay.sln $(DOTNET_FLAGS)
	dotnet publish src/BlockOverlay.Host $(DOTNET_FLAGS) --no-build -o bin

## test: every test suite; ends with one line "N passed, N failed, N skipped"
test: build
	@bash tests/run-all $(CONFIG)

## run: serve a demo disk on 127.0.0.1:10809 and var/blockoverlay.sock (Ctrl-C stops)
run: build
	@mkdir -p var
	$(BIN) serve --export demo=memory:1G --listen tcp:127.0.0.1:10809 --listen unix:var/blockoverlay.sock

## bench: the benchmarks of perf/ (results go to perf/RESULTS.md)
bench: build
	@bash perf/run-all

clean:
	rm -rf bin var perf/out
	dotnet clean BlockOverlay.sln $(DOTNET_FLAGS)
