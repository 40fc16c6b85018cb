"""Forgetting measured beyond the identity head, on copies of a workspace (the original is untouched).

A classifier that no longer names a person may still embed their faces close together (they can
be verified against each other), may still betray that their photos were training data, and may
relearn them from a little fine-tuning on *other* people. For one request and method this runs:

- **verification-level forgetting**: TAR among the forgotten people's own images (genuine pairs
  within each person) at the threshold that gives ``far`` on the retained people's impostor pairs —
  before, after, and for a model retrained without them; beside the same TAR for retained people;
- **membership inference** (SalUn's confidence attack, Fan et al. ICLR 2024): an RBF SVC (C=3)
  learns "member" from the true-class softmax confidence of retained training images against
  retained held-out images, then judges the forgotten people's training images; the efficacy is
  the share judged non-member (higher = more forgotten; a retrained model is the reference);
- **relearning**: fine-tune the unlearnt model briefly on retained data only, then measure acc_f.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from facerec.data.transforms import to_tensor
from facerec.device import resolve_device
from facerec.errors import FaceRecError
from facerec.evaluation import accept_rate, cross_person_scores, threshold_at_far
from facerec.recognition import embed_images, validate_name
from facerec.train import top1_accuracy
from facerec.workspace import Workspace

from .baselines import BaselineConfig, run_baseline
from .gslora import Data
from .request import _join, _read_all, _rows_of, forget_people


def _sets(ws: Workspace, names: list[str]) -> dict[str, Data]:
    manifest = ws.manifest()
    rows = {n: i for i, n in enumerate(manifest["identities"]) if n is not None}
    split = ws.split()
    root = Path(manifest["data"]["root"])
    unknown = [n for n in names if n not in rows]
    if unknown:
        raise FaceRecError(f"not an identity of this workspace's model: {', '.join(unknown)}")
    retained = [p for p in rows if p not in names]

    def part(people, which):
        return _join([_rows_of(_read_all(root, getattr(split, which).get(p, [])), rows[p]) for p in people])

    return {"forget_train": part(names, "train"), "forget_test": part(names, "test"),
            "retain_train": part(retained, "train"), "retain_test": part(retained, "test")}


def verification_forgetting(model, sets: dict[str, Data], far: float, device) -> dict:
    """TAR of forgotten and of retained people's genuine pairs at a FAR set on retained impostors."""
    forget = _join([sets["forget_train"], sets["forget_test"]])
    retain = _join([sets["retain_train"], sets["retain_test"]])
    f_genuine, _ = cross_person_scores(embed_images(model, forget.images, device), forget.labels)
    r_genuine, r_impostor = cross_person_scores(embed_images(model, retain.images, device), retain.labels)
    threshold = threshold_at_far(r_impostor, far)
    return {"far": far, "threshold": threshold, "tar_forgotten": accept_rate(f_genuine, threshold),
            "tar_retained": accept_rate(r_genuine, threshold), "forgotten_pairs": int(len(f_genuine))}


@torch.no_grad()
def _confidence(model, data: Data, device, scale: float = 64.0) -> np.ndarray:
    """Softmax probability of the true class (no margin) per image."""
    out = []
    for i in range(0, len(data), 128):
        logits = model(to_tensor(data.images[i:i + 128]).to(device)) * scale
        probs = torch.softmax(logits.float(), dim=1)
        out.append(probs[torch.arange(len(probs)), torch.from_numpy(data.labels[i:i + 128])].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def mia_efficacy(model, sets: dict[str, Data], device) -> float:
    """Share of the forgotten people's training images an SVC on confidences calls non-member."""
    from sklearn.svm import SVC

    non_members = sets["retain_test"]
    pick = np.random.default_rng(0).permutation(len(sets["retain_train"]))[:len(non_members)]  # all people, not the first few
    members = Data(sets["retain_train"].images[pick], sets["retain_train"].labels[pick])
    if len(non_members) == 0 or len(sets["forget_train"]) == 0:
        return float("nan")
    x = np.concatenate([_confidence(model, members, device), _confidence(model, non_members, device)])[:, None]
    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return float((attack.predict(_confidence(model, sets["forget_train"], device)[:, None]) == 0).mean())


def _measure(model, sets, far, device) -> dict:
    return {"acc_f": top1_accuracy(model, sets["forget_test"].images, sets["forget_test"].labels, device),
            "acc_r": top1_accuracy(model, sets["retain_test"].images, sets["retain_test"].labels, device),
            "verification": verification_forgetting(model, sets, far, device),
            "mia_efficacy": mia_efficacy(model, sets, device)}


def evaluate_forgetting(workspace, names: list[str], *, method: str = "gs-lora", far: float = 1e-2,
                        relearn_steps: int = 30, retrain: bool = True, shots: int | None = None,
                        device: str | None = None, show_progress: bool = True) -> dict:
    """Run the request on copies of ``workspace`` and measure it beyond the head (see module doc)."""
    names = list(dict.fromkeys(validate_name(n) for n in names))
    dev = resolve_device(device)
    source = Workspace(workspace)
    sets = _sets(source, names)
    report = {"method": method, "people": len(names), "images": {k: len(v) for k, v in sets.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        def forgotten_copy(how: str) -> tuple[dict, object]:
            copy = Path(tmp) / how
            shutil.copytree(source.root, copy, ignore=shutil.ignore_patterns(".lock", "train-state.pt"))
            request = forget_people(copy, names, method=how, shots=shots, device=device, show_progress=show_progress)
            return request, Workspace(copy).load_model(dev)

        report["before"] = _measure(source.load_model(dev), sets, far, dev)
        request, model = forgotten_copy(method)
        report["after"] = _measure(model, sets, far, dev)
        report["seconds"] = request["seconds"]
        # relearning: fine-tuning touches only retained people (the forget batch is unused by "finetune")
        run_baseline("finetune", model, Data(sets["forget_train"].images[:1], sets["forget_train"].labels[:1]),
                     sets["retain_train"], BaselineConfig(steps=relearn_steps, lr=1e-4), device=dev,
                     show_progress=show_progress)
        report["after_relearning"] = {"steps": relearn_steps, "acc_f": top1_accuracy(
            model, sets["forget_test"].images, sets["forget_test"].labels, dev)}
        if retrain:
            retrain_request, retrained = forgotten_copy("retrain")
            report["retrained"] = {**_measure(retrained, sets, far, dev), "seconds": retrain_request["seconds"]}
    return report
