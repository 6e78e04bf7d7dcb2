"""``pkg_resources`` for interpreters that import ray before recbole_sigma (Ray's own workers).

Only on ``PYTHONPATH`` when no real pkg_resources exists (see
``recbole_sigma.compat.pkg_resources_shim_path``). It is the same shim that ``compat`` serves
in-process, loaded from compat.py on its own so that nothing heavy is imported.
"""
import importlib.util
import os
import sys

_compat_file = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "compat.py")
_spec = importlib.util.spec_from_file_location("_recbole_sigma_compat_standalone", _compat_file)
_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compat)

_shim, _submodules = _compat._build_pkg_resources_shim()
sys.modules.update(_submodules)
globals().update({k: v for k, v in vars(_shim).items() if k not in ("__name__", "__spec__", "__loader__", "__file__", "__path__")})
