"""Importing the GS-LoRA authors' Face Transformer (``ViT_face``): a state dict in their key layout
converts to a FaceViT whose outputs equal their forward pass, and the workspace it makes is forgotten from."""

import json

import pytest
import torch
import torch.nn.functional as F

from facerec.core.errors import FaceRecError
from facerec.models.vit_face import convert_vit_face

W, DEPTH, HEADS, DIM_HEAD, MLP, PATCH, SIDE = 512, 6, 8, 64, 2048, 8, 112


def _their_state_dict(classes=5, lora_rank=0, seed=0):
    """Random tensors under ViT_face's names and shapes (vit_pytorch_face/vit_face.py, CosFace head)."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape, scale=0.02):
        return torch.randn(*shape, generator=g) * scale

    tokens = (SIDE // PATCH) ** 2 + 1
    state = {"pos_embedding": t(1, tokens, W, scale=1.0), "cls_token": t(1, 1, W, scale=1.0),
             "patch_to_embedding.weight": t(W, PATCH * PATCH * 3), "patch_to_embedding.bias": t(W),
             "mlp_head.0.weight": 1 + t(W, scale=0.1), "mlp_head.0.bias": t(W, scale=0.1), "loss.weight": t(classes, W)}
    for i in range(DEPTH):
        a, f = f"transformer.layers.{i}.0.fn", f"transformer.layers.{i}.1.fn"
        state |= {f"{a}.norm.weight": 1 + t(W, scale=0.1), f"{a}.norm.bias": t(W, scale=0.1),
                  f"{a}.fn.to_qkv.weight": t(3 * HEADS * DIM_HEAD, W, scale=0.2),
                  f"{a}.fn.to_out.0.weight": t(W, HEADS * DIM_HEAD), f"{a}.fn.to_out.0.bias": t(W),
                  f"{f}.norm.weight": 1 + t(W, scale=0.1), f"{f}.norm.bias": t(W, scale=0.1),
                  f"{f}.fn.net.0.weight": t(MLP, W), f"{f}.fn.net.0.bias": t(MLP),
                  f"{f}.fn.net.3.weight": t(W, MLP), f"{f}.fn.net.3.bias": t(W)}
        if lora_rank:
            for lin, (out_f, in_f) in ((f"{f}.fn.net.0", (MLP, W)), (f"{f}.fn.net.3", (W, MLP))):
                state[f"{lin}.lora_A"], state[f"{lin}.lora_B"] = t(lora_rank, in_f, scale=0.5), t(out_f, lora_rank, scale=0.5)
    return state


def _their_forward(s, img, lora_alpha=1.0):
    """ViT_face.forward written out from the paper's code: (embedding, CosFace cosines)."""
    b = img.shape[0]
    n = SIDE // PATCH
    x = img.reshape(b, 3, n, PATCH, n, PATCH).permute(0, 2, 4, 3, 5, 1).reshape(b, n * n, PATCH * PATCH * 3)
    x = x @ s["patch_to_embedding.weight"].T + s["patch_to_embedding.bias"]
    x = torch.cat([s["cls_token"].expand(b, 1, W), x], 1) + s["pos_embedding"]

    def lin(prefix, v):
        w = s[prefix + ".weight"]
        if prefix + ".lora_A" in s:
            w = w + lora_alpha / s[prefix + ".lora_A"].shape[0] * s[prefix + ".lora_B"] @ s[prefix + ".lora_A"]
        return v @ w.T + (s[prefix + ".bias"] if prefix + ".bias" in s else 0)

    for i in range(DEPTH):
        a, f = f"transformer.layers.{i}.0.fn", f"transformer.layers.{i}.1.fn"
        h = F.layer_norm(x, (W,), s[f"{a}.norm.weight"], s[f"{a}.norm.bias"])  # eps 1e-5, torch's default
        q, k, v = (t.reshape(b, -1, HEADS, DIM_HEAD).transpose(1, 2) for t in lin(f"{a}.fn.to_qkv", h).chunk(3, -1))
        attn = (torch.einsum("bhid,bhjd->bhij", q, k) * W ** -0.5).softmax(-1)  # their scale: dim ** -0.5
        out = torch.einsum("bhij,bhjd->bhid", attn, v).transpose(1, 2).reshape(b, -1, HEADS * DIM_HEAD)
        x = x + lin(f"{a}.fn.to_out.0", out)
        h = F.layer_norm(x, (W,), s[f"{f}.norm.weight"], s[f"{f}.norm.bias"])
        x = x + lin(f"{f}.fn.net.3", F.gelu(lin(f"{f}.fn.net.0", h)))
    emb = F.layer_norm(x[:, 0], (W,), s["mlp_head.0.weight"], s["mlp_head.0.bias"])
    return emb, F.linear(F.normalize(emb), F.normalize(s["loss.weight"]))


