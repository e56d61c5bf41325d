"""fastinvoke's benchmarks: ``python -m bench [core|latency|throughput|coldstart|isolation]``.

Each contender runs in its own fresh subprocess (``bench._runner``); the driver
(``bench.__main__``) alternates contenders over rounds and prints ratios against the
baseline of the same run (``bench._report``).  See bench/README.md.
"""
