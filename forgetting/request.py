"""``facerec forget``: one erasure request (:class:`ForgetRequest`, built alike by the CLI, the server,
the Python API and the benchmarks) as one transaction over a workspace (:func:`run_request`), in
named stages.

1. **plan**: resolve the names (people the model was trained on, i.e. head rows, must be
   unlearnt; enrolled people must leave the gallery and crops; a name that is neither changes
   nothing) and the method's configuration;
2. **gather**: the forget set, the replay set and the held-out sets (``request_data``): from the
   data root when it is there, else from the workspace's crops and replay buffer;
3. **unlearn**: measure before, run GS-LoRA / GS-LoRA++ (merged) or a baseline, measure after;
4. **stage**: write the new weights under their content hash, re-embed the remaining gallery
   into ``gallery.staging``, re-calibrate the threshold when it was calibrated on enrolled
   vectors, and check the forgotten people's held-out photos against it;
5. **commit**: one atomic manifest write switches the model, blanks the people's head rows (the
   rows stay: the head keeps all classes, as in the paper), drops them from the split, appends
   the ledger entry (keyed hashes only) and marks the request pending;
6. **clean up**: swap the gallery in, delete crops, replay crops, dataset folders inside the
   workspace and the resume checkpoint, then clear ``pending``.

Nothing in the workspace changes before stage 5, and stage 6 is finished by the next command if
the process dies during it, so a failed or killed forget leaves the previous version in place
and can simply be run again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.workspace.recovery import quarantined_people
from facerec.workspace.consistency import open_live_gallery
from facerec.workspace.galleries import store
from facerec.workspace.erasure import complete_pending, erasure_key, name_hash, pending_seal
from facerec.core.errors import FaceRecError
from facerec.metrics import accept_rate, threshold_at_far
from facerec.workspace.layout import real_folders
from facerec.recognition.calibration import enrolled_pair_scores
from facerec.recognition.pipeline import FacePipeline, central_face_of, build_gallery, validate_name
from facerec.training.trainer import top1_accuracy
from facerec.workspace.workspace import Workspace

from .baselines import BASELINES, BaselineConfig, run_baseline
from .gslora import Data, GSLoRAConfig, unlearn
from .metrics import h_ceiling, h_mean
from .request_data import RequestData, gather

GS_LORA_METHODS = ("gs-lora", "gs-lora++", "gs-lora-calibrated", "gs-lora++-calibrated", "gs-lora-paper",
                   "gs-lora++-paper")  # -paper: the paper's objective; -calibrated: objectives' calibrated one
METHODS = GS_LORA_METHODS + BASELINES
REPORTED_METRICS = ("acc_f", "acc_f_before", "acc_r", "acc_r_before", "acc_o", "h_mean", "h_ceiling",
                    "zero_group_share", "trainable_ratio", "seconds")


@dataclass(frozen=True)
class Plan:
    """What a request will do, settled before any work: the people, where they are, the method."""

    ws: Workspace
    manifest: dict
    names: list[str]
    rows: dict[str, int]  # head row of every person the model still knows
    in_model: list[str]  # the request's people that must be unlearnt
    method: str
    cfg: GSLoRAConfig
    baseline_cfg: BaselineConfig
    data_root: Path | None  # the training data, when it is still there
    shots: int | None = None
    replay_fraction: float = 1.0

    def summary(self) -> dict:
        """The report's first lines: who, how many, how."""
        return {"people": self.names, "forgotten": len(self.names), "method": self.method,
                "unlearned": len(self.in_model)}


