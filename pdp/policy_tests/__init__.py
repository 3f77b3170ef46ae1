"""Policy tests for authors: `*.test.toml` files of cases beside the policies, run by
`pdp test DIR`, with coverage of rules and condition operands.

- cases.py: the test file format, loading and strict validation;
- runner.py: deciding each case with the real authorizer and comparing;
- coverage.py: which rules matched and which operands were seen true and false.
"""
