"""A non-editable install carries the YAML defaults and finds them from any directory."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT),
                    "-w", str(out)], check=True, timeout=300, cwd=out)
    return next(out.glob("recbole_sigma-*.whl"))


def test_wheel_ships_properties(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ["recbole_sigma/properties/model/SIGMA.yaml", "recbole_sigma/properties/model/Mamba4Rec.yaml",
                     "recbole_sigma/properties/model/EchoMamba4Rec.yaml",
                     "recbole_sigma/properties/dataset/amazon-beauty.yaml",
                     "recbole_sigma/ops/selective_scan.py"]:
        assert expected in names
    assert not any(name.startswith("tests/") for name in names)
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "recbole_sigma").rglob("*.py")}
    assert sorted(sources - names) == []  # every subpackage is in setup.py's packages


def test_installed_copy_finds_its_yaml_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    probe = ("import recbole_sigma, os; from recbole_sigma import config_files; "
             "files = config_files('SIGMA', 'amazon-beauty'); print(recbole_sigma.__file__); print(files)")
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert f"{target}/recbole_sigma/properties/model/SIGMA.yaml" in out[1]
    assert f"{target}/recbole_sigma/properties/dataset/amazon-beauty.yaml" in out[1]


def test_import_without_recbole_names_the_install_command(tmp_path):
    """setup.py cannot require RecBole (its ray<=2.6.3 pin): a missing RecBole is one clear line."""
    probe = "import sys; sys.modules['recbole'] = None; import recbole_sigma"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: recbole-sigma needs RecBole 1.2.1, installed without its pins: "
        "pip install --no-deps recbole==1.2.1")
