"""Speed benchmarks: ``python -m dixtill_lib.benchmarks.<name>`` prints ratios (speed targets live here, not in tests)."""
