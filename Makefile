# The two commands a newcomer needs: `make run` and `make test`. Everything else is created on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/pdp/v1/*.proto)
GENERATED := $(PROTOS:proto/%.proto=%_pb2.py)

.PHONY: install generate lint policies test bench run clean

# Reinstall when the project metadata changes; the stamp keeps repeated runs fast.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# gRPC code and typed stubs, generated into pdp/v1/ (the proto package) and kept out of git.
pdp/v1/%_pb2.py: proto/pdp/v1/%.proto $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		$<

generate: $(GENERATED)

install: $(STAMP) generate

lint: install
	$(BIN)/ruff check pdp tests benchmarks
	$(BIN)/ruff format --check pdp tests benchmarks
	$(BIN)/mypy

# The example policies: valid against their schema, fully covered by their tests, formatted.
policies: install
	$(BIN)/pdp validate --strict policies
	$(BIN)/pdp test --coverage --min-coverage 100 policies > /dev/null
	$(BIN)/pdp fmt --check policies

test: lint policies
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m benchmarks

# Serve the example policies with a development issuer (keys made in dev-keys/ on first run).
run: install
	$(BIN)/pdp dev-keys
	$(BIN)/pdp serve --config pdp.toml

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache pdp/v1/*_pb2*