@dataclass(frozen=True)
class ForgetRequest:
    """One erasure request: who, how, from what. The CLI, the server, the Python API and the
    benchmarks all build one (:meth:`build` from their options) and hand it to :func:`run_request`.
    Checked when made: the names are valid person names (repeats dropped), at least one, the method
    is known, ``shots`` and ``replay_fraction`` are in range."""

    people: tuple[str, ...]
    method: str = "gs-lora"
    config: GSLoRAConfig | None = None  # GS-LoRA's settings; None: the defaults
    baseline_config: BaselineConfig | None = None
    shots: int | None = None  # replay K images per retained person
    replay_fraction: float = 1.0  # or this share of each retained person's images
    images: tuple[str, ...] = ()  # images of the one person to unlearn from, beside the data
    detector: str = "aligned"  # how ``images`` are read

    def __post_init__(self):
        people = [self.people] if isinstance(self.people, str) else self.people
        object.__setattr__(self, "people", tuple(dict.fromkeys(validate_name(n) for n in people)))
        object.__setattr__(self, "images", tuple(self.images or ()))
        if not self.people:
            raise FaceRecError("name at least one person to forget")
        if self.method not in METHODS:
            raise FaceRecError(f"unknown forgetting method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.shots is not None and self.shots < 1:
            raise FaceRecError(f"--shots must be >= 1, got {self.shots}")
        if not 0 < self.replay_fraction <= 1:
            raise FaceRecError(f"--replay must be in (0, 1], got {self.replay_fraction}")

    @classmethod
    def build(cls, people, *, method: str = "gs-lora", settings: list[str] = (), steps: int | None = None,
              seed: int | None = None, **fields) -> "ForgetRequest":
        """A request from a front end's options: ``settings`` are GS-LoRA's ``KEY=VALUE`` options
        (``--set``), ``steps`` exactly that many unlearning steps (:func:`request_config`)."""
        return cls(people, method, request_config(list(settings), steps=steps, seed=seed), **fields)


def run_request(workspace, request: ForgetRequest, *, device: str | None = None, show_progress: bool = True,
                before_commit=None) -> dict:
    """Carry out one forget request; returns the report (the stages are in the module docstring).
    ``before_commit()``, when given, runs after all the work and before the commit.

    Raises:
        FaceRecError: a name is unknown to the workspace, or there is nothing to learn from.
    """
    t_start = time.perf_counter()
    plan = plan_request(workspace, request)
    galleries = store(plan.ws.root, plan.manifest)
    doomed_vectors = galleries.person_vectors(plan.names)  # a database gallery: what to look for afterwards
    pipe = FacePipeline(plan.ws, detector=request.detector, device=device)
    report = {**plan.summary(), "model_version_before": pipe.model_version}
    data, weights = None, None
    if plan.in_model:
        data = gather_data(plan, pipe, list(request.images))
        report.update(unlearn_stage(plan, pipe, data, show_progress))
        report["model_version"], weights = stage_weights(plan, pipe)
    else:
        report["model_version"] = pipe.model_version
    report["gallery"], recognition = stage_gallery(plan, pipe, data, report["model_version_before"],
                                                   report.get("unknown_rate_before_as_stranger"))
    if before_commit is not None:
        before_commit()
    report["request"] = commit(plan, report, weights, recognition)
    report["removed"] = complete_pending(plan.ws)  # clean up
    if (database := galleries.erasure_check(plan.names, doomed_vectors)) is not None:
        report["database"] = database  # reclaimed, then looked for in its files
    report["seconds_total"] = round(time.perf_counter() - t_start, 2)
    return report


def forget_people(workspace, names: list[str], *, device: str | None = None, show_progress: bool = True,
                  fail_before_commit: bool = False, **request) -> dict:
    """:func:`run_request` with the request's fields as keywords (``method``, ``config``, ``shots``, ...);
    ``fail_before_commit`` crashes after all the work, before the commit (the crash tests)."""

    def crash():
        raise RuntimeError("injected failure before the commit")

    return run_request(workspace, ForgetRequest(tuple(names), **request), device=device, show_progress=show_progress,
                       before_commit=crash if fail_before_commit else None)


def request_config(options: list[str] = (), *, steps: int | None = None, seed: int | None = None) -> GSLoRAConfig:
    """GS-LoRA's defaults with ``KEY=VALUE`` options (``--set``) applied; ``steps``: exactly that many
    unlearning steps, not scaled by the number of people. A bad option is a FaceRecError."""
    exact = [f"steps={steps}", "steps_per_person=0"] if steps else []
    try:
        return GSLoRAConfig().with_options([*exact, *([f"seed={seed}"] if seed is not None else []), *options])
    except ValueError as err:
        raise FaceRecError(str(err)) from None


def plan_request(workspace, request: ForgetRequest) -> Plan:
    """Stage 1: settle who is unlearnt, from what, with which configuration."""
    names, method, config = list(request.people), request.method, request.config
    shots, replay_fraction, baseline_config = request.shots, request.replay_fraction, request.baseline_config
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    if not ws.recovered:  # outside the writer lock (a benchmark's copy): an earlier request's clean-up first
        complete_pending(ws)
    manifest = ws.manifest()
    recorded = manifest.get("data", {}).get("root")
    root = Path(recorded or ws.root)
    if root.is_file() and root.resolve().is_relative_to(ws.root.resolve()):
        raise FaceRecError(f"the training data {root} is a record file inside the workspace: people cannot be "
                           "erased from it; keep record datasets outside the workspace")
    rows = {name: i for i, name in enumerate(manifest["identities"]) if name is not None}
    enrolled = _enrolled_people(ws)  # also: a damaged gallery stops the request here (exit 2), unchanged
    unknown = [n for n in names if n not in rows and n not in enrolled]
    if unknown:
        raise FaceRecError(f"not known to this workspace (never trained on, not enrolled, or already forgotten): "
                           f"{', '.join(unknown)}; nothing was changed")
    trained_with = manifest.get("training", {}).get("config", {})
    cfg = config or GSLoRAConfig()
    cfg = GSLoRAConfig(**{**cfg.to_dict(), "prototype": method.startswith("gs-lora++"),
                          "objective": ("paper" if method.endswith("-paper") else "calibrated"
                                        if method.endswith("-calibrated") else cfg.objective),
                          "margin": trained_with.get("margin", cfg.margin)})
    init = manifest.get("training", {}).get("initialised_from")
    init_file = manifest.get("training", {}).get("initialised_from_file")
    base_cfg = baseline_config or BaselineConfig(seed=cfg.seed)
    base_cfg = BaselineConfig(**{**base_cfg.to_dict(), "margin": cfg.margin,
                                 "retrain_epochs": trained_with.get("epochs", base_cfg.retrain_epochs),
                                 "retrain_config": trained_with or None,
                                 "retrain_from": init if init not in (None, "scratch") else None,
                                 "retrain_from_file": init_file})
    in_model = [n for n in names if n in rows]
    data_root = Path(recorded) if recorded and Path(recorded).exists() else None
    return Plan(ws, manifest, names, rows, in_model, method, cfg, base_cfg, data_root, shots, replay_fraction)


def gather_data(plan: Plan, pipe: FacePipeline, images: list[str]) -> RequestData:
    """Stage 2: the forget, replay and held-out sets (``request_data``), plus ``--images``."""
    extra = []
    for path in images:
        found = pipe.read_faces(path)
        if found.status != "ok":
            raise FaceRecError(f"{path}: {found.status}")
        if len(plan.in_model) != 1:
            raise FaceRecError("--images needs exactly one person per request (whose images are they?)")
        extra.append(found.crops[central_face_of(found)])
    data = gather(plan.ws.root, plan.manifest, plan.ws.split(), plan.rows, plan.in_model, plan.data_root,
                  extra=extra, replay_fraction=plan.replay_fraction, shots=plan.shots, seed=plan.cfg.seed)
    if len(data.forget) == 0:
        raise FaceRecError(f"no images of {', '.join(plan.in_model)} are available to unlearn from (data root "
                           f"{plan.manifest.get('data', {}).get('root')} unreadable, no crops or replay crops); "
                           "pass --images")
    return data


def _accuracy(model, data: Data, device) -> float:
    return top1_accuracy(model, data.images, data.labels, device)  # nan when there are no images


def unlearn_stage(plan: Plan, pipe: FacePipeline, data: RequestData, show_progress: bool) -> dict:
    """Stage 3: measure, unlearn in place (``pipe.model``), measure again; returns the report part."""
    model, dev = pipe.model, pipe.device
    before = {"acc_f_before": _accuracy(model, data.forget_test, dev),
              "acc_r_before": _accuracy(model, data.retain_test, dev),
              "acc_o_before": _accuracy(model, data.old_test, dev)}
    # the held-out photos against everyone else before the forget: how a stranger to the gallery fares
    as_stranger = gallery_check(pipe, "gallery", list(data.forget_test.images), plan.in_model,
                                pipe.threshold)
    if plan.method in BASELINES:
        stats = run_baseline(plan.method, model, data.forget, data.replay, plan.baseline_cfg, device=dev,
                             show_progress=show_progress)
    else:
        reference = starting_model(plan, dev) if plan.cfg.objective == "reference" else None
        stats = unlearn(model, data.forget, data.replay, plan.cfg, device=dev, show_progress=show_progress,
                        reference=reference)
    model.eval()
    acc_f, acc_r = _accuracy(model, data.forget_test, dev), _accuracy(model, data.retain_test, dev)
    return {**before, "acc_f": acc_f, "acc_r": acc_r, "acc_o": _accuracy(model, data.old_test, dev),
            "h_mean": h_mean(acc_r, acc_f, before["acc_f_before"]),
            "h_ceiling": h_ceiling(before["acc_r_before"], before["acc_f_before"]),
            "group_norms": stats.get("group_norms"), "delta_norms": stats.get("delta_norms"),
            "zero_group_share": stats.get("zero_group_share"),
            "trainable_parameters": stats["trainable_parameters"], "trainable_ratio": stats["trainable_ratio"],
            "seconds": stats["seconds"], "unknown_rate_before_as_stranger": as_stranger.get("unknown_rate"),
            "images": {"source": data.source, "forget": len(data.forget), "replay": len(data.replay),
                       "forget_test": len(data.forget_test), "retain_test": len(data.retain_test),
                       "earlier_forgotten_test": len(data.old_test)},
            "config": stats["config"]}


def starting_model(plan: Plan, device):
    """The model the workspace was fine-tuned from (it never saw the workspace's people), or None
    when it was trained from scratch or that model is no longer there as it was: the ``reference``
    objective's targets (``gslora.unlearn`` takes the stranger objective without them)."""
    from facerec import pretrained

    if not plan.baseline_cfg.retrain_from:
        return None
    try:
        return pretrained.load_model(device, plan.baseline_cfg.retrain_from_file, plan.baseline_cfg.retrain_from).eval()
    except (FaceRecError, OSError):
        return None


def stage_weights(plan: Plan, pipe: FacePipeline) -> tuple[str, Path]:
    """Stage 4a: the unlearnt weights under their content hash (the manifest still points to the old)."""
    version, weights = plan.ws.write_weights(pipe.model, plan.manifest["model"]["name"])
    pipe.model_version = version
    return version, weights


def stage_gallery(plan: Plan, pipe: FacePipeline, data: RequestData | None, version_before: str,
                  before_as_stranger: float | None = None) -> tuple[dict, dict]:
    """Stage 4b: the remaining gallery re-embedded into ``gallery.staging``, its threshold, and the
    gallery check of the forgotten people's held-out photos (beside ``before_as_stranger``, their
    unknown rate against the same gallery before the forget); returns (report, recognition record)."""
    staging, galleries = "gallery.staging", pipe.gallery_store
    vectors = build_gallery(pipe, staging, exclude=set(plan.names))
    recognition = dict(plan.manifest.get("recognition", {}))
    report = {"re_embedded": vectors, "threshold": recognition.get("threshold")}
    if vectors and "enrolled_vectors" in recognition and pipe.model_version != version_before:
        report.update(_recalibrate(galleries, staging, recognition))
        recognition["threshold"], recognition["enrolled_vectors"] = report["threshold"], vectors
        recognition.pop("recognizer", None)  # measured now with the workspace's own model
    if plan.in_model and vectors and data is not None:
        check = gallery_check(pipe, staging, list(data.forget_test.images), plan.in_model, report["threshold"] or 0.4)
        check["unknown_rate_before_as_stranger"] = before_as_stranger
        check["matched_forgotten"] = 0 if set(plan.in_model).isdisjoint(_gallery_people(galleries, staging)) else None
        report["check"] = check
    return report, recognition


def commit(plan: Plan, report: dict, weights: Path | None, recognition: dict) -> str:
    """Stage 5: one atomic manifest write; returns the request id. The request is left pending."""
    ws, manifest, names = plan.ws, plan.manifest, plan.names
    key = erasure_key(ws, create=True)
    request = f"{len(manifest.get('erasure', {}).get('ledger', [])) + 1:04d}-{uuid.uuid4().hex[:8]}"
    entry = {
        "request": request, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "people": [name_hash(key, n) for n in names], "method": plan.method if plan.in_model else "gallery-only",
        "model_version_before": report["model_version_before"], "model_version_after": report["model_version"],
        "metrics": {k: report[k] for k in REPORTED_METRICS if k in report},
    }

    def change(m: dict) -> None:
        for name in plan.in_model:
            m["identities"][plan.rows[name]] = None
        for part in ("train", "test"):
            for name in names:
                m["split"][part].pop(name, None)
        data = m.get("data", {})
        if data.get("skipped_unreadable"):  # "person/file" paths name the person too
            data["skipped_unreadable"] = [f for f in data["skipped_unreadable"] if f.split("/", 1)[0] not in names]
        record = m.setdefault("erasure", {"forgotten": [], "ledger": []})
        record["forgotten"] += [{"hash": name_hash(key, n), "row": plan.rows.get(n), "request": request}
                                for n in names]
        record["ledger"].append(entry)
        record["pending"] = request
        record["pending_seal"] = pending_seal(ws, request, report["model_version"])
        if recognition:
            m["recognition"] = recognition
        if plan.in_model and plan.method not in GS_LORA_METHODS:  # retrain and the baselines rewrite the
            m["model"].pop("open_set", None)  # backbone: the threshold measured for the shipped one no longer holds

    if weights is not None:
        ws.commit_model(report["model_version"], weights, change)
    else:
        ws.update_manifest(change)
    return request


def _enrolled_people(ws: Workspace) -> set[str]:
    """Everyone in the gallery or with stored or quarantined crops. The gallery is checked against
    the crops first: an erasure from a damaged gallery could miss rows it cannot see (exit 2)."""
    people = {p.name for p in real_folders(ws.root / "crops")} | quarantined_people(ws.root)
    if store(ws.root).exists():
        with open_live_gallery(ws.root) as gallery:
            people |= set(gallery.people())
    return people


def _gallery_people(galleries, role: str) -> set[str]:
    with galleries.open(role) as gallery:
        return set(gallery.people())


def _recalibrate(galleries, role: str, recognition: dict) -> dict:
    """The threshold at the stored FAR, recomputed on the re-embedded enrolled vectors."""
    with galleries.open(role) as gallery:
        genuine, impostor, _ = enrolled_pair_scores(gallery)
    if len(impostor) == 0:
        return {}
    threshold = threshold_at_far(impostor, float(recognition.get("far", 1e-3)))
    return {"threshold": threshold, "recalibrated": True, "tar": accept_rate(genuine, threshold)}


def gallery_check(pipe: FacePipeline, role: str, photos: list[np.ndarray], people: list[str],
                  threshold: float) -> dict:
    """Search the workspace's gallery in ``role`` (``gallery`` or ``gallery.staging``) with the
    forgotten people's held-out photos, ignoring matches to those people themselves: how many come
    back ``unknown`` (best other match below the threshold)."""
    galleries = pipe.gallery_store
    if not photos or not galleries.exists(role):
        return {"images": 0}
    with galleries.open(role) as gallery:
        if gallery.model_version != pipe.model_version or len(gallery) == 0:
            return {"images": 0}  # vectors of another model are not comparable with this one's
        rows = gallery.search_people(pipe.embed(photos), 1, exclude=set(people))
    best = [row[0] if row else None for row in rows]
    unknown = sum(m is None or m.score < threshold for m in best)
    return {"images": len(photos), "unknown": unknown, "unknown_rate": unknown / len(photos),
            "threshold": threshold}


def choose_people(workspace, fraction: float, seed: int = 0) -> list[str]:
    """A seeded ``fraction`` (at least one) of the people the workspace's model still knows."""
    people = [p for p in Workspace(workspace).identities() if p is not None]
    count = max(1, round(fraction * len(people)))
    return sorted(np.random.default_rng(seed).choice(people, count, replace=False).tolist())
