"""`facerec eval verification|identification` end to end on the tiny workspace."""

import json

from facerec.cli.main import main
from facerec.data.insightface_formats import write_bin


def _json(capsys, argv):
    code = main(argv + ["--json", "-q"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else captured.err)


def _pairs(data):
    """20 pairs in 10 folds (1 genuine + 1 impostor each) over the synthetic people."""
    people = sorted(p.name for p in data.iterdir())
    files = {p: sorted(f.name for f in (data / p).iterdir()) for p in people}
    pairs = []
    for k in range(10):
        a, b = people[k % 6], people[(k + 1) % 6]
        pairs.append((data / a / files[a][k % 5], data / a / files[a][5], True))
        pairs.append((data / a / files[a][k % 6], data / b / files[b][k % 6], False))
    return pairs


def test_verification_on_a_bin_set_with_roc(tiny_trained, tmp_path, capsys):
    data, ws = tiny_trained
    pairs = _pairs(data)
    write_bin(tmp_path / "t.bin", [p.read_bytes() for a, b, _ in pairs for p in (a, b)], [s for *_, s in pairs])
    code, r = _json(capsys, ["eval", "verification", "--bin", str(tmp_path / "t.bin"), "--flip", "--out",
                             str(tmp_path / "out"), "-w", str(ws)])
    assert code == 0 and r["pairs"] == 20 and r["folds"] == 10 and len(r["fold_accuracies"]) == 10
    assert 0 <= r["accuracy_mean"] <= 1 and (tmp_path / "out" / "roc.png").is_file()


def test_verification_pairs_file_unreadable_image_fails_or_is_listed(tiny_trained, tmp_path, capsys):
    data, ws = tiny_trained
    root = tmp_path / "images"
    lines = ["10\t1"]
    for i, (a, b, same) in enumerate(_pairs(data)):  # re-laid out as LFW names: Person/Person_000N.jpg
        for src, name, n in ((a, f"P{a.parent.name[-1]}", i * 2 + 1), (b, f"P{b.parent.name[-1]}", i * 2 + 2)):
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / f"{name}_{n:04d}.jpg").write_bytes(src.read_bytes())
        na, nb = f"P{a.parent.name[-1]}", f"P{b.parent.name[-1]}"
        lines.append(f"{na}\t{i * 2 + 1}\t{i * 2 + 2}" if same else f"{na}\t{i * 2 + 1}\t{nb}\t{i * 2 + 2}")
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    broken = root / "P0" / "P0_0001.jpg"
    broken.write_bytes(broken.read_bytes()[:300])  # a truncated JPEG
    argv = ["eval", "verification", "--pairs", str(tmp_path / "pairs.txt"), "--root", str(root), "--aligned", "-w", str(ws)]
    code, err = _json(capsys, argv)
    assert code == 2 and "P0_0001.jpg" in err and "--skip-unreadable" in err
    code, r = _json(capsys, argv + ["--skip-unreadable"])
    assert code == 0 and r["pairs_listed"] == 20 and r["pairs"] == 19 and r["pairs_skipped"] == ["P0_0001.jpg P0_0002.jpg"]
    assert r["genuine"] == 9 and r["impostor"] == 10


def test_identification_closed_and_open_set(tiny_trained, tmp_path, capsys):
    data, ws = tiny_trained
    import shutil

    root = tmp_path / "people"
    shutil.copytree(data, root)
    for extra in ("synth-0004", "synth-0005"):  # two people with a single photo: distractors
        for f in sorted((root / extra).iterdir())[1:]:
            f.unlink()
    broken = sorted((root / "synth-0000").iterdir())[-1]
    broken.write_bytes(b"not an image")  # skipped and listed, like training does
    code, r = _json(capsys, ["eval", "identification", str(root), "--fpir", "0.5", "-w", str(ws)])
    assert code == 0 and r["people"] == 4 and r["mated_probes"] == 4 * 5 - 1 and r["distractors"] == 2
    assert r["skipped_unreadable"] == [f"synth-0000/{broken.name}"]
    assert 0 <= r["rank1"] <= r["rank5"] == 1.0  # 4 people: the right one is always in the top 5
    assert r["fpir"] <= 0.5 and 0 <= r["tpir"] <= r["rank1"]
