"""Same-view teacher targets: SFace's embedding of exactly the augmented crop the student sees.

Beyer et al., "Knowledge distillation: A good teacher is patient and consistent" (CVPR 2022):
function matching needs the teacher to see the student's view; a target computed once on the
clean crop while the student sees a jittered, recoloured, occluded one asks the student to be
invariant where the teacher is not, and caps how well it can fit (the pure-ViT recipe reached
cosine 0.70 to such targets).

With the hybrid ViT the teacher is nearly free: the student's stem *is* SFace's first K stages
(frozen), so SFace's own tail (``SFaceNet.tail``) on the stem's output, caught by a forward hook,
is SFace's embedding of the view, at the cost of the tail alone. Any other student (or a stem
being fine-tuned) gets the whole SFace run on the view. dlib's descriptors cannot be computed
here (dlib is not a run-time or training dependency); they stay fixed per crop and, when asked
for, are concatenated as before (``teachers.combined``: cosine = mean of the teachers').
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.sface import SFaceNet, stem_state


class SameViewTeacher:
    """Targets for a batch from SFace on the student's input, plus fixed per-crop parts."""

    def __init__(self, sface: SFaceNet, student: torch.nn.Module, device: torch.device):
        self.sface = sface.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
        self.stem = _shared_stem(sface, student)
        self._caught: tuple[torch.Tensor, torch.Tensor] | None = None  # (the stem's input, its output)
        self._hook = self.stem.register_forward_hook(self._catch) if self.stem is not None else None

    @property
    def shares_stem(self) -> bool:
        return self.stem is not None

    def close(self) -> None:
        """Remove the hook from the student's stem."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _catch(self, module, inputs, output) -> None:
        self._caught = (inputs[0], output.detach())

    @torch.no_grad()
    def targets(self, x: torch.Tensor, fixed: torch.Tensor | None = None) -> torch.Tensor:
        """Unit targets for the batch ``x`` the student has just run on (``fixed``: the other
        teachers' unit targets, concatenated first)."""
        caught = self._caught
        if caught is not None and caught[0] is x and caught[1].dtype == torch.float32:  # this batch, not autocast
            sface = self.sface.tail(caught[1], self.stem.last)
        else:
            sface = self.sface(x.float())
        self._caught = None
        parts = ([fixed] if fixed is not None and fixed.shape[1] else []) + [sface]
        return torch.cat([F.normalize(p, dim=1) for p in parts], dim=1) / math.sqrt(len(parts))


def _shared_stem(sface: SFaceNet, student: torch.nn.Module):
    """The student's SFace stem when it is frozen and holds SFace's weights, else None."""
    stem = getattr(getattr(student, "patch_embed", None), "stem", None)
    if stem is None or any(p.requires_grad for p in stem.parameters()):
        return None
    wanted = stem_state(sface.state_dict(), stem.last)
    mine = stem.state_dict()
    same = set(wanted) == set(mine) and all(torch.equal(wanted[k].cpu(), mine[k].cpu()) for k in mine)
    return stem if same else None


def load_stem(student: torch.nn.Module, sface: SFaceNet) -> None:
    """Copy SFace's first K stages into a hybrid student's stem (``SFaceStemPatchEmbed``)."""
    stem = student.patch_embed.stem
    stem.load_state_dict(stem_state(sface.state_dict(), stem.last))
