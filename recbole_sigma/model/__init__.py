"""The package's RecBole models, one a file, and the RecBole baselines it runs faster."""
from recbole_sigma.model.echomamba4rec import EchoMamba4Rec
from recbole_sigma.model.mamba4rec import Mamba4Rec
from recbole_sigma.model.sasrec import SASRec
from recbole_sigma.model.sigma import SIGMA

MODELS = {cls.__name__: cls for cls in (Mamba4Rec, SIGMA, EchoMamba4Rec)}
# RecBole's own models under their own names, with a faster forward that gives the same outputs.
BASELINES = {cls.__name__: cls for cls in (SASRec,)}
