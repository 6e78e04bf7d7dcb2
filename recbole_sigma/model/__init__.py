"""The package's RecBole models, one a file, and the RecBole baselines it runs faster.

``SASRec`` and ``BASELINES`` are imported on first use (PEP 562): RecBole's SASRec module imports
all of RecBole's sequential models."""
from recbole_sigma.model.echomamba4rec import EchoMamba4Rec
from recbole_sigma.model.mamba4rec import Mamba4Rec
from recbole_sigma.model.sigma import SIGMA

MODELS = {cls.__name__: cls for cls in (Mamba4Rec, SIGMA, EchoMamba4Rec)}
# RecBole's own models under their own names, with a faster forward that gives the same outputs.
BASELINE_NAMES = ("SASRec",)


def __getattr__(name):
    if name not in ("SASRec", "BASELINES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from recbole_sigma.model.sasrec import SASRec

    globals().update(SASRec=SASRec, BASELINES={cls.__name__: cls for cls in (SASRec,)})
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | {"SASRec", "BASELINES"})
