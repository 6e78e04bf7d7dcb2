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
    python_requires=">=3.9",
    packages=[
        "recbole_sigma",
        "recbole_sigma.model",
        "recbole_sigma.ops",
        "recbole_sigma.properties",
    ],
    # properties/ sits at the repository root, where RecBole users look for it; it ships inside
    # the package so that an installed copy finds its YAML from any working directory.
    package_dir={"recbole_sigma.properties": "properties"},
    package_data={
        "recbole_sigma.properties": ["*.md", "model/*.yaml", "dataset/*.yaml", "model_dataset/*.yaml"],
        # a sitecustomize for Ray's own processes (see recbole_sigma/tuning.py)
        "recbole_sigma": ["_ray_boot/sitecustomize.py"],
    },
    install_requires=[
        # RecBole 1.2.1 is the newest release; recbole_sigma.compat fixes it on numpy 2,
        # pandas 3, torch >= 2.6 and setuptools >= 81 at import time.
        "recbole==1.2.1",
        # Any torch RecBole accepts; install the CPU build first (README) to avoid a CUDA download.
        "torch>=1.13",
        # The fused CPU selective scan; without it the PyTorch fallback runs (slowly).
        "numba>=0.59",
        "pyyaml",
        # Plots are part of what the package gives: grouped_eval --plot, the harness's figures.
        "matplotlib",
    ],
    extras_require={
        # The pair that works together (older mamba-ssm calls causal-conv1d's old 7-argument
        # function); build both with --no-build-isolation against the installed CUDA torch (README).
        "cuda": ["mamba-ssm>=2.2.5", "causal-conv1d>=1.5.1"],
        "tune": ["ray[tune]==2.6.3", "hyperopt==0.2.5"],
        "plot": ["matplotlib"],
        "test": ["pytest>=7", "ray[tune]==2.6.3", "hyperopt==0.2.5", "matplotlib", "hypothesis"],
    },
    entry_points={"console_scripts": ["recbole-sigma=recbole_sigma.quick_start:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
