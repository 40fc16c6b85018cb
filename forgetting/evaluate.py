"""Forgetting measured beyond the identity head, on copies of a workspace (the original is untouched).

A classifier that no longer names a person may still embed their faces close together (they can
be verified against each other), may still betray that their photos were training data, and may
relearn them from a little fine-tuning. For one request and each method this runs, and reports
every number beside the same number for a model retrained without the people (the reference:
what "never saw them" looks like), as a gap:

- **verification**: TAR among the forgotten people's own images (genuine pairs within each
  person) at the threshold that gives ``far`` on the retained people's impostor pairs, beside
  the same TAR for retained people;
- **membership inference, loss attack** (Yeom et al., CSF 2018; the threshold attack that stays
  informative on models that generalise well, unlike a confidence SVC): the score is the
  negative cross-entropy of the true class (no margin). ``auc``: forgotten people's training
  images (members before the forget) against their held-out images (never members), 0.5 = no
  signal; ``tpr_at_fpr``: share of their training images scored above the threshold that lets
  ``fpr`` of the retained people's held-out images (known non-members) through;
- **SalUn's confidence attack** (Fan et al., ICLR 2024): an RBF SVC on true-class confidence,
  share of the forgotten training images judged non-member (kept for comparison with SalUn);
- **relearning**: Acc_f after ``relearn_steps`` of fine-tuning on retained data only, and after
  the same on retained data plus ``relearn_shots`` images of each forgotten person.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facerec.data.transforms import to_tensor
from facerec.core.device import resolve_device
from facerec.core.errors import FaceRecError
from facerec.metrics import accept_rate, cross_person_scores, threshold_at_far
from facerec.recognition.pipeline import embed_images, validate_name
from facerec.training.trainer import top1_accuracy
from facerec.workspace.galleries import scratch_copy
from facerec.workspace.workspace import Workspace, without_onnx_copies

from .baselines import BaselineConfig, run_baseline
from .gslora import Data
from .request import ForgetRequest, run_request
from .request_data import join, people_images

SCALE = 64.0  # the logits' scale: scores are computed on what the classifier outputs


def _sets(ws: Workspace, names: list[str]) -> dict[str, Data]:
    manifest = ws.manifest()
    rows = {n: i for i, n in enumerate(manifest["identities"]) if n is not None}
    split = ws.split()
    root = Path(manifest["data"]["root"])
    unknown = [n for n in names if n not in rows]
    if unknown:
        raise FaceRecError(f"not an identity of this workspace's model: {', '.join(unknown)}")
    return task_sets(root, split, rows, names, [p for p in rows if p not in names])


def task_sets(root: Path, split, rows: dict[str, int], names: list[str], retained: list[str]) -> dict[str, Data]:
    """``forget_train``, ``forget_test``, ``retain_train``, ``retain_test``: the images every measure reads."""
    return {f"{who}_{part}": people_images(root, getattr(split, part), rows, people)
            for who, people in (("forget", names), ("retain", retained)) for part in ("train", "test")}


def verification_forgetting(model, sets: dict[str, Data], far: float, device, at: float | None = None) -> dict:
    """TAR of forgotten and of retained people's genuine pairs at a FAR set on retained impostors
    (and, with ``at``, the forgotten people's TAR at that threshold: the workspace's, as deployed)."""
    forget = join([sets["forget_train"], sets["forget_test"]])
    retain = join([sets["retain_train"], sets["retain_test"]])
    f_genuine, _ = cross_person_scores(embed_images(model, forget.images, device), forget.labels)
    r_genuine, r_impostor = cross_person_scores(embed_images(model, retain.images, device), retain.labels)
    threshold = threshold_at_far(r_impostor, far)
    return {"far": far, "threshold": threshold, "tar_forgotten": accept_rate(f_genuine, threshold),
            "tar_retained": accept_rate(r_genuine, threshold), "forgotten_pairs": int(len(f_genuine)),
            **({"tar_forgotten_at": accept_rate(f_genuine, at), "at": at} if at is not None else {})}


@torch.no_grad()
def _true_class(model, data: Data, device) -> tuple[np.ndarray, np.ndarray]:
    """``(softmax probability, cross-entropy)`` of the true class per image (no margin)."""
    probs, losses = [], []
    for i in range(0, len(data), 128):
        logits = model(to_tensor(data.images[i:i + 128]).to(device)).float() * SCALE
        labels = torch.from_numpy(data.labels[i:i + 128]).to(device)
        probs.append(torch.softmax(logits, 1)[torch.arange(len(labels)), labels].cpu().numpy())
        losses.append(F.cross_entropy(logits, labels, reduction="none").cpu().numpy())
    return (np.concatenate(probs), np.concatenate(losses)) if probs else (np.zeros(0), np.zeros(0))


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half): ROC AUC."""
    if not len(positive) or not len(negative):
        return float("nan")
    pos, neg = np.asarray(positive, np.float64)[:, None], np.asarray(negative, np.float64)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def loss_attack(model, sets: dict[str, Data], device, fprs=(0.01, 0.05)) -> dict:
    """The loss threshold attack of the module docstring."""
    members = -_true_class(model, sets["forget_train"], device)[1]
    never = -_true_class(model, sets["forget_test"], device)[1]
    calibration = -_true_class(model, sets["retain_test"], device)[1]
    out = {"auc": auc(members, never)}
    for fpr in fprs:
        threshold = threshold_at_far(calibration, fpr) if len(calibration) else float("inf")
        out[f"tpr_at_fpr_{fpr:g}"] = accept_rate(members, threshold)
    return out


