# Reel: `make demo` renders a sample video, `make test` runs the test suite.
# Both install any missing Debian packages first (apt-get, through sudo when not root).

SWIFT        ?= swift
DEMO_PROMPT  ?= a red circle moving right on a black background
DEMO_ARGS    ?= --frames 16 --steps 20 --seed 7 --scale 4

# Build-time libraries (SQLite for the job store); ffmpeg (ffprobe), numpy and iproute2 (network namespaces) for the tests.
APT_PACKAGES := pkg-config libzmq3-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev \
                libopenblas-dev libsqlite3-dev ffmpeg python3 python3-numpy iproute2

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PROTOC_GEN_SWIFT := tools/protoc-gen-swift/.build/release/protoc-gen-swift

TRAIN_VENV   := .venv-train
TRAIN_ARGS   ?= --minutes 60

.PHONY: all deps build release demo test bench proto train train-test clean

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

## demo: render demo.mp4 (and demo-sheet.png, a contact sheet of its frames)
demo: release
	.build/release/reel render "$(DEMO_PROMPT)" $(DEMO_ARGS) -o demo.mp4 --contact-sheet demo-sheet.png
	@command -v ffprobe >/dev/null && ffprobe -v error -select_streams v:0 \
	    -show_entries stream=codec_name,width,height,r_frame_rate,nb_frames -of compact=p=0 demo.mp4 || true

## test: the whole suite, optimised (the numerics are too slow unoptimised)
test: deps
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build

## bench: the engine benchmark (denoiser forward vs sgemm)
bench: release
	.build/release/reel bench engine

## proto: regenerate Sources/Wire/Generated from proto/ (only when a .proto changes; the
## generated Swift is committed, so builds need neither protoc nor the plugin)
proto:
	@command -v protoc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq protobuf-compiler; }
	cd tools/protoc-gen-swift && $(SWIFT) build -c release --product protoc-gen-swift
	rm -rf Sources/Wire/Generated/reel
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_out=Sources/Wire/Generated \
	    --swift_opt=Visibility=Public -I proto proto/reel/v1/*.proto

## train: train models/reel-shapes (resumes from train/runs/reel-shapes; TRAIN_ARGS="--minutes N")
train: $(TRAIN_VENV)/bin/python
	$(TRAIN_VENV)/bin/python train/train.py --package models/reel-shapes --run train/runs/reel-shapes $(TRAIN_ARGS)

## train-test: the trainer's own test (a few steps on a tiny model lower the loss), outside `make test`
train-test: $(TRAIN_VENV)/bin/python
	$(TRAIN_VENV)/bin/python train/test_train.py

## the trainer's virtual environment, with the pinned requirements
$(TRAIN_VENV)/bin/python: train/requirements.txt
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	python3 -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q -r train/requirements.txt
	touch $@

clean:
	rm -rf .build demo.mp4 demo-sheet.png
