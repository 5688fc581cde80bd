# Reel: `make demo` renders a sample video, `make test` runs the test suite.
# Both install any missing Debian packages first (apt-get, through sudo when not root).

SHELL        := /bin/bash
SWIFT        ?= swift
DEMO_PROMPT  ?= a large red circle moving right on a black background
DEMO_ARGS    ?= --frames 16 --seed 7 --scale 4

# Build-time libraries (SQLite for the job store); ffmpeg (ffprobe), numpy, iproute2 (network
# namespaces) and chromium (the dashboard test) for the tests.
APT_PACKAGES := pkg-config libzmq3-dev libsentencepiece-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev \
                libopenblas-dev libsqlite3-dev ffmpeg python3 python3-numpy iproute2 chromium

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PROTOC_GEN_SWIFT := tools/protoc-gen-swift/.build/release/protoc-gen-swift

REF_VENV     := .venv-ref
TRAIN_VENV   := .venv-train
TRAIN_ARGS   ?= --minutes 60
TRAIN_RUN    ?= train/runs/reel-shapes-next

GALLERY      := docs/gallery
GALLERY_SHAPES := .build/release/reel render --model reel-shapes --seed 1

FUZZ_SECONDS ?= 60
# coordinator runs without leak detection: a live coordinator's threads hold memory between
# inputs (a checkpoint being written, say), which LeakSanitizer reports as leaked mid-flight.
FUZZ_TARGETS := envelope spec checkpoint coordinator safetensors
# libFuzzer without its main (SwiftPM names the executable's entry point itself; ours calls
# libFuzzer's driver), from the Swift toolchain's clang runtime.
FUZZ_RUNTIME  = $(dir $(realpath $(shell command -v $(SWIFT))))../lib/swift/clang/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a
FUZZ_FLAGS    = -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
                -Xswiftc -DFUZZING -Xlinker $(FUZZ_RUNTIME) -Xlinker -lstdc++

.PHONY: all deps build release demo test faults fuzz bench bench-peer proto train train-test wan-fixtures gallery clean

all: release

## deps: install the Debian packages that are missing (nothing when all are present)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## demo: render demo.mp4 (and demo-sheet.png, a contact sheet of its frames), and check its signed manifest
demo: release
	.build/release/reel render "$(DEMO_PROMPT)" $(DEMO_ARGS) -o demo.mp4 --contact-sheet demo-sheet.png
	@command -v ffprobe >/dev/null && ffprobe -v error -select_streams v:0 \
	    -show_entries stream=codec_name,width,height,r_frame_rate,nb_frames -of compact=p=0 demo.mp4 || true
	.build/release/reel verify demo.mp4

## test: the repository's checks (tools/check-repository), then the whole suite, optimised (the
## numerics are too slow unoptimised)
test: deps
	tools/check-repository
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build

## faults: the fault suite (worker and coordinator kills, SIGSTOP, a cut network link, CURVE
## refusals, a submission flood, a soak with random kills, hostile workers and clients, kills
## between write and rename), each test printing its figure
faults: deps
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build --filter 'FaultTests|DurabilityTests|SecurityTests|FailureHandlingTests|HostilePeerTests|FarmTests/aWorkerKilled|FarmTests/malformedPeers'

## fuzz: every fuzz target for FUZZ_SECONDS (60) under libFuzzer and AddressSanitizer (leaks
## included), from seeds of real messages; a crash leaves its input in .build-fuzz/
fuzz: deps
	$(SWIFT) build -c release --product reel-fuzz
	$(SWIFT) build -c release --product reel-fuzz --scratch-path .build-fuzz $(FUZZ_FLAGS)
	.build/release/reel-fuzz --seeds .build-fuzz/corpus
	for target in $(FUZZ_TARGETS); do \
	    echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	    leaks=1; [ $$target = coordinator ] && leaks=0; \
	    REEL_FUZZ_TARGET=$$target .build-fuzz/release/reel-fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -detect_leaks=$$leaks \
	        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=.build-fuzz/crash-$$target- \
	        .build-fuzz/corpus/$$target 2>&1 | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==.*ERROR)' ; \
	    status=$${PIPESTATUS[0]}; [ $$status -eq 0 ] || { echo "fuzz target $$target failed ($$status)"; exit 1; }; \
	done

## bench: the engine benchmark (denoiser forward vs sgemm)
bench: release
	.build/release/reel bench engine

