# helcim-recon: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test bench lint deny services build fmt clean

## run: start PostgreSQL/RabbitMQ if needed, build, and run the local stack against
##      the simulator until Ctrl-C (RUN_ONCE=1 checks it answers, then exits).
run: services build
	CARGO="$(CARGO)" deploy/local/run.sh

## test: every test, against the real PostgreSQL and RabbitMQ and the simulator.
test: services build
	$(CARGO) test --workspace --lib --bins --tests
	$(CARGO) test --workspace --doc

## bench: throughput and latency figures, printed (release build; takes ~5 minutes).
bench: services
	$(CARGO) build --release --workspace --bins
	$(CARGO) bench -p recon-receiver --bench signature
	$(CARGO) bench -p recon-e2e --bench receiver
	$(CARGO) bench -p recon-e2e --bench pipeline
	$(CARGO) bench -p recon-e2e --bench gateway
	$(CARGO) bench -p recon-e2e --bench attribution
	$(CARGO) bench -p recon-e2e --bench reconciliation

## lint: formatting, clippy and the dependency rules (one TLS crypto provider, no HTTP
##       client in recon-api), as CI checks them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	CARGO="$(CARGO)" .ci/check-deps.sh

## deny: cargo-deny (licences, bans, sources; advisories when their database can be
##       fetched), installing cargo-deny first if needed. CI runs it.
deny:
	CARGO="$(CARGO)" .ci/deny.sh

## services: make sure PostgreSQL and RabbitMQ answer on 127.0.0.1.
services:
	deploy/local/ensure-services.sh

build:
	$(CARGO) build --workspace --bins

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf .local
