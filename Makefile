# toolgate — thin wrapper over meson/ninja. The real build lives in meson.build.
#   make          build build/toolgate, the demo server and the test binaries
#   make run      install what is missing, build, start toolgate on 127.0.0.1:8080 in
#                 front of the demo Atlassian server (examples/toolgate.yaml)
#   make test     install what the tests need, build (normal + ASan/UBSan), run every test
#   make asan     sanitizer build only, in build-asan/
#   make bench    benchmarks (bench/run)
BUILD ?= build
ASAN_BUILD ?= build-asan
CONFIG ?= examples/toolgate.yaml

.PHONY: all deps run test asan bench clean
all: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) >/dev/null
	ninja -C $(BUILD)

deps:
	@scripts/deps.sh build

asan: deps
	@[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) -Dbuildtype=debug \
	    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
	ninja -C $(ASAN_BUILD)

run:
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory all
	@scripts/run-demo.sh $(BUILD) $(CONFIG)

test:
	@scripts/test.sh

bench:
	@bench/run

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
