"""recbole-sigma: SIGMA, Mamba4Rec and EchoMamba4Rec for RecBole."""
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent

setup(
    name="recbole-sigma",
    version="0.1.0",
    description="Selective state-space (Mamba) sequential recommenders for RecBole: SIGMA, Mamba4Rec, EchoMamba4Rec",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    # Tested on CPython 3.11, 3.12 and 3.13 (README); ray 2.60 and hyperopt 0.3 need >= 3.10.
    python_requires=">=3.10",
    packages=[
        "recbole_sigma",
        "recbole_sigma._recbole",
        "recbole_sigma.model",
        "recbole_sigma.ops",
        "recbole_sigma.properties",
    ],
    # properties/ sits at the repository root, where RecBole users look for it; it ships inside
    # the package so that an installed copy finds its YAML from any working directory.
    package_dir={"recbole_sigma.properties": "properties"},
    package_data={
        "recbole_sigma.properties": ["*.md", "model/*.yaml", "dataset/*.yaml"],
    },
    # RecBole 1.2.1 (the newest release) is installed by the README's first command with
    # `pip install --no-deps recbole==1.2.1`, not listed here: it pins ray<=2.6.3, and Ray 2.6.3 has
    # no wheel for Python >= 3.12, so any requirement on recbole makes pip fail there (pip also
    # walks an installed recbole's requirements, so listing it fails even after --no-deps).
    # Instead we declare RecBole 1.2.1's own runtime requirements, minus Ray, with its bounds
    # (the colorlog/colorama pins are its own, so that `pip check` flags only Ray), and
    # recbole_sigma._recbole defers the one module-level `from ray import tune` in RecBole
    # (recbole.quick_start), so only tuning needs Ray: a current one, in the `tune` extra.
    # `import recbole_sigma` without RecBole says which command installs it.
    install_requires=[
        # Any torch RecBole accepts; install the CPU build first (README) to avoid a CUDA download.
        "torch>=1.13",
        # The fused CPU selective scan; without it the PyTorch fallback runs (slowly).
        "numba>=0.59",
        "pyyaml>=5.1.0",
        # RecBole 1.2.1's requirements (its setup.py), less ray<=2.6.3; recbole_sigma._recbole fixes
        # RecBole on numpy 2, pandas 3 and torch >= 2.6 at import time.
        "numpy>=1.17.2",
        "scipy>=1.6.0",
        "pandas>=1.3.0",
        "tqdm>=4.48.2",
        "colorlog==4.7.2",
        "colorama==0.4.4",
        "scikit-learn>=0.23.2",
        "tensorboard>=2.5.0",
        "thop>=0.1.1.post2207130030",
        "tabulate>=0.8.10",
        "plotly>=4.0.0",
        "texttable>=0.9.0",
        "psutil>=5.9.0",
        # Plots are part of what the package gives: grouped_eval --plot, the harness's figures.
        "matplotlib",
    ],
    extras_require={
        # The pair that works together (older mamba-ssm calls causal-conv1d's old 7-argument
        # function); build both with --no-build-isolation against the installed CUDA torch (README).
        "cuda": ["mamba-ssm>=2.2.5", "causal-conv1d>=1.5.1"],
        # A current Ray (tested: 2.60.0 on CPython 3.11, 3.12, 3.13) and hyperopt (0.3.0).
        "tune": ["ray[tune]>=2.60", "hyperopt>=0.3.0"],
        "test": ["pytest>=7", "ray[tune]>=2.60", "hyperopt>=0.3.0", "hypothesis"],
    },
    entry_points={"console_scripts": ["recbole-sigma=recbole_sigma.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
