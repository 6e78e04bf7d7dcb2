"""Start-up fixes for Ray's own processes (put on their PYTHONPATH by recbole_sigma.tuning).

Ray 2.6.3 imports pkg_resources (gone in setuptools >= 81) and reads np.bool8 (gone in numpy 2)
when it is imported; recbole_sigma.compat fixes both, but only in a process that imports
recbole_sigma, and Ray's workers, dashboard and `ray` command import ray first. Python imports
this sitecustomize at start-up from PYTHONPATH: it applies those two fixes, loading compat.py on
its own (it imports only the standard library), then runs the sitecustomize it shadows, if any.
"""


def _recbole_sigma_boot():
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        compat_file = os.path.join(here, os.pardir, "compat.py")
        spec = importlib.util.spec_from_file_location("_recbole_sigma_compat_boot", compat_file)
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
        compat.fix_pkg_resources()
        compat.fix_numpy_aliases()
    except Exception as exc:  # never stop an interpreter from starting
        sys.stderr.write(f"recbole_sigma ray boot: {exc!r}\n")
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_recbole_sigma_boot()
del _recbole_sigma_boot
