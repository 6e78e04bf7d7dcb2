"""The package's RecBole models, one a file."""
from recbole_sigma.model.echomamba4rec import EchoMamba4Rec
from recbole_sigma.model.mamba4rec import Mamba4Rec
from recbole_sigma.model.sigma import SIGMA

MODELS = {cls.__name__: cls for cls in (Mamba4Rec, SIGMA, EchoMamba4Rec)}
