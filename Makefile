# The project's commands. Deno is found or installed on demand by scripts/deno.
DENO := ./scripts/deno
# The server's permissions, SO_REUSEPORT for its worker threads (--unstable-net, also in deno.json),
# and a young generation capped at 4 MiB: under many connections V8 otherwise grows it to tens of
# MiB of garbage (docs/PERFORMANCE.md); scripts/build and the benchmarks run the server the same way.
SERVER_FLAGS := --allow-net --allow-read --unstable-net --v8-flags=--max-semi-space-size=4,--heap-growing-percent=20
# Extra arguments for `make run`, e.g. make run ARGS="--port 5000 --policy lru"
ARGS ?=

# Nodes for `make cluster`
N ?= 3

.PHONY: run test build bench soak cluster sample-data clean

## run: start the server with its defaults on server_data/
run:
	$(DENO) run $(SERVER_FLAGS) server.ts $(ARGS)

# The tests of servers that run a second time with four worker threads (--workers 4): all that
# start a server, but those that weigh the memory of the whole process against what one thread may
# take (hashing, tls_exhaustion) and those that take long for little the first run did not show.
WORKER_TESTS := $(addprefix tests/,server_test.ts original_test.ts http_test.ts tls_test.ts \
	tokens_test.ts hardening_test.ts shared_folder_test.ts versions_test.ts stats_test.ts \
	errors_test.ts proxy_test.ts http_access_test.ts limits_test.ts hostile_test.ts \
	http_compress_test.ts folder_page_test.ts)

## test: format check, lint, type check, the examples in lib/ and every test; then the tests of
## servers again with four worker threads
test:
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check server.ts client.ts lib/ tests/ bench/ scripts/ testing/
	$(DENO) test --allow-all --doc lib/ tests/ bench/
	FILESERVER_TEST_WORKERS=4 $(DENO) test --allow-all $(WORKER_TESTS)

## build: self-contained executables dist/server and dist/client (honours DENORT_BIN)
build:
	@./scripts/build

## bench: the benchmark suite (bounded in time); ARGS=--quick for a short one, ARGS=--smoke to
## see each part run end to end in a second or two (make test does)
bench:
	$(DENO) run --allow-all bench/main.ts $(ARGS)

## soak: two minutes of mixed load, every answer checked byte for byte (ARGS adds options)
soak:
	$(DENO) run --allow-all bench/soak.ts --seconds 120 $(ARGS)

## cluster: N nodes sharing server_data/ (cache split between them) and haproxy in front; a process
## that ends is named and the rest keep running; Ctrl-C stops all
cluster:
	$(DENO) run --allow-all scripts/cluster.ts --nodes $(N)

## sample-data: larger sample files in server_data/big/ (git-ignored)
sample-data:
	$(DENO) run --allow-write=server_data --allow-read=server_data scripts/sample_data.ts

## clean: remove build output, downloads and generated samples
clean:
	rm -rf dist bench/.work server_data/big
	find client_data -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
