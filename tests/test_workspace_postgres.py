"""A workspace whose gallery is in PostgreSQL answers as the embedded one does: enroll, recognize,
remove and forget through the CLI give the same people, identities and scores; moving the gallery
there and back re-embeds nothing and loses nothing, even when killed half-way."""

import json
import shutil

import psycopg
import pytest

from facerec.cli.main import main
from facerec.workspace.galleries import store
from facerec.workspace.workspace import Workspace


def _json(capsys, *argv):
    capsys.readouterr()
    assert main([*argv, "--json", "-q"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _tables(url) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


@pytest.fixture
def twins(tiny_trained, tmp_path, postgres, capsys):
    """The same enrolled workspace twice: ``embedded`` as it is, ``pg`` with its gallery moved to PostgreSQL."""
    data, source = tiny_trained
    pair = {}
    for name in ("embedded", "pg"):
        shutil.copytree(source, tmp_path / name)
        assert main(["enroll", "--folder", str(data), "--split", "train", "--aligned", "-w", str(tmp_path / name),
                     "-q"]) == 0
        pair[name] = tmp_path / name
    moved = _json(capsys, "gallery", "use", postgres.url, "-w", str(pair["pg"]))
    assert moved["backend"] == "postgresql" and moved["vectors"] > 0
    yield data, pair
    stem = Workspace(pair["pg"]).manifest().get("gallery", {}).get("name")
    if stem:
        from gallery.postgres import drop

        for suffix in ("", "_staging", "_rebuild", "_old"):
            drop(postgres.url, stem + suffix)


def test_the_same_answers_as_the_embedded_gallery(twins, postgres, capsys):
    data, ws = twins
    info = _json(capsys, "gallery", "info", "-w", str(ws["pg"]))
    assert info["backend"] == "postgresql" and "@" in info["gallery"] and not (ws["pg"] / "gallery").exists()
    assert info["vectors"] == _json(capsys, "gallery", "info", "-w", str(ws["embedded"]))["vectors"]
    probes = [str(p) for person in sorted(data.iterdir()) if person.is_dir() for p in sorted(person.iterdir())[-2:]]

    def answers(workspace):
        report = _json(capsys, "recognize", *probes, "--aligned", "--top-k", "2", "-w", str(workspace))
        return [[(f["identity"], round(f["score"], 3), [c["identity"] for c in f["candidates"]]) for f in r["faces"]]
                for r in report["results"]]

    assert answers(ws["pg"]) == answers(ws["embedded"])
    people = _json(capsys, "people", "-w", str(ws["pg"]))
    assert people == _json(capsys, "people", "-w", str(ws["embedded"])) and len(people["people"]) == 6
    extra = sorted((data / "synth-0002").iterdir())[-1]  # enroll through the database too
    for workspace in ws.values():
        assert main(["enroll", "synth-0002", str(extra), "--aligned", "-w", str(workspace), "-q"]) == 0
    removed = [_json(capsys, "remove", "synth-0001", "-w", str(w)) for w in ws.values()]
    assert removed[0]["vectors_removed"] == removed[1]["vectors_removed"] > 0
    forgets = [_json(capsys, "forget", "synth-0003", "--steps", "5", "-w", str(w)) for w in ws.values()]
    assert forgets[0]["gallery"]["re_embedded"] == forgets[1]["gallery"]["re_embedded"] > 0
    for report in (removed[1], forgets[1]):  # nothing of them left in the gallery's files
        files = report["database"]["relation_files"]
        assert "database" not in removed[0] and "database" not in forgets[0]
        assert files["checked"] and files["files"] > 0 and files["name_hits"] == files["vector_hits"] == 0
        assert report["database"]["patterns"]["vectors"] > 0 and report["database"]["wal"]["checked"]
    # a remove deletes rows in place: found, so the tables were rewritten; a forget swapped in tables
    # built without the person: nothing found, nothing to rewrite
    assert removed[1]["database"]["found_before_reclaim"] > 0 and removed[1]["database"]["reclaimed"]
    assert forgets[1]["database"]["found_before_reclaim"] == 0 and not forgets[1]["database"]["reclaimed"]
    assert answers(ws["pg"]) == answers(ws["embedded"])
    after = _json(capsys, "people", "-w", str(ws["pg"]))["people"]
    assert after == _json(capsys, "people", "-w", str(ws["embedded"]))["people"]
    assert "synth-0001" not in after and "synth-0003" not in after
    stem = Workspace(ws["pg"]).manifest()["gallery"]["name"]
    assert {t for t in _tables(postgres.url) if t.startswith(stem)} == {f"{stem}__people", f"{stem}__vectors"}
    with psycopg.connect(postgres.url) as conn:  # the rows themselves, not only what facerec reports
        names = {r[0] for r in conn.execute(f'SELECT name FROM "{stem}__people"')}
        sources = [r[0] for r in conn.execute(f'SELECT source FROM "{stem}__vectors"')]
    assert names == set(after) and not any("synth-0003" in s or "synth-0001" in s for s in sources)


def test_moving_back_and_a_move_killed_half_way(twins, postgres, capsys, monkeypatch):
    data, ws = twins
    before = _json(capsys, "people", "-w", str(ws["pg"]))
    stem = Workspace(ws["pg"]).manifest()["gallery"]["name"]
    back = _json(capsys, "gallery", "use", "embedded", "-w", str(ws["pg"]))
    assert back["vectors"] == sum(before["people"].values()) and (ws["pg"] / "gallery" / "meta.sqlite").is_file()
    assert not {t for t in _tables(postgres.url) if t.startswith(stem)}  # dropped once the manifest let go
    assert _json(capsys, "people", "-w", str(ws["pg"])) == before

    from facerec.workspace import galleries

    def killed(self, role):  # the move's last step (removing the folder) never runs
        raise KeyboardInterrupt

    monkeypatch.setattr(galleries.EmbeddedStore, "remove", killed)
    with pytest.raises(KeyboardInterrupt):
        galleries.use_postgresql(Workspace(ws["pg"]), postgres.url)
    monkeypatch.undo()
    assert store(ws["pg"]).backend == "postgresql" and (ws["pg"] / "gallery").exists()  # committed, folder left
    assert _json(capsys, "people", "-w", str(ws["pg"])) == before  # answered from the database
    assert main(["calibrate", "-w", str(ws["pg"]), "-q"]) == 0  # the next writer removes the stale folder
    assert not (ws["pg"] / "gallery").exists()
    capsys.readouterr()
    assert main(["remove", "synth-0002", "-w", str(ws["pg"])]) == 0
    said = capsys.readouterr().out
    assert "table and index files" in said and "name found 0 time(s)" in said and "beyond facerec's reach" in said
    assert main(["gallery", "use", "postgresql://someone:secret@localhost/db", "-w", str(ws["pg"])]) == 2
    assert "password" in capsys.readouterr().err


def test_bad_databases_are_one_line_and_change_nothing(twins, postgres, capsys):
    data, ws = twins
    before = (ws["embedded"] / "workspace.json").read_bytes()
    dead = postgres.url.rsplit("port=", 1)[0] + "port=1"
    capsys.readouterr()
    assert main(["gallery", "use", dead, "-w", str(ws["embedded"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot connect") and "\n" not in err and "Traceback" not in err
    assert (ws["embedded"] / "workspace.json").read_bytes() == before and (ws["embedded"] / "gallery").is_dir()
    with psycopg.connect(postgres.url, autocommit=True) as conn:  # a database written by a newer facerec
        conn.execute("UPDATE facerec_schema SET version = 99")
        try:
            assert main(["people", "-w", str(ws["pg"])]) == 2
            err = capsys.readouterr().err.strip()
            assert "newer facerec" in err and "\n" not in err
        finally:
            conn.execute("UPDATE facerec_schema SET version = 1")
    manifest = Workspace(ws["pg"]).manifest()  # the workspace names a database that is gone
    Workspace(ws["pg"]).update_manifest(lambda m: m["gallery"].__setitem__("url", dead))
    try:
        assert main(["recognize", str(sorted((data / "synth-0000").iterdir())[0]), "--aligned", "-q", "-w", str(ws["pg"])]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: cannot connect") and "\n" not in err
    finally:
        Workspace(ws["pg"]).update_manifest(lambda m: m.__setitem__("gallery", manifest["gallery"]))