## bench-peer: Reel and PyTorch (tools/bench-torch, in the pinned reference environment) on the
## same Wan 2.1 folder, size, frames and threads, side by side. PEER_MODEL=DIR is required
## (`reel model synth wan2.1-t2v-1.3b DIR` makes a full-size one with random weights).
PEER_SIZE    ?= 256x256
PEER_FRAMES  ?= 17
PEER_THREADS ?= $(shell nproc)
bench-peer: release $(REF_VENV)/bin/python
	@[ -n "$(PEER_MODEL)" ] || { echo "bench-peer: give PEER_MODEL=DIR, a Wan 2.1 Diffusers folder"; exit 1; }
	.build/release/reel bench engine --model $(PEER_MODEL) --size $(PEER_SIZE) --frames $(PEER_FRAMES) --threads $(PEER_THREADS) --json > .build/bench-reel.json
	$(REF_VENV)/bin/python tools/bench-torch/bench.py --model $(PEER_MODEL) --size $(PEER_SIZE) --frames $(PEER_FRAMES) --threads $(PEER_THREADS) > .build/bench-torch.json
	$(REF_VENV)/bin/python tools/bench-torch/compare.py .build/bench-reel.json .build/bench-torch.json

## proto: regenerate Sources/Wire/Generated from proto/ (only when a .proto changes; the
## generated Swift is committed, so builds need neither protoc nor the plugin)
proto:
	@command -v protoc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq protobuf-compiler; }
	cd tools/protoc-gen-swift && $(SWIFT) build -c release --product protoc-gen-swift
	rm -rf Sources/Wire/Generated/reel
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_out=Sources/Wire/Generated \
	    --swift_opt=Visibility=Public -I proto proto/reel/v1/*.proto
	tools/check-repository --stamp

## train: train the default model on with the recipe of run 41, the run it came from (train.py's
## --recipe reel-shapes), in
## $(TRAIN_RUN) (ignored by git): from its checkpoint when there is one, else from models/reel-shapes'
## weights with a fresh optimiser. It exports into $(TRAIN_RUN)/package, never into the tracked
## models/reel-shapes: adopt a run by copying that package's model.safetensors (and config.json,
## where its shape changed) there after `reel eval`.
## TRAIN_ARGS="--minutes N"
# Only a fresh run re-warms the rate: a resumed one keeps its optimiser's moments, so it goes on at
# the rate its schedule says rather than climbing from zero over 100 steps again each sitting.
TRAIN_START = $(if $(wildcard $(TRAIN_RUN)/checkpoint.pt),,--start-from models/reel-shapes --rewarm 100)
train: $(TRAIN_VENV)/bin/python
	[ -d $(TRAIN_RUN)/package ] || { mkdir -p $(TRAIN_RUN) && rm -rf $(TRAIN_RUN)/package.partial && \
	    cp -r models/reel-shapes $(TRAIN_RUN)/package.partial && mv $(TRAIN_RUN)/package.partial $(TRAIN_RUN)/package; }
	$(TRAIN_VENV)/bin/python train/train.py --package $(TRAIN_RUN)/package --run $(TRAIN_RUN) \
	    $(TRAIN_START) --recipe reel-shapes $(TRAIN_ARGS)

## gallery: docs/gallery/ from models/reel-shapes: its scores and contact sheet on the held-out
## prompts, one render a window long, one four windows long, and the two-shot job file
gallery: release
	mkdir -p $(GALLERY)
	.build/release/reel eval --model reel-shapes --limit 16 --seeds 1 --contact-sheet $(GALLERY)/heldout.png | tee $(GALLERY)/heldout.txt
	$(GALLERY_SHAPES) "a large red circle moving right on a gray background" \
	    -o $(GALLERY)/window.mp4 --contact-sheet $(GALLERY)/window.png
	$(GALLERY_SHAPES) "a large yellow square moving down and a small cyan circle moving left on a black background" \
	    --frames 64 -o $(GALLERY)/long.mp4 --contact-sheet $(GALLERY)/long.png
	.build/release/reel render examples/two-shots.yaml -o $(GALLERY)/two-shots.mp4 --contact-sheet $(GALLERY)/two-shots.png

## train-test: the trainer's own test (a few steps on a tiny model lower the loss), outside `make test`
train-test: $(TRAIN_VENV)/bin/python
	$(TRAIN_VENV)/bin/python train/test_train.py

## the trainer's virtual environment, with the pinned requirements
$(TRAIN_VENV)/bin/python: train/requirements.txt
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	python3 -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q -r train/requirements.txt
	touch $@

## wan-fixtures: rewrites Tests/WanTests/Fixtures from the pinned diffusers/transformers (CPU torch, offline
## once installed); the Swift tests read the committed files and never need Python
wan-fixtures: $(REF_VENV)/bin/python
	rm -rf Tests/WanTests/Fixtures
	$(REF_VENV)/bin/python tools/wan-reference/make_fixtures.py Tests/WanTests/Fixtures

## the reference's virtual environment, with the pinned requirements
$(REF_VENV)/bin/python: tools/wan-reference/requirements.txt
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	python3 -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install -q -r tools/wan-reference/requirements.txt
	touch $@

clean:
	rm -rf .build demo.mp4 demo-sheet.png
