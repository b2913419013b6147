# Meter. `make run` serves on the embedded PostgreSQL; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTOS := $(wildcard protos/meter/v1/*.proto)

.PHONY: setup run console test fuzz proto proto-check sync sync-check proto-release migrations-release lint bench clean

$(BIN)/meter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(BIN)/meter

setup: $(BIN)/meter

run: setup
	$(BIN)/meter serve

# The web console beside `make run` (another terminal): http://127.0.0.1:8080/
console: setup
	$(BIN)/meter console --listen 127.0.0.1:8080 --meter 127.0.0.1:50051

test: setup
	$(BIN)/pytest

# The fuzz test of every RPC with more examples than CI runs (METER_FUZZ_EXAMPLES per RPC); prints counts by status.
FUZZ_EXAMPLES ?= 500
fuzz: setup
	METER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -s tests/e2e/test_fuzz.py

proto: setup
	$(BIN)/python -m grpc_tools.protoc -Iprotos \
	  --python_out=client --pyi_out=client --grpc_python_out=client \
	  --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=client \
	  $(PROTOS)

# Regenerates and fails when the committed generated code differs from what the protos produce.
proto-check: proto
	@git diff --exit-code --stat -- client/meter/v1 || (echo "generated code is stale: run make proto and commit" && exit 1)
	@test -z "$$(git status --porcelain -- client/meter/v1)" || (git status --porcelain -- client/meter/v1; echo "untracked generated files: run make proto and commit" && exit 1)

# The blocking client (client/meter/_sync.py) is generated from the async one (_async.py).
sync: setup
	$(BIN)/python tools/async_to_sync.py

# Fails when the committed _sync.py is not what _async.py produces.
sync-check: setup
	$(BIN)/python tools/async_to_sync.py --check

# The released contract: buf breaking compares the protos against this committed image.
RELEASED_IMAGE := protos/released/meter-v1.binpb

lint: setup sync-check
	npx --yes @bufbuild/buf lint
	npx --yes @bufbuild/buf breaking --against $(RELEASED_IMAGE)
	$(BIN)/ruff check server client/meter tests tools $(wildcard bench)
	$(BIN)/ruff format --check server client/meter tests tools $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports

# Deliberate: record the current protos as the released contract (see docs/client.md, "The contract").
proto-release:
	npx --yes @bufbuild/buf build -o $(RELEASED_IMAGE)

# Deliberate, at a release: record every migration not yet in migrations/released.sha256 as released.
# From then on the file is immutable (tests/unit/test_released_migrations.py checks it in CI).
migrations-release:
	@cd migrations && for f in [0-9][0-9][0-9][0-9]_*.sql; do \
	  grep -q "  $$f$$" released.sha256 || { sha256sum "$$f" >> released.sha256; echo "released $$f"; }; \
	done

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache bench/results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
