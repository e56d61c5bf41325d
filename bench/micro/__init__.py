"""pytest-benchmark microbenchmarks of fastinvoke._core and the wire (opt-in)."""
