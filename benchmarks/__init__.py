"""The benchmarks (``speed.py``, ``scan_micro.py``) and the reproduction harness (``reproduce.py``,
``harness/``): scripts run from the repository root, ``python benchmarks/<script>.py``."""