def mia_efficacy(model, sets: dict[str, Data], device) -> float:
    """Share of the forgotten people's training images an SVC on confidences calls non-member."""
    from sklearn.svm import SVC

    non_members = sets["retain_test"]
    pick = np.random.default_rng(0).permutation(len(sets["retain_train"]))[:len(non_members)]  # all people, not the first few
    members = Data(sets["retain_train"].images[pick], sets["retain_train"].labels[pick])
    if len(non_members) == 0 or len(sets["forget_train"]) == 0:
        return float("nan")
    x = np.concatenate([_true_class(model, members, device)[0], _true_class(model, non_members, device)[0]])[:, None]
    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return float((attack.predict(_true_class(model, sets["forget_train"], device)[0][:, None]) == 0).mean())


def _measure(model, sets, far, device) -> dict:
    return {"acc_f": top1_accuracy(model, sets["forget_test"].images, sets["forget_test"].labels, device),
            "acc_r": top1_accuracy(model, sets["retain_test"].images, sets["retain_test"].labels, device),
            "verification": verification_forgetting(model, sets, far, device),
            "mia_loss": loss_attack(model, sets, device),
            "mia_efficacy": mia_efficacy(model, sets, device)}


def _few_per_person(data: Data, shots: int) -> Data:
    keep = np.concatenate([np.flatnonzero(data.labels == c)[:shots] for c in np.unique(data.labels)]) if len(data) else []
    return Data(data.images[keep], data.labels[keep])


def relearning(model_dir: Path, sets: dict[str, Data], steps: int, shots: int, device, show_progress: bool) -> dict:
    """Acc_f after fine-tuning (the ``finetune`` baseline's loop, lr 1e-4) on retained data only,
    and on retained data plus ``shots`` training images of each forgotten person."""
    out = {"steps": steps, "shots": shots}
    few = _few_per_person(sets["forget_train"], shots)
    for key, replay in (("retained_only", sets["retain_train"]), ("with_forget_shots", join([sets["retain_train"], few]))):
        model = Workspace(model_dir).load_model(device)
        run_baseline("finetune", model, Data(sets["forget_train"].images[:1], sets["forget_train"].labels[:1]),
                     replay, BaselineConfig(steps=steps, steps_per_person=0, lr=1e-4), device=device,
                     show_progress=show_progress)
        out[key] = top1_accuracy(model, sets["forget_test"].images, sets["forget_test"].labels, device)
    return out


BEYOND_PATHS = {"acc_f": ("acc_f",), "acc_r": ("acc_r",), "tar_forgotten": ("verification", "tar_forgotten"),
                "mia_auc": ("mia_loss", "auc"), "mia_tpr_at_fpr_0.01": ("mia_loss", "tpr_at_fpr_0.01"),
                "relearned_acc_f": ("relearning", "retained_only"),
                "relearned_acc_f_with_shots": ("relearning", "with_forget_shots")}


def flat(result: dict) -> dict:
    """A measured result's beyond-the-head numbers by name (None where missing)."""
    def get(d, path):
        for key in path:
            d = d.get(key, {}) if isinstance(d, dict) else {}
        return d if isinstance(d, (int, float)) else None

    return {name: get(result, path) for name, path in BEYOND_PATHS.items()}


def gaps(result: dict, reference: dict, keys=None) -> dict:
    """``result − reference`` per name of two flat results (0 = behaves like the retrained model;
    None where either is missing)."""
    return {k: None if result.get(k) is None or reference.get(k) is None else round(result[k] - reference[k], 4)
            for k in (keys if keys is not None else result)}


def evaluate_forgetting(workspace, names: list[str], *, method: str | list[str] = "gs-lora", far: float = 1e-2,
                        relearn_steps: int = 30, relearn_shots: int = 2, retrain: bool = True,
                        shots: int | None = None, config=None, device: str | None = None,
                        show_progress: bool = True) -> dict:
    """Run the request with each method on copies of ``workspace`` and measure it beyond the head
    (see the module docstring); one retrained reference serves every method. ``config``: the
    GS-LoRA methods' :class:`~forgetting.gslora.GSLoRAConfig` (default: its defaults)."""
    names = list(dict.fromkeys(validate_name(n) for n in names))
    methods = [method] if isinstance(method, str) else list(method)
    dev = resolve_device(device)
    source = Workspace(workspace)
    sets = _sets(source, names)
    report = {"methods": methods, "people": len(names), "images": {k: len(v) for k, v in sets.items()}}
    with tempfile.TemporaryDirectory() as tmp, without_onnx_copies():
        def forgotten_copy(how: str) -> tuple[dict, object, Path]:
            copy = Path(tmp) / how
            scratch_copy(source.root, copy)
            request = run_request(copy, ForgetRequest(tuple(names), how, config, shots=shots), device=device,
                                  show_progress=show_progress)
            return request, Workspace(copy).load_model(dev), copy

        report["before"] = _measure(source.load_model(dev), sets, far, dev)
        if retrain:
            request, model, copy = forgotten_copy("retrain")
            report["retrained"] = {**_measure(model, sets, far, dev), "seconds": request["seconds"],
                                   "relearning": relearning(copy, sets, relearn_steps, relearn_shots, dev, show_progress)}
        report["results"] = {}
        for how in methods:
            request, model, copy = forgotten_copy(how)
            result = {**_measure(model, sets, far, dev), "seconds": request["seconds"],
                      "relearning": relearning(copy, sets, relearn_steps, relearn_shots, dev, show_progress)}
            if retrain:
                result["gap_to_retrained"] = gaps(flat(result), flat(report["retrained"]))
            report["results"][how] = result
    if len(methods) == 1:  # the single-method shape of earlier reports
        report.update(method=methods[0], after=report["results"][methods[0]])
    return report
