"""recbole-sigma: selective state-space (Mamba) sequential recommenders for RecBole.

Importing the package installs the fixes that make RecBole 1.2.1 run on today's stack
(``recbole_sigma._recbole``, which lists every patch and what it changes) and nothing else: the
models, ``run`` and the command line (and torch, RecBole) are imported on first use."""
import importlib as _importlib
import importlib.util as _importlib_util

if _importlib_util.find_spec("recbole") is None:  # setup.py: RecBole is installed on its own
    raise ImportError(
        "recbole-sigma needs RecBole 1.2.1, installed without its pins: pip install --no-deps recbole==1.2.1"
    )

from recbole_sigma import _recbole  # noqa: E402

_recbole.apply()

from recbole_sigma.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataFileError,
    DatasetNotFoundError,
    EmptyDatasetError,
    MambaKernelsUnavailable,
    NonFiniteLossError,
    PortInUseError,
    RecBoleSigmaError,
    UnknownModelError,
)

__version__ = "0.1.0"

# name -> the module that defines it, imported on first use (PEP 562)
_LAZY = {
    "SIGMA": "recbole_sigma.model",
    "Mamba4Rec": "recbole_sigma.model",
    "EchoMamba4Rec": "recbole_sigma.model",
    "MODELS": "recbole_sigma.model",
    "Mamba": "recbole_sigma.mamba",
    "config_files": "recbole_sigma.config",
    "build_config": "recbole_sigma.config",
    "resolve_model": "recbole_sigma.config",
    "run": "recbole_sigma.pipeline",
    "load_data_and_model": "recbole_sigma.pipeline",
    "main": "recbole_sigma.cli",
}

__all__ = [
    "SIGMA",
    "Mamba4Rec",
    "EchoMamba4Rec",
    "Mamba",
    "MODELS",
    "config_files",
    "build_config",
    "resolve_model",
    "run",
    "load_data_and_model",
    "main",
    "RecBoleSigmaError",
    "ConfigError",
    "DataFileError",
    "UnknownModelError",
    "DatasetNotFoundError",
    "EmptyDatasetError",
    "NonFiniteLossError",
    "CheckpointError",
    "PortInUseError",
    "MambaKernelsUnavailable",
]


def __getattr__(name):
    """The public names of ``_LAZY`` and the package's submodules, imported on first use."""
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and _importlib_util.find_spec(f"{__name__}.{name}") is not None:
        value = _importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
