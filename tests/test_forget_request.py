"""One ForgetRequest, built the same way by every front end and checked when it is made."""

import pytest

from facerec.cli.forget import forget_request as from_cli
from facerec.cli.main import build_parser
from facerec.core.errors import FaceRecError
from facerec.server.app import ForgetRequest as Body
from facerec.server.app import forget_request as from_server
from forgetting.gslora import GSLoRAConfig
from forgetting.request import ForgetRequest


def test_the_cli_and_the_server_build_the_same_request():
    args = build_parser().parse_args(["forget", "alice", "bob", "alice", "--method", "gs-lora++", "--steps", "30",
                                      "--shots", "2", "--replay", "0.5", "--set", "rank=4", "--seed", "3"])
    body = Body(names=["alice", "bob", "alice"], method="gs-lora++", steps=30, shots=2, replay=0.5, set=["rank=4"],
                seed=3)
    cli, server = from_cli(args), from_server(body)
    assert cli == server
    assert cli.people == ("alice", "bob") and cli.method == "gs-lora++" and cli.shots == 2
    assert cli.config == GSLoRAConfig(rank=4, steps=30, steps_per_person=0, seed=3)


@pytest.mark.parametrize("change, message", [
    (dict(people=()), "at least one"),
    (dict(people=("../x",)), None),
    (dict(method="gs-lora-v2"), "unknown forgetting method"),
    (dict(shots=0), "--shots"),
    (dict(replay_fraction=1.5), "--replay"),
])
def test_a_bad_request_is_refused_when_it_is_made(change, message):
    fields = dict(people=("alice",), method="gs-lora") | change
    with pytest.raises(FaceRecError, match=message):
        ForgetRequest(**fields)
    with pytest.raises(FaceRecError):
        ForgetRequest.build(("alice",), settings=["rank=zero"])


def test_every_front_end_runs_requests_through_run_request():
    """No front end calls the keyword form (forget_people): the CLI, the server and the Python API
    hand a ForgetRequest to Session.forget (which runs run_request); the demo and the benchmarks
    run it on their own copies."""
    import inspect

    import facerec.cli.demo
    import facerec.cli.forget
    import facerec.cli.training
    import facerec.public
    import facerec.public.session
    import facerec.server.app
    import forgetting.bench
    import forgetting.evaluate

    for module in (facerec.cli.forget, facerec.public, facerec.server.app):
        source = inspect.getsource(module)
        assert "forget_people(" not in source and "run_request(" not in source and ".forget(" in source, module.__name__
    for module in (facerec.public.session, facerec.cli.demo, facerec.cli.training, forgetting.bench, forgetting.evaluate):
        source = inspect.getsource(module)
        assert "forget_people(" not in source and "run_request(" in source, module.__name__


def test_recovery_runs_once_when_the_writer_lock_hands_over_the_workspace(enrolled, monkeypatch):
    """Inside the writer lock the request does not recover the workspace again: ``complete_pending``
    runs on entry (the lock) and for the request's own clean-up, not a third time in between."""
    import forgetting.request as request_module
    from facerec.workspace import erasure
    from facerec.workspace.writer import writing

    _, ws = enrolled
    calls = []
    real = erasure.complete_pending
    monkeypatch.setattr(erasure, "complete_pending", lambda *a, **k: calls.append("lock") or real(*a, **k))
    monkeypatch.setattr(request_module, "complete_pending", lambda *a, **k: calls.append("request") or real(*a, **k))
    with writing(ws) as workspace:
        assert workspace.recovered and calls == ["lock"]
        request_module.run_request(workspace, ForgetRequest(("synth-0002",), config=GSLoRAConfig(steps=3, batch_size=4)),
                                   show_progress=False)
    assert calls == ["lock", "request"]  # the second: stage 6, the request's own clean-up
