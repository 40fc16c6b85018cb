"""What a forgetting task feeds its model for a batch of its images: the images, or a hybrid's
stem output for them, computed once per image.

The hybrid face ViT (``facerec.models.vit.SFaceStemPatchEmbed``) starts with SFace's first
convolution stages, frozen: two thirds of its forward FLOPs. GS-LoRA's adapters sit after them
(on the blocks' FFN linears, Zhao et al. CVPR 2024) and unlearning reads its images without
augmentation, so an image's stem output cannot change during a task, while a task sees each
forget image ~10 times. :class:`TaskInputs` keeps it (float16, within a memory budget; rows
beyond the budget are computed per batch), and ``forward_features`` takes it in place of the
image. Augmented views (GS-LoRA's ``forget_views``) are new images: :meth:`TaskInputs.fresh`.
"""

from __future__ import annotations

import numpy as np
import torch

from facerec.data.transforms import to_tensor

BUDGET_BYTES = 1 << 30  # per image array; LFW-100's replay buffer through hybrid12's stem: ~0.33 GiB


class TaskInputs:
    """``inputs(index)`` -> the model input for ``images[index]`` (``(N, H, W, 3)`` uint8 RGB)."""

    def __init__(self, model, images: np.ndarray, device: torch.device, budget_bytes: int = BUDGET_BYTES):
        self.images, self.device = images, device
        stem = model.frozen_stem() if hasattr(model, "frozen_stem") else None
        self.stem, self.table, self.known = stem, None, None
        if stem is not None and len(images):
            shape = self._stem(to_tensor(images[:1]).to(device)).shape[1:]
            if len(images) * int(np.prod(shape)) * 2 <= budget_bytes:
                self.table = torch.empty((len(images), *shape), dtype=torch.float16, device=device)
                self.known = torch.zeros(len(images), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x).contiguous()

    def fresh(self, images: np.ndarray) -> torch.Tensor:
        """The model input for images not among ``self.images`` (augmented views): computed, not kept;
        rounded as the kept rows are, so a view and a photo reach the blocks alike."""
        x = to_tensor(images).to(self.device)
        if self.stem is None:
            return x
        x = self._stem(x)
        return x if self.table is None else x.to(torch.float16).float()

    def __call__(self, index: np.ndarray) -> torch.Tensor:
        if self.stem is None or self.table is None:
            return self.fresh(self.images[index])
        index_t = torch.from_numpy(np.asarray(index))
        missing = index_t[~self.known[index_t]].unique()
        if len(missing):
            self.table[missing.to(self.table.device)] = self._stem(to_tensor(self.images[missing.numpy()])
                                                                   .to(self.device)).to(torch.float16)
            self.known[missing] = True
        return self.table[index_t.to(self.table.device)].float()
