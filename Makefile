# Atrium: the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CONFIG     ?= config/config.json
BUILD_DIR  := .build/debug
C_PLUGINS  := .build/c-plugins
VENV       := .venv
PYTHON     ?= python3

# Debian packages: what building and running needs, and what the tests need on top.
DEBS_RUN   := pkg-config libssl-dev libsrtp2-dev libjansson-dev
DEBS_TEST  := $(DEBS_RUN) iproute2 python3-venv chromium chromium-driver janus janus-demos libjs-janus-gateway coturn openssl ffmpeg mkvtoolnix opus-tools nginx systemd firefox-esr

# Networked tests run in a private network namespace: nothing leaves the machine, ports never collide.
NETNS := $(if $(filter 0,$(shell id -u)),unshare -n,unshare -rn)

.PHONY: help run test build release deps deps-test venv c-plugins unit e2e check-config install bench bench-micro bench-compare bench-turn bench-sfu bench-network clean

help:
	@echo "make run    - install what is missing, build release, start atrium with $(CONFIG)"
	@echo "make test   - install what tests need, build, run unit and e2e tests"
	@echo "make build  - debug build of host, plugins and the C example plugin"
	@echo "make install PREFIX=/usr/local - the release build, plugins, web app, a systemd unit, and a"
	@echo "              config in SYSCONFDIR (/etc/atrium) unless one is there (docs/deploy.md)"
	@echo "make bench  - Atrium and Janus under the same load, side by side with the floor (bench-compare,"
	@echo "              writes bench-results.json), microbenchmarks of the media path, TURN against coturn"
	@echo "make bench-network - meetings on impaired links (loss, caps), Atrium and Janus side by side"
	@echo "              with Chromium on separate simulated hosts (writes network-results.json)"

define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call install_missing,$(DEBS_RUN))

deps-test:
	$(call install_missing,$(DEBS_TEST))

release: deps
	swift build -c release

run: release
	.build/release/atrium --config $(CONFIG)

check-config: release
	.build/release/atrium check-config $(CONFIG)

# An installed Atrium: the binary, its plugins and the web app under PREFIX, a systemd unit, and
# config/config.json under SYSCONFDIR with plugins_dir and web_root pointing at them (an existing
# config is kept). INSTALL_FROM names the build to install (the tests install the debug one).
PREFIX       ?= /usr/local
SYSCONFDIR   ?= /etc/atrium
INSTALL_FROM ?= .build/release
install: $(if $(filter .build/release,$(INSTALL_FROM)),release)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/atrium $(DESTDIR)$(PREFIX)/share/atrium/docs \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(SYSCONFDIR)
	install -m 755 $(INSTALL_FROM)/atrium $(DESTDIR)$(PREFIX)/bin/atrium
	install -m 644 $(INSTALL_FROM)/libatrium_*.so $(DESTDIR)$(PREFIX)/lib/atrium/
	rm -rf $(DESTDIR)$(PREFIX)/share/atrium/web && cp -R web $(DESTDIR)$(PREFIX)/share/atrium/web
	install -m 644 docs/deploy.md docs/configuration.md $(DESTDIR)$(PREFIX)/share/atrium/docs/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' config/systemd/atrium.service \
	  > $(DESTDIR)$(PREFIX)/lib/systemd/system/atrium.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/config.json ]; then echo "kept $(DESTDIR)$(SYSCONFDIR)/config.json"; else \
	  $(PYTHON) -c 'import json, sys; c = json.load(open("config/config.json")); \
	    c["plugins_dir"] = sys.argv[1] + "/lib/atrium"; c["http"]["web_root"] = sys.argv[1] + "/share/atrium/web"; \
	    json.dump(c, sys.stdout, indent=2); print()' $(PREFIX) > $(DESTDIR)$(SYSCONFDIR)/config.json; \
	  chmod 640 $(DESTDIR)$(SYSCONFDIR)/config.json; echo "wrote $(DESTDIR)$(SYSCONFDIR)/config.json"; fi

build: deps
	swift build --build-tests
	$(MAKE) c-plugins

