# framecast: build, run, test and benchmark on Debian 12 (GNU make).
# Each target installs only the Debian packages it is missing, so a fresh machine with just
# the Rust toolchain needs nothing but `make run` or `make test`.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# What `make run` serves on, and extra server flags, e.g. `make run ARGS="--size 640x360 --fps 15"`.
LISTEN ?= 127.0.0.1:8080
ARGS ?=

CARGO ?= cargo
# Cargo.lock is committed: builds use exactly the locked versions.
CARGO_FLAGS := --locked

# Building: a C toolchain, cmake and nasm for libjpeg-turbo and openh264 (without nasm both are
# several times slower), libclang for bindgen, OpenSSL's headers for WebRTC's DTLS.
BUILD_PKGS := build-essential pkg-config cmake nasm libclang-dev libssl-dev
# The real clients the black-box tests drive (Firefox for the page and stream in Gecko). A font so that Chromium's screenshots have text
# (Chromium only recommends one, and recommends are not installed). Python's Prometheus parser
# reads /metrics (tests/metrics.rs). nginx runs contrib/nginx.conf as a caching edge in front
# of framecast (tests/edge_cache.rs), with its Lua module for contrib/framecast_edge.lua.
# The RTSP server of the RTSP source tests (tests/fixtures/rtsp_server.py): gst-rtsp-server
# through python3-gi, x264enc (ugly), h264parse and x265enc (bad), and GLib's TLS for rtsps://
# (glib-networking). Defined before TEST_PKGS,
# which `:=` expands where it stands.
RTSP_SERVER_PKGS := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad glib-networking
TEST_PKGS := ffmpeg chromium firefox-esr vlc-bin vlc-plugin-base fonts-dejavu-core openssl nginx libnginx-mod-http-lua \
	python3-prometheus-client $(RTSP_SERVER_PKGS)
# node and npm run the browser tests; any node >= 18 on PATH will do, otherwise Debian's.
NODE_PKGS := $(if $(shell command -v node),,nodejs) $(if $(shell command -v npm),,npm)

# apt needs root; sudo only when not root already.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Installs the Debian packages in $(1) that are not installed yet: one `apt-get update`, one
# `apt-get install`, nothing at all when everything is there.
define install_missing
	missing=""; \
	for pkg in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi
endef

# rustfmt and clippy come with rustup's default profile; a minimal toolchain gets them here.
define ensure_rust_components
	$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
endef

# playwright-core never downloads a browser; this makes sure nothing else tries either.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: help run test js-test bench fuzz fmt lint clean deps test-deps node-deps

help: ## Show this list
	@echo "framecast make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN { FS = ":.*## " } { printf "  %-10s %s\n", $$1, $$2 }'
	@echo "Variables: LISTEN=$(LISTEN) (make run), ARGS=\"...\" (extra server flags)"

deps: ## Install the Debian packages needed to build (only those missing)
	@$(call install_missing,$(BUILD_PKGS))

test-deps: ## Install everything the tests need: build packages, ffmpeg, Chromium, VLC, node
	@$(call install_missing,$(BUILD_PKGS) $(TEST_PKGS) $(NODE_PKGS))

node-deps: ## Install node and npm (only if missing)
	@$(call install_missing,$(NODE_PKGS))

# node_modules first: the build embeds hls.js from it (build.rs) for the /hls page.
run: deps node_modules/.installed ## Build (release) and serve the test pattern on http://127.0.0.1:8080/ (LISTEN=...)
	$(CARGO) build $(CARGO_FLAGS) --release
	exec ./target/release/framecast --listen $(LISTEN) --source test $(ARGS)

# npm ci wipes node_modules, so the stamp inside it is fresh exactly when the install finished
# after the last change to the lock file.
node_modules/.installed: package.json package-lock.json | node-deps
	npm ci --include=dev --no-audit --no-fund
	touch $@

test: test-deps node_modules/.installed ## Check formatting and lints, then run every test
	$(ensure_rust_components)
	$(CARGO) fmt --check
	$(CARGO) clippy $(CARGO_FLAGS) --all-targets -- -D warnings
	# The build without the camera feature must stay clean too.
	$(CARGO) clippy $(CARGO_FLAGS) --no-default-features --lib -- -D warnings
	# Benchmarks are compiled by clippy above and run by `make bench`, not here.
	$(CARGO) test $(CARGO_FLAGS) --lib --bins --tests
	$(MAKE) js-test
	$(MAKE) fuzz FUZZ_SECONDS=10 FUZZ_BUILD=--dev

