"""pdp's benchmarks (`make bench`, or `python -m benchmarks [NAME ...] [--quick]`).

Each benchmark is a module of this package listed in `benchmarks.__main__.BENCHMARKS`, with a
`DESCRIPTION` string and `run(options: benchmarks.report.Options) -> None` that prints its
report. A benchmark that needs something optional (a server, an extra package) may also define
`unavailable() -> str | None`, the reason it cannot run here; a full run then skips it.

Benchmarks report numbers, they do not fail: nothing here is a test.
"""
