# Developer shortcuts. Everything here is also plain commands documented in docs/images.md and
# docs/testing.md; nothing in CI depends on make.
PYTHON ?= .venv/bin/python
IMAGE ?= obskit-sidecar
ENV ?= dev
# Evaluated once (":="), so every tag and label of one build carries the same values.
# VERSION: the package version from pyproject.toml (the script reads it; "v" stripped).
ifndef VERSION
VERSION := $(patsubst v%,%,$(firstword $(shell $(PYTHON) scripts/image-tags.py --env x)))
endif
ifndef BUILD_DATE
BUILD_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
endif
ifndef VCS_REF
VCS_REF := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
endif
HADOLINT ?= .venv/bin/hadolint

.PHONY: help image-tags images images-windows lint-dockerfiles docs test

help:
	@echo "make image-tags [ENV=prod VERSION=1.2.3]  print the tags for this build"
	@echo "make images [ENV=prod]                    build the Linux image with every tag (needs docker)"
	@echo "make images-windows [ENV=prod]            build the Windows image (Windows host, needs docker)"
	@echo "make lint-dockerfiles                     hadolint both Dockerfiles (.hadolint.yaml)"
	@echo "make docs                                 mkdocs build --strict into site/"
	@echo "make test                                 the full test suite"

image-tags:
	@$(PYTHON) scripts/image-tags.py --version $(VERSION) --date $(BUILD_DATE) --env $(ENV)

images:
	docker build -f sidecar/Dockerfile \
	  --build-arg VERSION=$(VERSION) --build-arg BUILD_DATE=$(BUILD_DATE) --build-arg VCS_REF=$(VCS_REF) \
	  $$($(PYTHON) scripts/image-tags.py --version $(VERSION) --date $(BUILD_DATE) --env $(ENV) --image $(IMAGE) | sed 's/^/-t /') .

images-windows:
	docker build -f sidecar/Dockerfile.windows \
	  --build-arg VERSION=$(VERSION) --build-arg BUILD_DATE=$(BUILD_DATE) --build-arg VCS_REF=$(VCS_REF) \
	  $$($(PYTHON) scripts/image-tags.py --version $(VERSION) --date $(BUILD_DATE) --env $(ENV) --variant ltsc2022 --image $(IMAGE) | sed 's/^/-t /') .

lint-dockerfiles:
	$(HADOLINT) --config .hadolint.yaml sidecar/Dockerfile sidecar/Dockerfile.windows

docs:
	$(PYTHON) scripts/gen_config_docs.py
	$(PYTHON) -m mkdocs build --strict

test:
	$(PYTHON) -m pytest -q