js-test: node-deps ## Unit-test the pages' pure JavaScript (static/) with node's test runner
	node --test tests/js/*.test.mjs

bench: test-deps node_modules/.installed ## Run the benchmarks: encoder stages, MJPEG and HLS load, the same over TLS and HTTP/2, bitrate on noise, many streams, an RTSP camera, credential checks, an nginx edge, WebRTC viewers, browser latency
	$(CARGO) build $(CARGO_FLAGS) --release
	$(CARGO) bench $(CARGO_FLAGS) --bench jpeg_stage
	$(CARGO) bench $(CARGO_FLAGS) --bench h264_stage
	$(CARGO) bench $(CARGO_FLAGS) --bench encoders
	$(CARGO) bench $(CARGO_FLAGS) --bench h264_decode
	$(CARGO) bench $(CARGO_FLAGS) --bench mjpeg_load
	$(CARGO) bench $(CARGO_FLAGS) --bench hls_load
	$(CARGO) bench $(CARGO_FLAGS) --bench tls_load
	$(CARGO) bench $(CARGO_FLAGS) --bench convert
	$(CARGO) bench $(CARGO_FLAGS) --bench passthrough
	$(CARGO) bench $(CARGO_FLAGS) --bench pipelined
	$(CARGO) bench $(CARGO_FLAGS) --bench churn
	$(CARGO) bench $(CARGO_FLAGS) --bench noise_bitrate
	$(CARGO) bench $(CARGO_FLAGS) --bench many_streams
	$(CARGO) bench $(CARGO_FLAGS) --bench rtsp_camera
	$(CARGO) bench $(CARGO_FLAGS) --bench auth_check
	$(CARGO) bench $(CARGO_FLAGS) --bench edge_cache
	$(CARGO) bench $(CARGO_FLAGS) --bench webrtc_viewers
	node benches/browser_latency.mjs

# Every parser of outside bytes is fuzzed: the WHEP/WHIP SDP offer checks, the MJPEG pipe
# splitter, the playlist parser and renderer (round trips), the H.264 SPS parser, the Annex B
# access-unit splitter, the RTSP access-unit conversion, the H.264 decoder for JPEG viewers,
# HLS passthrough of a source's H.264 (playlist rules), the Authorization header (Basic and
# Bearer credentials), the signed-link check of a request's path and query, the rewrite that
# carries a signed link into every URI of a playlist, the assembly of a WHIP publisher's
# access units, and the check of an ffmpeg encoder's access units. Each target runs for
# FUZZ_SECONDS, one per core at a time, so `make test` (10 s each) spends about a minute here
# on two cores, after the build. Each starts from
# generated seeds in fuzz/corpus/<target>:
# real MJPEG (its first byte picks the push size); the playlists of the renderer's case table
# (written by an ignored unit test; the playlist rewrite starts from them too); libx264 Annex-B
# streams whose SPSs reach the deep fields (cropping, 4:4:4 with scaling lists, interlaced, VUI
# timing); the RFC 7617 and RFC 6750 example headers; a signed HLS request (path, line break,
# query).
FUZZ_SECONDS ?= 60
# `--dev` for the short runs of `make test` (see fuzz/Cargo.toml); release otherwise.
FUZZ_BUILD ?=
FUZZ_TARGETS := mjpeg_stream playlist_roundtrip h264_sps h264_access_units rtsp_access_unit h264_decode \
  h264_passthrough authorization_header signed_link carry_query sdp_offer whip_access_units \
  h264_unit_check
FUZZ_CORPUS := fuzz/corpus
FUZZ_JOBS ?= $(shell nproc)

fuzz: deps ## Fuzz every parser of outside bytes for FUZZ_SECONDS each (installs cargo-fuzz if missing)
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	mkdir -p $(addprefix $(FUZZ_CORPUS)/,$(FUZZ_TARGETS))
	if command -v ffmpeg >/dev/null && [ ! -s $(FUZZ_CORPUS)/mjpeg_stream/seed-testsrc ]; then \
	  { printf '\x0f'; ffmpeg -loglevel error -f lavfi -i testsrc=size=32x24:rate=5 -frames:v 3 -f mjpeg -; } \
	    > $(FUZZ_CORPUS)/mjpeg_stream/seed-testsrc; \
	fi
	if [ -z "$$(ls -A $(FUZZ_CORPUS)/playlist_roundtrip)" ]; then \
	  FRAMECAST_FUZZ_SEEDS="$(CURDIR)/$(FUZZ_CORPUS)/playlist_roundtrip" \
	    $(CARGO) test $(CARGO_FLAGS) --lib write_fuzz_seeds -- --ignored --quiet; \
	fi
	if [ -z "$$(ls -A $(FUZZ_CORPUS)/carry_query)" ]; then \
	  cp $(FUZZ_CORPUS)/playlist_roundtrip/* $(FUZZ_CORPUS)/carry_query/; \
	fi
	if [ -z "$$(ls -A $(FUZZ_CORPUS)/signed_link)" ]; then \
	  printf '/streams/front/hls/x/part7.1.m4s\n_HLS_msn=7&exp=1767225600&sig=P0qfbAd2S0zii7Ou359Ba3C7EJ5aH6jaUJdUTBq3ZMs' \
	    > $(FUZZ_CORPUS)/signed_link/seed-hls-part; \
	fi
	if command -v ffmpeg >/dev/null && [ -z "$$(ls -A $(FUZZ_CORPUS)/h264_sps)" ]; then \
	  sps_seed() { ffmpeg -loglevel error -f lavfi -i testsrc=size=$$2:rate=5 -frames:v 2 \
	    -c:v libx264 $$3 -f h264 "$(FUZZ_CORPUS)/h264_sps/seed-$$1"; }; \
	  sps_seed baseline-cropped 66x50 "-profile:v baseline -pix_fmt yuv420p"; \
	  sps_seed high-444-scaling 64x48 "-profile:v high444 -pix_fmt yuv444p -x264-params cqm=jvt"; \
	  sps_seed high-interlaced 64x48 "-profile:v high -pix_fmt yuv420p -flags +ildct"; \
	fi
	if command -v ffmpeg >/dev/null && [ ! -s $(FUZZ_CORPUS)/h264_access_units/seed-x264 ]; then \
	  { printf '\x1f'; ffmpeg -loglevel error -f lavfi -i testsrc=size=64x48:rate=5 -frames:v 6 \
	    -c:v libx264 -g 3 -x264-params slices=2 -f h264 -; } > $(FUZZ_CORPUS)/h264_access_units/seed-x264; \
	fi
	if command -v ffmpeg >/dev/null && [ ! -s $(FUZZ_CORPUS)/h264_decode/seed-x264 ]; then \
	  ffmpeg -loglevel error -f lavfi -i testsrc=size=66x50:rate=5 -frames:v 6 -pix_fmt yuv420p \
	    -c:v libx264 -bf 0 -g 3 -f h264 $(FUZZ_CORPUS)/h264_decode/seed-x264; \
	fi
	if command -v ffmpeg >/dev/null && [ ! -s $(FUZZ_CORPUS)/h264_passthrough/seed-x264 ]; then \
	  { printf '\x18'; ffmpeg -loglevel error -f lavfi -i testsrc=size=64x48:rate=25 -frames:v 60 \
	    -pix_fmt yuv420p -c:v libx264 -g 12 -bf 0 -f h264 -; } > $(FUZZ_CORPUS)/h264_passthrough/seed-x264; \
	fi
	if command -v ffmpeg >/dev/null && [ ! -s $(FUZZ_CORPUS)/h264_unit_check/seed-x264 ]; then \
	  { printf '\x01'; ffmpeg -loglevel error -f lavfi -i testsrc=size=64x48:rate=5 -frames:v 1 \
	    -c:v libx264 -bf 0 -f h264 -; } > $(FUZZ_CORPUS)/h264_unit_check/seed-x264; \
	fi
	if [ -z "$$(ls -A $(FUZZ_CORPUS)/authorization_header)" ]; then \
	  printf 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==' > $(FUZZ_CORPUS)/authorization_header/seed-basic; \
	  printf 'Bearer mF_9.B5f-4.1JqM' > $(FUZZ_CORPUS)/authorization_header/seed-bearer; \
	fi
	if [ -z "$$(ls -A $(FUZZ_CORPUS)/sdp_offer)" ]; then \
	  printf 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 103\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:103 H264/90000\r\na=fmtp:103 packetization-mode=1;profile-level-id=42e01f\r\n' \
	    > $(FUZZ_CORPUS)/sdp_offer/seed-recvonly; \
	fi
	# cargo-fuzz passes nightly-only flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
	# them. The parsers are safe Rust, so no sanitizer: coverage guidance alone, a faster build.
	# Built once, then FUZZ_JOBS targets at a time (a fuzzer is one thread), each into its own
	# log under fuzz/logs: a target's last line when it passes, its whole log when it fails.
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build $(FUZZ_BUILD) --sanitizer none
	mkdir -p fuzz/logs
	printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_JOBS) -I'{}' bash -c ' \
	  if RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $(FUZZ_BUILD) --sanitizer none {} $(FUZZ_CORPUS)/{} -- \
	      -max_total_time=$(FUZZ_SECONDS) > fuzz/logs/{}.log 2>&1; \
	  then echo "fuzz {}: $$(grep -h "^Done" fuzz/logs/{}.log)"; \
	  else cat fuzz/logs/{}.log; echo "fuzz {}: FAILED (log: fuzz/logs/{}.log)"; exit 1; fi'

fmt: ## Format the Rust code
	$(CARGO) fmt

lint: ## Run clippy on every target, warnings as errors
	$(CARGO) clippy $(CARGO_FLAGS) --all-targets -- -D warnings

clean: ## Remove build output and node_modules
	$(CARGO) clean
	rm -rf node_modules
