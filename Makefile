# authz-flag-consumer. `make help` lists the targets.
GO ?= go
BIN := bin/consumer

.DEFAULT_GOAL := help
.PHONY: help build dev test test-fast lint bench services kafka clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the binary into bin/consumer
	$(GO) build -trimpath -o $(BIN) ./cmd/consumer

dev: ## one-command demo: builds bin/consumer (saying what it downloads and compiles), runs `consumer dev $(ARGS)`
	@GO=$(GO) bash scripts/dev.sh $(ARGS)

test: ## every test tier; installs and starts MariaDB, PostgreSQL, Kafka, the Python venv, helm
	bash scripts/test.sh

test-fast: ## every Go package with -short: SQLite and the in-process broker; what needs a server or the crash tier is skipped (make test runs it all)
	$(GO) test -short -count=1 ./...

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l cmd internal)" || (gofmt -l cmd internal; exit 1)
	$(GO) vet ./...

bench: ## benchmarks: migration throughput vs bulk SQL per dialect, event pipeline, latency
	bash scripts/bench.sh

services: ## start MariaDB and PostgreSQL on 127.0.0.1 (prints nothing; see scripts/services.sh env)
	bash scripts/services.sh start

kafka: ## start the Apache Kafka broker on 127.0.0.1
	bash scripts/kafka.sh start

clean: ## remove build output and local databases (keeps the download cache)
	rm -rf bin authz-consumer.db* dev-data
