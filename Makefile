# Targets a newcomer can guess. Each one sets up what it needs first.
.PHONY: demo test lint types bench bootstrap

demo:        ## server on SQLite + a local agent; prints the console URL and a login
	scripts/demo

test:        ## lint, types and the whole test suite (installs what it needs)
	scripts/test

bootstrap:
	scripts/bootstrap --tests

lint:
	uv run ruff check . && uv run ruff format --check .

types:
	uv run mypy

bench:       ## reproducible measurements, each beside a baseline from the same run (see benchmarks/)
	uv run python benchmarks/fleet.py
	uv run python benchmarks/diagnostics.py
	uv run python benchmarks/screen.py
	uv run python benchmarks/transfer.py