# The example C plugin, built with cc against the ABI header alone; and its ABI 1.0 source against
# the 1.0 header (Tests/ABI/1.0), which every later minor version of the host must still serve.
c-plugins:
	@mkdir -p $(C_PLUGINS)/abi-1.0
	cc -std=c11 -O2 -Wall -Wextra -Werror -fvisibility=hidden -shared -fPIC -I Sources/PluginAPI/include \
	   Plugins/Examples/hello-c/hello.c -ljansson -o $(C_PLUGINS)/libatrium_hello.so
	cc -std=c11 -O2 -Wall -Wextra -Werror -fvisibility=hidden -shared -fPIC -I Tests/ABI/1.0 \
	   Tests/ABI/1.0/hello.c -ljansson -o $(C_PLUGINS)/abi-1.0/libatrium_hello.so

$(VENV)/.installed: Tests/e2e/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/e2e/requirements.txt
	touch $@

venv: $(VENV)/.installed

unit: build
	swift test --skip-build

# Inside the test namespace: loopback, plus a veth pair carrying 10.99.0.1, the non-loopback address
# browsers and aioice gather host candidates on (they skip loopback) and Atrium advertises by default.
E2E_NET := ip link set lo up && ip link add atrium0 type veth peer name atrium1 && \
  ip addr add 10.99.0.1/24 dev atrium0 && ip link set atrium0 up && ip link set atrium1 up

# Test modules run side by side in E2E_WORKERS pytest-xdist workers, a module on one worker (its
# module-scoped servers start once). Most of the suite waits on real time (media flowing, browsers
# rendering), so two workers on two cores finish well before one; three were faster still but
# starved browsers and aiortc peers into the odd timeout.
# Tests marked `alone` (they measure real time closely: every packet of a timed window, a recording's
# length against the time in the room) run afterwards, one at a time.
E2E_WORKERS ?= 2
E2E_PYTEST  := $(VENV)/bin/python -m pytest -q -n $(E2E_WORKERS) --dist loadfile -m "not alone" Tests/e2e && \
               $(VENV)/bin/python -m pytest -q -m alone Tests/e2e

e2e: build venv
	$(NETNS) -- bash -c '$(E2E_NET) && $(E2E_PYTEST)'

test: deps-test build venv
	swift test --skip-build
	$(NETNS) -- bash -c '$(E2E_NET) && $(E2E_PYTEST)'

# Everything measured: the side-by-side SFU comparison first (its table is the headline), then the
# microbenchmarks and TURN. bench-sfu (aiortc clients, optional recording) stays a target of its own.
bench: bench-compare bench-micro bench-turn

# atrium-bench drives Atrium and Janus 1.1.2 with the same scenario in a private namespace, measures
# the SRTP+sendmmsg floor, prints the table and writes bench-results.json (Benchmarks/compare).
bench-compare: release venv
	$(call install_missing,janus)
	$(NETNS) -- bash -c '$(E2E_NET) && $(VENV)/bin/python Benchmarks/compare/bench_compare.py'

# Microbenchmarks of the media path (package-benchmark), in their own build folder.
bench-micro: deps
	ATRIUM_BENCHMARKS=1 swift package --scratch-path .build-bench --allow-writing-to-package-directory \
	  benchmark --target RTCBenchmarks --no-progress

# The same UDP load through Atrium's TURN plugin and through coturn (Benchmarks/turn/bench_turn.py).
bench-turn: release
	$(call install_missing,coturn)
	$(NETNS) -- bash -c '$(E2E_NET) && $(PYTHON) Benchmarks/turn/bench_turn.py'

# Server CPU per forwarded packet at fan-out 1->N through the SFU plugin, aiortc clients (Benchmarks/sfu/bench_sfu.py).
# Meetings on impaired networks, Atrium and Janus side by side (Tests/e2e/bench_network.py, about
# 12 minutes): writes network-results.json; docs/benchmarks.md says how to read it.
bench-network: release venv
	$(call install_missing,janus)
	$(NETNS) -- bash -c '$(E2E_NET) && cd Tests/e2e && ATRIUM_BUILD_DIR=$(CURDIR)/.build/release \
	  $(CURDIR)/$(VENV)/bin/python bench_network.py --out $(CURDIR)/network-results.json'

