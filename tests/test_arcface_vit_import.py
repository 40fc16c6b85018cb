"""Importing insightface arcface_torch's ViT layout (LVFace, TransFace): a randomly initialised state
dict under their names converts to a FaceViT whose embedding equals an independent re-implementation
of their forward, and the workspace it makes is forgotten from."""

import json

import pytest
import torch
import torch.nn.functional as F

from facerec.core.errors import FaceRecError
from facerec.models.arcface_vit import convert_arcface_vit

W, DEPTH, HEADS, MLP, PATCH, EMB = 64, 2, 8, 256, 9, 32
TOKENS = (112 // PATCH) ** 2  # 144: 112 / 9 leaves 4 pixel rows and columns unseen


def _their_state_dict(seed=0):
    """Random tensors under arcface_torch's backbones/vit.py names and shapes."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale

    state = {"patch_embed.proj.weight": t(W, 3, PATCH, PATCH), "patch_embed.proj.bias": t(W),
             "pos_embed": t(1, TOKENS, W, scale=0.5), "mask_token": t(1, 1, W),
             "norm.weight": 1 + t(W, scale=0.1), "norm.bias": t(W, scale=0.1),
             "feature.0.weight": t(W, TOKENS * W, scale=0.01), "feature.2.weight": t(EMB, W, scale=0.2)}
    for i, width in ((1, W), (3, EMB)):
        state |= {f"feature.{i}.weight": 1 + t(width, scale=0.1), f"feature.{i}.bias": t(width, scale=0.1),
                  f"feature.{i}.running_mean": t(width, scale=0.1), f"feature.{i}.running_var": 0.5 + t(width).abs(),
                  f"feature.{i}.num_batches_tracked": torch.tensor(1000)}
    for i in range(DEPTH):
        b = f"blocks.{i}."
        state |= {b + "norm1.weight": 1 + t(W, scale=0.1), b + "norm1.bias": t(W, scale=0.1),
                  b + "attn.qkv.weight": t(3 * W, W, scale=0.2), b + "attn.proj.weight": t(W, W), b + "attn.proj.bias": t(W),
                  b + "norm2.weight": 1 + t(W, scale=0.1), b + "norm2.bias": t(W, scale=0.1),
                  b + "mlp.fc1.weight": t(MLP, W, scale=0.2), b + "mlp.fc1.bias": t(MLP),
                  b + "mlp.fc2.weight": t(W, MLP, scale=0.2), b + "mlp.fc2.bias": t(W)}
    return state


def _their_forward(s, img):
    """arcface_torch's VisionTransformer.forward (eval) written out: conv patches, blocks, norm,
    flatten, feature."""
    b = img.shape[0]
    x = F.conv2d(img, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2) + s["pos_embed"]
    for i in range(DEPTH):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (W,), s[p + "norm1.weight"], s[p + "norm1.bias"], eps=1e-5)
        q, k, v = (h @ s[p + "attn.qkv.weight"].T).reshape(b, TOKENS, 3, HEADS, W // HEADS).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (W // HEADS) ** -0.5).softmax(-1)
        x = x + (attn @ v).transpose(1, 2).reshape(b, TOKENS, W) @ s[p + "attn.proj.weight"].T + s[p + "attn.proj.bias"]
        h = F.layer_norm(x, (W,), s[p + "norm2.weight"], s[p + "norm2.bias"], eps=1e-5)
        x = x + F.relu6(h @ s[p + "mlp.fc1.weight"].T + s[p + "mlp.fc1.bias"]) @ s[p + "mlp.fc2.weight"].T \
            + s[p + "mlp.fc2.bias"]
    x = F.layer_norm(x, (W,), s["norm.weight"], s["norm.bias"], eps=1e-5).reshape(b, TOKENS * W)
    for lin, bn in ((0, 1), (2, 3)):
        x = F.batch_norm(x @ s[f"feature.{lin}.weight"].T, s[f"feature.{bn}.running_mean"],
                         s[f"feature.{bn}.running_var"], s[f"feature.{bn}.weight"], s[f"feature.{bn}.bias"],
                         training=False, eps=2e-5)
    return x


def test_the_converted_model_gives_their_embedding():
    state = {k: v.double() if v.is_floating_point() else v for k, v in _their_state_dict().items()}
    model, name = convert_arcface_vit({f"module.{k}": v for k, v in state.items()}, num_classes=3,
                                      dtype=torch.float64)
    assert name == "arcface-vit" and model.config.class_token is False and model.patch_embed.num_patches == TOKENS
    img = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        theirs = _their_forward(state, img)
        ours = model.forward_head(model.forward_features(img), pre_logits=True)
        assert torch.allclose(ours, theirs, atol=1e-9, rtol=0), (ours - theirs).abs().max()
        assert theirs.std() > 0.1
        float32, _ = convert_arcface_vit(_their_state_dict())
        assert torch.allclose(float32.embed(img.float()), F.normalize(theirs).float(), atol=1e-4)


def test_other_shapes_are_refused_in_one_line():
    state = _their_state_dict()
    with pytest.raises(FaceRecError, match="position embeddings"):
        convert_arcface_vit({**state, "pos_embed": torch.zeros(1, 100, W)})
    with pytest.raises(FaceRecError, match="do not fill"):
        convert_arcface_vit({**state, "head.bias": torch.zeros(3)})
    with pytest.raises(FaceRecError, match="multiple of 7 heads"):
        convert_arcface_vit(state, heads=7)


def test_an_imported_arcface_vit_is_a_workspace_forget_works_on(tmp_path, capsys):
    from facerec.cli.main import main
    from facerec.data.synthetic import generate_dataset

    data = generate_dataset(tmp_path / "data", identities=5, images_per_identity=4, seed=3)
    ckpt = tmp_path / "model.pt"
    torch.save(_their_state_dict(), ckpt)
    ws = tmp_path / "ws"
    assert main(["import-checkpoint", str(ckpt), "--data", str(data), "-w", str(ws), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identities"] == 5 and report["format"].startswith("arcface_torch") and 0 <= report["top1"] <= 1
    manifest = json.loads((ws / "workspace.json").read_text())
    assert manifest["model"]["config"]["pool"] == "flatten-bn" and manifest["model"]["config"]["mlp_act"] == "relu6"
    assert main(["forget", "synth-0001", "-w", str(ws), "--steps", "2", "--set", "batch_size=4", "--json", "-q"]) == 0
    forget = json.loads(capsys.readouterr().out)
    assert forget["model_version"] != forget["model_version_before"]
