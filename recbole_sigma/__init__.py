"""recbole-sigma: selective state-space (Mamba) sequential recommenders for RecBole.

Importing the package first makes RecBole 1.2.1 work on today's stack (see ``compat``)."""
import importlib.util as _importlib_util

if _importlib_util.find_spec("recbole") is None:  # setup.py: RecBole is installed on its own
    raise ImportError(
        "recbole-sigma needs RecBole 1.2.1, installed without its pins: pip install --no-deps recbole==1.2.1"
    )

from recbole_sigma import compat as _compat  # noqa: E402

_compat.apply()

from recbole_sigma.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataFileError,
    DatasetNotFoundError,
    EmptyDatasetError,
    NonFiniteLossError,
    RecBoleSigmaError,
    UnknownModelError,
)
from recbole_sigma.mamba import Mamba  # noqa: E402
from recbole_sigma.model import MODELS, SIGMA, EchoMamba4Rec, Mamba4Rec  # noqa: E402
from recbole_sigma.cli import main  # noqa: E402
from recbole_sigma.config import build_config, config_files, resolve_model  # noqa: E402
from recbole_sigma.pipeline import load_data_and_model, run  # noqa: E402

__version__ = "0.1.0"
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
]
