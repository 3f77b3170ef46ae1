"""The decision log: secret-free records, written durably, read back by `pdp audit`."""
