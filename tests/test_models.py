import pytest
import torch

from facerec.core.errors import UnknownModelError
from facerec.models import create_model, list_models


@pytest.mark.parametrize("name", [n for n in list_models() if n != "face-transformer"])
def test_forward_shapes_unit_embeddings_and_backward(name):
    model = create_model(name, num_classes=5)
    x = torch.randn(2, 3, 112, 112)
    cosines = model(x)
    assert cosines.shape == (2, 5)
    assert torch.isfinite(cosines).all() and cosines.abs().max() <= 1.0 + 1e-5
    emb = model.embed(x)
    assert emb.shape == (2, model.embedding_dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    cosines.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_embed_is_the_pre_logits_path():
    model = create_model("vit-face-test", num_classes=3).eval()
    x = torch.randn(2, 3, 112, 112)
    features = model.forward_features(x)
    pre = model.forward_head(features, pre_logits=True)
    assert torch.allclose(model.embed(x), torch.nn.functional.normalize(pre, dim=-1))
    assert torch.allclose(model.forward_head(features), model.head(pre))


def test_face_transformer_matches_the_paper():
    # GS-LoRA's Face Transformer: 19,157,504 parameters with a 100-class head (spec §A2)
    model = create_model("face-transformer", num_classes=100).eval()
    n = sum(p.numel() for p in model.parameters())
    assert n == 19_157_504
    assert abs(n - 19.1e6) <= 0.2e6
    blk = model.blocks[0]
    assert (len(model.blocks), model.embed_dim, blk.attn.num_heads) == (6, 512, 8)
    assert (blk.mlp.fc1.in_features, blk.mlp.fc1.out_features, model.patch_embed.patch_size) == (512, 2048, (8, 8))
    with torch.no_grad():
        assert model.embed(torch.randn(1, 3, 112, 112)).shape == (1, 512)


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(UnknownModelError, match="vit-face-cpu"):
        create_model("resnet-9000", num_classes=3)
