"""OpenCV's SFace as a torch module: the teacher, and the convolutional stem of the hybrid face ViT.

SFace (Zhong et al., "SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition",
IEEE TIP 2021; OpenCV model zoo, Apache-2.0) is insightface's MobileNet-v1 "fmobilenet":
``conv_1`` (3x3, 3 -> 32) then 13 depthwise/pointwise pairs ``conv_2`` .. ``conv_14``, each
convolution followed by batch norm and PReLU, then a batch norm, flatten (7x7x1024) and a
50,176 -> 128 linear with a final batch norm. Stage ``k`` below is ``conv_k`` (for k >= 2 its
depthwise and pointwise halves). The published file is int8 block-quantised; the conversion
(``facerec.distill.sface_port``) dequantises it and folds every batch norm into the convolution
or linear before it, so a stage here is ``conv(+bias) -> PReLU``.

The input is facerec's own normalisation (RGB in [-1, 1], ``data.transforms.to_tensor``); SFace's
graph takes RGB ``(x - 127.5) / 128`` (OpenCV swaps the BGR crop it is given), which the
conversion folds into ``conv_1``'s weights (scaled by 127.5 / 128), so no preprocessing differs
from the rest of facerec.

The hybrid face ViT (ViT paper, Dosovitskiy et al. 2021, §3.1 "Hybrid Architecture") takes its
patch embedding from the feature map after stage ``K`` (``SFaceNet.stem(K)``); ``SFaceNet.tail``
runs the rest of SFace on that map, which is the distillation target for the same view.
"""

from __future__ import annotations

import torch
from torch import nn

from .sface_layout import EMBEDDING_DIM, INPUT_SIZE, STAGES, stage_channels, stage_stride


class _Stage(nn.Module):
    """``conv_k``: a 3x3 conv (stage 1) or a depthwise 3x3 then a pointwise 1x1, each with its
    batch norm folded in (bias) and a per-channel PReLU."""

    def __init__(self, stage: int, width_div: int):
        super().__init__()
        cin, cout, stride = stage_channels(stage - 1, width_div), stage_channels(stage, width_div), STAGES[stage - 1][2]
        if stage == 1:
            self.dw, self.dw_act = None, None
            self.pw = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        else:
            self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin)
            self.dw_act = nn.PReLU(cin)
            self.pw = nn.Conv2d(cin, cout, 1)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dw is not None:
            x = self.dw_act(self.dw(x))
        return self.act(self.pw(x))


class SFaceStem(nn.Sequential):
    """SFace's stages ``first`` .. ``last`` (a slice of :class:`SFaceNet`'s ``stages``)."""

    def __init__(self, last: int, first: int = 1, width_div: int = 1):
        super().__init__(*[_Stage(k, width_div) for k in range(first, last + 1)])
        self.first, self.last = first, last


class SFaceNet(nn.Module):
    """The whole SFace network: ``stages`` (all 14) then ``fc`` (flattened map -> 128-d).

    ``width_div`` shrinks every stage's channels (tests build a tiny one to check the port against
    a small reference graph)."""

    def __init__(self, width_div: int = 1, embedding_dim: int = EMBEDDING_DIM):
        super().__init__()
        self.width_div = width_div
        self.stages = SFaceStem(len(STAGES), width_div=width_div)
        side = INPUT_SIZE // stage_stride(len(STAGES))
        self.fc = nn.Linear(stage_channels(len(STAGES), width_div) * side * side, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, 112, 112)`` facerec-normalised RGB -> ``(N, 128)`` SFace embeddings (not normalised)."""
        return self.tail(self.stages(x), len(STAGES))

    def stem(self, last: int) -> nn.Sequential:
        """Stages 1 .. ``last`` (shares their modules with this network)."""
        return nn.Sequential(*list(self.stages)[:last])

    def tail(self, features: torch.Tensor, after: int) -> torch.Tensor:
        """The rest of SFace on the feature map after stage ``after``: its embedding of that view."""
        for stage in list(self.stages)[after:]:
            features = stage(features)
        return self.fc(features.flatten(1))


def stem_state(net_state: dict[str, torch.Tensor], last: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """The keys of an :class:`SFaceNet` state dict that a :class:`SFaceStem` of stages 1..``last``
    holds, renamed (``stages.3.pw.weight`` -> ``{prefix}3.pw.weight``)."""
    out = {}
    for key, value in net_state.items():
        if key.startswith("stages."):
            index = int(key.split(".")[1])
            if index < last:
                out[prefix + key.removeprefix("stages.")] = value
    return out
