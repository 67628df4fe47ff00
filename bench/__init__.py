"""``make bench``: seeds realistic data and drives the gateway with wrk; see bench/README.md."""
