"""A GS-LoRA task's forget term and what it needs, set up once per task and evaluated per step.

The three objectives (``GSLoRAConfig.objective``, see ``objectives``) differ in what they read
besides the batch: ``paper`` only the logits (bounded CE ascent, Zhao et al. CVPR 2024);
``stranger`` the pre-task embeddings and a direction no class uses per forgotten person;
``calibrated`` also one linear identity edit for every face and the levels of held-back probes
of each forgotten person (``probes``); ``reference`` the starting model's embeddings of the
forget images, carried into the task model's space by a map fitted on the replayed faces.
:class:`ForgetTerm` gathers that state so the training loop in ``gslora.unlearn`` stays the paper's loop.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .inputs import TaskInputs
from .lora import adapters_disabled
from .objectives import (bounded_ce, carry_local, embedding_retention, fit_local_map, identity_basis, identity_edit,
                         linear_map, procrustes, rank_hinge, reach, stranger_targets, target_loss, unused_directions)
from .probes import hold_back, probe_levels


class BeforeCache:
    """Pre-task embeddings of a task's images, computed once per image on first use.

    The "before" model is the task's model with its adapters bypassed, which never changes during
    the task, and unlearning reads its photos without augmentation, so an image's pre-task embedding
    is the same at every step: the forget images, seen many times per task, are embedded once
    (``forget_views``' augmented views are new images each step: :meth:`ForgetTerm.view_targets`).
    """

    def __init__(self, model, sizes: tuple[int, ...], device: torch.device):
        self.model = model
        self.table = [torch.zeros(n, model.embedding_dim, device=device) for n in sizes]
        self.known = [torch.zeros(n, dtype=torch.bool) for n in sizes]

    @torch.no_grad()
    def get(self, part: int, index: np.ndarray, inputs: TaskInputs) -> torch.Tensor:
        index_t = torch.from_numpy(index)
        missing = index_t[~self.known[part][index_t]].unique()
        if len(missing):
            self.table[part][missing] = pre_task(self.model, inputs(missing.numpy()))
            self.known[part][missing] = True
        return self.table[part][index_t]


@torch.no_grad()
def pre_task(model, x: torch.Tensor) -> torch.Tensor:
    """Embeddings (pre-logits, float) of model inputs ``x`` under ``model`` with its adapters bypassed."""
    with adapters_disabled(model):
        return model.forward_head(model.forward_features(x), pre_logits=True).float()


class ForgetTerm:
    """One task's forget term; build it before LoRA is injected (it reads the frozen head).

    ``train_index``: the forget images the task trains on (the calibrated objective holds the
    probes back from them; the others train on all). Call :meth:`bind` once the training images
    are fixed, then the term once per step.
    """

    def __init__(self, model, forget_images: np.ndarray, forget_labels: np.ndarray, retain_labels: np.ndarray, cfg,
                 device: torch.device, reference=None):
        if cfg.objective == "reference" and reference is None:
            raise ValueError("the reference objective needs the model the workspace was fine-tuned from")
        self.cfg, self.model, self.device, self.reference = cfg, model, device, reference
        self.rows = model.head.weight  # frozen during the task
        self.retained_rows = torch.from_numpy(np.unique(retain_labels)).to(device)
        people = np.unique(forget_labels).tolist()
        self.directions = unused_directions(self.rows, people, cfg.seed)
        self.basis = self.probe = self.level = None
        self.train_index = np.arange(len(forget_labels))
        if cfg.objective == "calibrated" or (cfg.objective == "stranger" and cfg.edit_retained):
            self.basis = identity_basis(self.rows, people, self.directions)
        if cfg.objective == "calibrated":
            self.train_index, probe_index = hold_back(forget_labels, cfg.probe_share, cfg.seed)
            self.probe = (forget_images[probe_index], forget_labels[probe_index])
        self.cache = self.forget_inputs = self.retain_inputs = self.targets = self.carry = None

    def bind(self, forget_inputs: TaskInputs, retain_inputs: TaskInputs) -> None:
        """The task's training images (forget, replay): their pre-task embeddings are cached."""
        self.forget_inputs, self.retain_inputs = forget_inputs, retain_inputs
        if self.cfg.objective != "paper":
            self.cache = BeforeCache(self.model, (len(forget_inputs), len(retain_inputs)), self.device)
        if self.cfg.objective == "reference":
            self.carry = self._reference_map()
            self.targets = self._reach(lambda: self.cache.get(0, np.arange(len(forget_inputs)), forget_inputs),
                                       self.carry(self._start_embed(forget_inputs.images)))

    def _start_embed(self, images: np.ndarray) -> torch.Tensor:
        """Unit embeddings of ``images`` under the starting model, on the task's device."""
        from facerec.recognition.pipeline import embed_images

        return torch.from_numpy(embed_images(self.reference, images, self.device)).to(self.device)

    def _reach(self, before, targets: torch.Tensor) -> torch.Tensor:
        """``targets`` at ``reference_reach`` from the pre-task embeddings (``before()``, read only then)."""
        return targets if self.cfg.reference_reach == 1.0 else reach(before(), targets, self.cfg.reference_reach)

    def _reference_map(self):
        """The map that takes the starting model's embeddings of the replayed faces onto the task
        model's (``reference_map``: ``objectives.procrustes``, ``linear_map`` or the default
        ``local_map``), as a function of starting-model embeddings; the identity with no replay."""
        if not len(self.retain_inputs):
            return lambda z: z
        everyone = np.arange(len(self.retain_inputs))
        source, target = self._start_embed(self.retain_inputs.images), self.cache.get(1, everyone, self.retain_inputs)
        cfg = self.cfg
        if cfg.reference_map == "local":
            fit = fit_local_map(source, target, cfg.reference_ridge)
            return lambda z: carry_local(fit, z, cfg.reference_neighbours, cfg.reference_residual)
        carry = procrustes(source, target) if cfg.reference_map == "rotation" else linear_map(source, target, cfg.reference_ridge)
        return lambda z: F.normalize(z.float() @ carry, dim=1)

    def forget_targets(self, f_idx: np.ndarray) -> torch.Tensor | None:
        """The reference objective's targets of a forget batch (None in the other objectives)."""
        return None if self.targets is None else self.targets[torch.from_numpy(f_idx).to(self.targets.device)]

    @torch.no_grad()
    def view_targets(self, views: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        """Reference targets of augmented views ``(N, H, W, 3)`` uint8 of forget images, ``x`` their
        model input: each view's own starting-model embedding, carried by the same map (``forget_views``)."""
        return self._reach(lambda: pre_task(self.model, x), self.carry(self._start_embed(views)))

    def _before(self, f_idx: np.ndarray, r_idx: np.ndarray | None) -> torch.Tensor:
        before = self.cache.get(0, f_idx, self.forget_inputs)
        if r_idx is not None:
            before = torch.cat([before, self.cache.get(1, r_idx, self.retain_inputs)])
        return before

    def __call__(self, step: int, f_idx: np.ndarray, r_idx: np.ndarray | None, y: torch.Tensor,
                 embeddings: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor | None = None):
        """``(forget term incl. its weight, retained-embedding term, CE on the forget images)`` for
        a batch whose first ``len(f_idx)`` rows are forget images, the rest replay; ``targets``: the
        reference objective's targets of the forget rows when some are augmented views."""
        cfg, nf = self.cfg, len(f_idx)
        if cfg.objective == "paper":
            term, ce_f = bounded_ce(logits[:nf], y[:nf], cfg.bnd, cfg.ascent)
            return cfg.beta * term, logits.new_zeros(()), ce_f
        with torch.no_grad():
            ce_f = F.cross_entropy(logits[:nf], y[:nf])
        before = self._before(f_idx, r_idx)
        if cfg.objective == "reference":
            target_r = before
            term = target_loss(embeddings[:nf], self.forget_targets(f_idx) if targets is None else targets)
        elif cfg.objective == "calibrated":
            target_f = target_r = identity_edit(before, *self.basis, cfg.rho)
            if step % cfg.probe_every == 0:
                self.level = probe_levels(self.model, *self.probe, self.rows, self.retained_rows, self.device)
            term = target_loss(embeddings[:nf], target_f[:nf]) + self._probe_hinge(embeddings[:nf], y[:nf])
        else:
            target_r = identity_edit(before, *self.basis, 1.0) if cfg.edit_retained else before
            term = (target_loss(embeddings[:nf], stranger_targets(before[:nf], y[:nf], self.rows, self.directions,
                                                                  self.retained_rows, cfg.rank_margin))
                    + rank_hinge(embeddings[:nf], y[:nf], self.rows, self.retained_rows, cfg.rank_margin))
        keep = embedding_retention(embeddings[nf:], target_r[nf:]) if len(y) > nf else logits.new_zeros(())
        return cfg.stranger_weight * term, cfg.retention_weight * keep, ce_f

    def _probe_hinge(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training photos no closer to their own row than the person's held-back probes are."""
        probed = ~torch.isnan(self.level[y])
        if not probed.any():
            return z.new_zeros(())
        return rank_hinge(z[probed], y[probed], self.rows, self.retained_rows, -self.level[y[probed]]) * probed.float().mean()
