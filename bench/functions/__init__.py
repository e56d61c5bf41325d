"""Handler modules the benchmarks invoke (also fastinvoke's code directory for them)."""
