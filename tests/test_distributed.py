"""Training on several processes (gloo on CPU): two ranks end with the weights one process reaches
on the same global batch, with the head replicated or sharded across them; the sharded head's loss
and gradients are the full head's; a run is resumed only by as many processes as started it."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facerec.core.errors import FaceRecError
from facerec.data.synthetic import render_image
from facerec.models import FaceViT, FaceViTConfig
from facerec.models.margins import cosface
from facerec.training.recipe import TrainConfig
from facerec.training.trainer import save_state, optimizer_and_schedule, train_model

CPU = torch.device("cpu")
TINY = FaceViTConfig(patch_size=16, width=32, depth=2, num_heads=2, embedding_dim=32)  # no batch norm
RECIPE = TrainConfig(epochs=2, batch_size=16, lr=2e-3, warmup_epochs=0.5, seed=1)


def _data():
    x = np.stack([render_image(3, i, j) for i in range(6) for j in range(6)])  # 36: 2 batches of 16 and 4 left over
    return x, np.repeat(np.arange(6), 6)


def _model():
    torch.manual_seed(0)
    return FaceViT(TINY, num_classes=6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: str) -> None:
    """One rank: the sharded head's loss and gradients on a fixed batch, then two trainings
    (replicated and sharded head); results saved to ``out``/rank<r>.pt."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import dataclasses

    import torch.distributed as dist

    from facerec.training.distributed import from_environment
    from facerec.training.sharded_head import ShardedCosineHead

    w = from_environment(CPU)
    x, y, weight = _head_case()
    n = len(x) // world
    mine = x[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    head = ShardedCosineHead.from_full(weight, rank, world)
    loss = head.loss(mine, y[rank * n:(rank + 1) * n], cosface)
    loss.backward()
    result = {"loss": loss.detach(), "x_grad": mine.grad, "w_grad": head.weight.grad, "start": head.start}
    sampled = ShardedCosineHead.from_full(weight, rank, world, sample_rate=0.5, seed=3)
    s_loss = sampled.loss(mine.detach(), y[rank * n:(rank + 1) * n], cosface)
    s_loss.backward()
    result["sampled_loss"], result["sampled_grad"] = s_loss.detach(), sampled.weight.grad
    images, labels = _data()
    for kind in ("off", "on"):
        model = _model()
        train_model(model, images, labels, dataclasses.replace(RECIPE, sharded_head=kind), device=CPU,
                    show_progress=False, world=w)
        result[f"trained_{kind}"] = model.state_dict()
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _head_case():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 12, generator=g)
    y = torch.tensor([0, 3, 9, 9, -1, 4, 6, 1])  # one unreadable sample (-1)
    weight = torch.randn(10, 12, generator=g)
    return x, y, weight


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ranks")
    mp.start_processes(_rank, args=(2, _free_port(), str(out)), nprocs=2, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_the_sharded_head_gives_the_full_heads_loss_and_gradients(ranks):
    x, y, weight = _head_case()
    x, weight = x.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    logits = cosface(F.linear(F.normalize(x, dim=-1), F.normalize(weight, dim=-1)), y)
    full = F.cross_entropy(logits, y, ignore_index=-1)
    full.backward()
    for r in ranks:
        assert torch.allclose(r["loss"], full.detach(), atol=1e-5)  # the same loss on every rank
    assert torch.allclose(torch.cat([r["x_grad"] for r in ranks]), x.grad, atol=1e-6)
    assert torch.allclose(torch.cat([r["w_grad"] for r in ranks]), weight.grad, atol=1e-6)
    assert ranks[1]["start"] == 5
    assert torch.allclose(ranks[0]["sampled_loss"], ranks[1]["sampled_loss"]) and torch.isfinite(ranks[0]["sampled_loss"])
    sampled = torch.cat([r["sampled_grad"] for r in ranks])  # Partial FC: unsampled centres get no gradient,
    for cls in (0, 1, 3, 4, 6, 9):  # the batch's own classes are always sampled
        assert sampled[cls].abs().sum() > 0
    assert (sampled.abs().sum(dim=1) == 0).sum() >= 2  # 2 of the 4 absent classes left out at rate 0.5


@pytest.mark.parametrize("kind", ["off", "on"])
def test_two_processes_train_to_the_weights_of_one(ranks, kind):
    import dataclasses

    images, labels = _data()
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_model(model, images, labels, dataclasses.replace(RECIPE, sharded_head="off"), device=CPU,
                show_progress=False, per_sample_seeds=True)  # augmented as the two processes are
    two = ranks[0][f"trained_{kind}"]
    assert two.keys() == model.state_dict().keys()
    moved = max(float((model.state_dict()[k] - before[k]).abs().max()) for k in before)
    assert moved > 1e-3  # it trained (4 steps, the first in warm-up)
    for key, value in model.state_dict().items():
        assert torch.allclose(two[key], value, atol=5e-5, rtol=1e-4), key  # measured: 9e-6 apart; moved 3e-3


def test_a_run_resumes_only_with_the_number_of_processes_that_started_it(tmp_path):
    images, labels = _data()
    model = _model()
    optimizer, scheduler = optimizer_and_schedule(model, RECIPE, 2)
    save_state(tmp_path / "state.pt", "run", 1, model, optimizer, scheduler, {"world_size": 2})
    with pytest.raises(FaceRecError, match="unfinished run of 2 process"):
        train_model(_model(), images, labels, RECIPE, device=CPU, state_path=tmp_path / "state.pt",
                    fingerprint="run", show_progress=False)
    assert (tmp_path / "state.pt").exists()  # nothing lost: the checkpoint waits for 2 processes


def test_torchrun_trains_a_workspace_that_rank_0_writes(tmp_path):
    import json
    import subprocess
    import sys

    from facerec.data.synthetic import generate_dataset

    data = generate_dataset(tmp_path / "data", identities=4, images_per_identity=6, seed=2)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(_free_port()), "-m", "facerec", "train", str(data), "-w",
                          str(tmp_path / "ws"), "--model", "vit-face-test", "--from-scratch", "--epochs", "2",
                          "--batch-size", "8", "--json", "-q"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)  # one report: rank 0's
    assert report["world_size"] == 2 and report["backend"] == "gloo" and report["identities"] == 4
    training = json.loads((tmp_path / "ws" / "workspace.json").read_text())["training"]
    assert training["world_size"] == 2 and training["backend"] == "gloo"
