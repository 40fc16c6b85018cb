"""SFace's layout as plain data (no torch): its stages' widths and strides, which the model config
checks a hybrid's cut against before torch is imported (``sface.py`` builds the network)."""

# (stage, output channels, stride of its 3x3 convolution); stage 1 is a full 3x3 conv from RGB
STAGES = ((1, 32, 1), (2, 64, 1), (3, 128, 2), (4, 128, 1), (5, 256, 2), (6, 256, 1), (7, 512, 2),
          (8, 512, 1), (9, 512, 1), (10, 512, 1), (11, 512, 1), (12, 512, 1), (13, 1024, 2), (14, 1024, 1))
INPUT_SIZE = 112
EMBEDDING_DIM = 128


def stage_channels(stage: int, width_div: int = 1) -> int:
    """Output channels after ``stage`` (0: the 3 input channels)."""
    return 3 if stage == 0 else STAGES[stage - 1][1] // width_div


def stage_stride(stage: int) -> int:
    """Total stride of the feature map after ``stage`` (1, 2, 4, 8 or 16)."""
    stride = 1
    for k, _, s in STAGES[:stage]:
        stride *= s
    return stride
