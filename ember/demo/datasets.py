"""Loaders for the small real data sets bundled in ``ember/data`` (no download).

Each loader reads a CSV file shipped inside the package and returns torch
tensors. Sources and licences are listed in the README ("Bundled data").
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Tuple

import torch

__all__ = [
    "data_path",
    "load_diabetes",
    "load_digits",
    "load_eight_schools",
    "load_iris",
    "train_test_split",
]

_DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def data_path(filename: str) -> Path:
    """The path of a bundled data file.

    Example::

        >>> from ember.demo.datasets import data_path
        >>> data_path("iris.csv").name
        'iris.csv'
    """
    path = _DATA_DIR / filename
    if not path.is_file():
        available = sorted(p.name for p in _DATA_DIR.glob("*.csv"))
        raise ValueError(f"no bundled data file {filename!r}; available: {available}")
    return path


def _read_rows(filename: str) -> Tuple[List[str], List[List[str]]]:
    with open(data_path(filename), newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def load_eight_schools(dtype: torch.dtype = torch.float32) -> Dict[str, object]:
    """The eight-schools data (Rubin 1981): coaching effects and their standard errors.

    :return: a dict with ``"schools"`` (names ``A``..``H``), ``"effect"`` and
        ``"stderr"`` (tensors of shape ``(8,)``).

    Example::

        >>> from ember.demo.datasets import load_eight_schools
        >>> d = load_eight_schools()
        >>> d["effect"].tolist()
        [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
    """
    _, rows = _read_rows("eight_schools.csv")
    return {
        "schools": [r[0] for r in rows],
        "effect": torch.tensor([float(r[1]) for r in rows], dtype=dtype),
        "stderr": torch.tensor([float(r[2]) for r in rows], dtype=dtype),
    }


def load_iris(dtype: torch.dtype = torch.float32) -> Dict[str, object]:
    """Fisher's iris data: 150 flowers, 4 measurements (cm) and the species.

    :return: a dict with ``"data"`` (shape ``(150, 4)``), ``"features"``,
        ``"species"`` (a ``(150,)`` long tensor of class indices) and
        ``"species_names"``.

    Example::

        >>> from ember.demo.datasets import load_iris
        >>> d = load_iris()
        >>> d["data"].shape, d["species_names"]
        (torch.Size([150, 4]), ['setosa', 'versicolor', 'virginica'])
    """
    header, rows = _read_rows("iris.csv")
    names = sorted({r[4] for r in rows})
    return {
        "data": torch.tensor([[float(v) for v in r[:4]] for r in rows], dtype=dtype),
        "features": header[:4],
        "species": torch.tensor([names.index(r[4]) for r in rows]),
        "species_names": names,
    }


def load_digits(dtype: torch.dtype = torch.float32) -> Dict[str, torch.Tensor]:
    """The 8×8 handwritten digits (UCI test set, as bundled by scikit-learn).

    :return: a dict with ``"images"`` (shape ``(1797, 64)``, pixel counts 0..16,
        row-major 8×8) and ``"labels"`` (shape ``(1797,)``).

    Example::

        >>> from ember.demo.datasets import load_digits
        >>> d = load_digits()
        >>> d["images"].shape, int(d["images"].max())
        (torch.Size([1797, 64]), 16)
    """
    _, rows = _read_rows("digits.csv")
    values = torch.tensor([[int(v) for v in r] for r in rows])
    return {"images": values[:, :64].to(dtype), "labels": values[:, 64]}


def load_diabetes(dtype: torch.dtype = torch.float32) -> Dict[str, object]:
    """The diabetes data (Efron, Hastie, Johnstone and Tibshirani 2004, "Least Angle
    Regression"): ten baseline measurements of 442 patients and a measure of disease
    progression one year later, in the original units.

    :return: a dict with ``"data"`` (shape ``(442, 10)``: age, sex, bmi, bp and six
        blood serum measurements s1..s6), ``"features"`` (their names) and
        ``"target"`` (shape ``(442,)``).

    Example::

        >>> from ember.demo.datasets import load_diabetes
        >>> d = load_diabetes()
        >>> d["data"].shape, d["features"][:4], d["target"][:3].tolist()
        (torch.Size([442, 10]), ['age', 'sex', 'bmi', 'bp'], [151.0, 75.0, 141.0])
    """
    header, rows = _read_rows("diabetes.csv")
    values = torch.tensor([[float(v) for v in r] for r in rows], dtype=dtype)
    return {"data": values[:, :10], "features": header[:10], "target": values[:, 10]}


def train_test_split(n: int, num_test: int, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """A reproducible random split of ``range(n)`` into train and test indices.

    Example::

        >>> from ember.demo.datasets import train_test_split
        >>> train, test = train_test_split(10, 3)
        >>> len(train), len(test), sorted(train.tolist() + test.tolist()) == list(range(10))
        (7, 3, True)
    """
    if not 0 < num_test < n:
        raise ValueError(f"train_test_split: need 0 < num_test < n, got num_test={num_test}, n={n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[num_test:], perm[:num_test]