bench-sfu: release venv
	$(NETNS) -- bash -c '$(E2E_NET) && $(VENV)/bin/python Benchmarks/sfu/bench_sfu.py'

# Clients joining, publishing, subscribing, chatting, leaving and reconnecting against the release
# build while its RSS, fds and threads are sampled; fails on growth or any error (Tests/soak/soak.py).
SOAK_MINUTES ?= 10
SOAK_CLIENTS ?= 12
.PHONY: soak
soak: release venv
	$(NETNS) -- bash -c '$(E2E_NET) && ATRIUM_BUILD_DIR=$(CURDIR)/.build/release $(VENV)/bin/python Tests/soak/soak.py \
	  --minutes $(SOAK_MINUTES) --clients $(SOAK_CLIENTS)'

clean:
	rm -rf .build $(VENV) Tests/e2e/artifacts

# Coverage-guided fuzzing (Tests/Fuzz, docs/security.md): libFuzzer harnesses built with the fuzzer
# and address sanitizers, optimised (the sanitizer catches the overruns -O no longer checks), in a
# build folder of their own. Each runs FUZZ_SECONDS with its dictionary; what it finds stays in the
# working corpus .build-fuzz/corpus, outside git, and crashing inputs in .build-fuzz/crashes.
FUZZ_SECONDS   ?= 300
FUZZ_HARNESSES ?= json sdp stun turn rtp rtcp vp8 vp9 h264 av1 opus matroska-repair http janus-api
FUZZ_BUILD     := .build-fuzz
FUZZ_BIN       := $(FUZZ_BUILD)/release
FUZZ_FLAGS     := -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing

.PHONY: fuzz fuzz-build fuzz-corpus
# One product at a time: the harnesses only, not every plugin of the package.
fuzz-build: deps
	@set -e; for h in $(FUZZ_HARNESSES); do \
	  ATRIUM_FUZZ=1 nice -n 15 swift build --scratch-path $(FUZZ_BUILD) $(FUZZ_FLAGS) --product fuzz-$$h; \
	done

fuzz: fuzz-build
	@set -e; for h in $(FUZZ_HARNESSES); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$h $(FUZZ_BUILD)/crashes/$$h; \
	  dict=Tests/Fuzz/Dictionaries/$$( [ $$h = turn ] && echo stun || echo $$h ).dict; \
	  echo "== fuzz-$$h for $(FUZZ_SECONDS) s"; \
	  nice -n 15 $(FUZZ_BIN)/fuzz-$$h $$( [ -f $$dict ] && echo -dict=$$dict ) -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(FUZZ_BUILD)/crashes/$$h/ -print_final_stats=1 $(FUZZ_BUILD)/corpus/$$h Tests/Fuzz/Corpus/$$h; \
	done

# Minimizes what the committed regression corpus and the working corpus cover into at most
# FUZZ_CORPUS_FILES inputs per harness in Tests/Fuzz/Corpus (review and commit it; FuzzTests replays it).
FUZZ_CORPUS_FILES ?= 50
fuzz-corpus: fuzz-build
	@set -e; for h in $(FUZZ_HARNESSES); do \
	  rm -rf $(FUZZ_BUILD)/merge/$$h $(FUZZ_BUILD)/merge/$$h.control && mkdir -p $(FUZZ_BUILD)/merge/$$h $(FUZZ_BUILD)/corpus/$$h; \
	  nice -n 15 $(FUZZ_BIN)/fuzz-$$h -set_cover_merge=1 -merge_control_file=$(FUZZ_BUILD)/merge/$$h.control \
	    $(FUZZ_BUILD)/merge/$$h Tests/Fuzz/Corpus/$$h $(FUZZ_BUILD)/corpus/$$h >$(FUZZ_BUILD)/merge/$$h.log 2>&1; \
	  $(PYTHON) Tests/Fuzz/cover_corpus.py $(FUZZ_BUILD)/merge/$$h.control $(FUZZ_CORPUS_FILES) $(FUZZ_BUILD)/merge/$$h.picked; \
	  rm -rf Tests/Fuzz/Corpus/$$h && mv $(FUZZ_BUILD)/merge/$$h.picked Tests/Fuzz/Corpus/$$h; \
	done