@pytest.mark.parametrize("lora_rank", [0, 8])
def test_the_converted_model_gives_their_outputs(lora_rank):
    """In float64 the two agree to rounding (1e-9); float32 accumulates ~1e-4 over six blocks, which
    would hide a wrong scale or epsilon of the same size."""
    state = {k: v.double() for k, v in _their_state_dict(lora_rank=lora_rank).items()}
    model = convert_vit_face({f"module.{k}": v for k, v in state.items()}, dtype=torch.float64)  # as DataParallel saves it
    img = torch.randn(3, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        emb, cosines = _their_forward(state, img)
        ours = model.forward_head(model.forward_features(img), pre_logits=True)
        assert torch.allclose(ours, emb, atol=1e-9, rtol=0), (ours - emb).abs().max()
        assert torch.allclose(model.forward_head(model.forward_features(img)), cosines, atol=1e-9)
        assert torch.allclose(model.embed(img), F.normalize(emb), atol=1e-9)
        assert emb.std() > 0.1  # the check is not on near-constant outputs
    float32 = convert_vit_face(_their_state_dict(lora_rank=lora_rank))  # as facerec stores it
    with torch.no_grad():
        assert torch.allclose(float32.embed(img.float()), F.normalize(emb).float(), atol=1e-4)


def test_checkpoints_of_another_shape_or_with_stray_tensors_are_refused():
    state = _their_state_dict()
    with pytest.raises(FaceRecError, match="no place"):
        convert_vit_face({**state, "loss.bias": torch.zeros(5)})  # a Softmax head, not CosFace
    small = {k: v for k, v in state.items() if not k.startswith("transformer.layers.5.")}
    with pytest.raises(FaceRecError, match="depth"):
        convert_vit_face(small)
    with pytest.raises(FaceRecError, match="not a ViT_face"):
        convert_vit_face({"weight": torch.zeros(3)})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the hostile file's; it is refused
def test_an_imported_checkpoint_is_a_workspace_forget_works_on(tmp_path, capsys):
    from facerec.cli.main import main
    from facerec.data.synthetic import generate_dataset

    data = generate_dataset(tmp_path / "data", identities=5, images_per_identity=4, seed=3)
    ckpt = tmp_path / "Backbone_VIT_Epoch_1.pth"
    torch.save(_their_state_dict(classes=5), ckpt)
    ws = tmp_path / "ws"
    assert main(["import-checkpoint", str(ckpt), "--data", str(data), "-w", str(ws), "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identities"] == 5 and 0 <= report["top1"] <= 1
    manifest = json.loads((ws / "workspace.json").read_text())
    assert manifest["model"]["name"] == "face-transformer" and manifest["model"]["config"]["norm_eps"] == 1e-5
    assert main(["forget", "synth-0001", "-w", str(ws), "--steps", "2", "--set", "batch_size=4", "--json", "-q"]) == 0
    forget = json.loads(capsys.readouterr().out)
    assert forget["model_version"] != forget["model_version_before"]
    assert json.loads((ws / "workspace.json").read_text())["identities"][1] is None
    assert main(["import-checkpoint", str(ckpt), "--data", str(data), "-w", str(ws)]) == 2  # never over a workspace
    bad = tmp_path / "evil.pth"
    bad.write_bytes(b"\x80\x04cos\nsystem\n.")  # a pickle that would call os.system: refused, not run
    assert main(["import-checkpoint", str(bad), "--data", str(data), "-w", str(tmp_path / "w2")]) == 2
