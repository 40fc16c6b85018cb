"""A deterministic, seeded, per-identity train/test split that is recorded in the workspace.

Each person's files are shuffled by a generator seeded with ``(seed, crc32(person))`` and the
first ``test_per_identity`` become held-out test images. A person's split therefore depends only
on the seed and that person's own files: adding or removing other people never reshuffles it,
which continual forgetting relies on.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from facerec.core.errors import DataError


@dataclass
class Split:
    seed: int
    test_per_identity: int
    train: dict[str, list[str]]  # person -> relative paths
    test: dict[str, list[str]]

    def to_dict(self) -> dict:
        return {"seed": self.seed, "test_per_identity": self.test_per_identity,
                "train": self.train, "test": self.test}

    @classmethod
    def from_dict(cls, data: dict) -> "Split":
        return cls(int(data["seed"]), int(data["test_per_identity"]), dict(data["train"]), dict(data["test"]))

    def paths(self, part: str) -> list[str]:
        """All relative paths of ``part`` ("train" or "test"), person by person."""
        return [p for files in getattr(self, part).values() for p in files]


def make_split(files_by_identity: dict[str, list[str]], test_per_identity: int, seed: int) -> Split:
    """Hold out ``test_per_identity`` images of every person.

    Raises:
        DataError: a person has too few images to keep at least one for training.
    """
    if test_per_identity < 1:
        raise DataError(f"--test-per-identity must be >= 1, got {test_per_identity}")
    train, test = {}, {}
    for person, files in files_by_identity.items():
        if len(files) < test_per_identity + 1:
            raise DataError(
                f"person {person!r} has {len(files)} image(s); the split needs at least {test_per_identity + 1} "
                f"({test_per_identity} held out + 1 to train): pass --min-images {test_per_identity + 1} to leave such people out"
            )
        rng = np.random.default_rng([seed, zlib.crc32(person.encode("utf-8"))])
        order = [files[i] for i in rng.permutation(len(files))]
        test[person] = sorted(order[:test_per_identity])
        train[person] = sorted(order[test_per_identity:])
    return Split(seed, test_per_identity, train, test)
