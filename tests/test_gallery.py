"""Gallery: agrees with brute-force numpy, deletes for real, persists atomically."""

import numpy as np
import pytest

from gallery import Gallery, GalleryError, GalleryWriteError
from gallery import index as fx

DIM = 16


def _unit(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fill(g, people=6, each=5, seed=0):
    vecs = {}
    for p in range(people):
        v = _unit(each, seed * 100 + p)
        g.add(f"person{p}", v, image_hashes=[f"h{p}-{i}" for i in range(each)], sources=["test"] * each,
              model_version="m1")
        vecs[f"person{p}"] = v
    return vecs


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_search_agrees_with_brute_force(tmp_path, kind):
    g = Gallery.create(tmp_path / "g", DIM, "m1", index_kind=kind)
    vecs = _fill(g, people=20, each=10)
    g.save()  # switches to the requested index kind
    if kind == "ivf":
        g._vectors.nprobe = g._vectors.nlist  # scanning every cell and re-scoring every candidate
        g._vectors.rerank = len(g)            # makes the approximate index exact
    names = np.array([n for n, v in vecs.items() for _ in v])
    db = np.concatenate(list(vecs.values()))
    queries = _unit(30, 99)
    expected = np.argsort(-(queries @ db.T), axis=1)[:, :3]
    for q, matches in enumerate(g.search(queries, k=3)):
        assert [m.identity for m in matches] == list(names[expected[q]])
        assert np.allclose([m.score for m in matches], (queries[q] @ db.T)[expected[q]], atol=1e-5)


def test_search_people_finds_the_runner_up_behind_a_person_with_many_images(tmp_path):
    g = Gallery.create(tmp_path / "g", DIM, "m1")
    query = _unit(1, 7)
    near = query + 0.05 * _unit(40, 8)  # 40 images of one person, all closer than anyone else
    g.add("crowd", near, image_hashes=[f"c{i}" for i in range(40)], sources=["t"] * 40, model_version="m1")
    vecs = _fill(g, people=4, each=3)
    db = {n: v / np.linalg.norm(v, axis=1, keepdims=True) for n, v in vecs.items()}
    best = {n: float((v @ query[0]).max()) for n, v in db.items()}
    ranked = sorted(best, key=best.get, reverse=True)
    row = g.search_people(query, k=3)[0]
    assert [m.identity for m in row] == ["crowd"] + ranked[:2]  # a window of 30 images holds only "crowd"
    assert np.isclose(row[1].score, best[ranked[0]], atol=1e-5)
    row = g.search_people(query, k=2, exclude={"crowd", ranked[0]})[0]
    assert [m.identity for m in row] == ranked[1:3]
    assert g.search_people(query, k=10)[0][-1].identity == ranked[-1]  # fewer people than k: all of them


def test_templates_are_normalised_means(tmp_path):
    g = Gallery.create(tmp_path / "g", DIM, "m1")
    vecs = _fill(g, people=4)
    means = {n: v.mean(0) / np.linalg.norm(v.mean(0)) for n, v in vecs.items()}
    query = means["person2"][None]
    best = g.search_templates(query, k=1)[0][0]
    assert best.identity == "person2" and best.score == pytest.approx(1.0, abs=1e-5)


def test_remove_person_removes_vectors_template_and_rows(tmp_path):
    g = Gallery.create(tmp_path / "g", DIM, "m1")
    vecs = _fill(g)
    g.save()
    assert g.remove_person("person3") == 5
    g.save()
    assert "person3" not in g.people() and len(g) == 25
    hits = g.search(vecs["person3"], k=30)
    assert all(m.identity != "person3" for row in hits for m in row)
    assert all(m.identity != "person3" for row in g.search_templates(vecs["person3"], k=10) for m in row)
    reopened = Gallery.open(tmp_path / "g")
    assert "person3" not in reopened.people() and len(reopened) == 25
    raw = (tmp_path / "g" / "meta.sqlite").read_bytes()
    assert b"person3" not in raw and b"h3-0" not in raw  # secure_delete zeroed the rows
    with pytest.raises(GalleryError, match="not enrolled"):
        g.remove_person("person3")


def test_ids_are_stable_across_deletes_and_reopen(tmp_path):
    g = Gallery.create(tmp_path / "g", DIM, "m1")
    vecs = _fill(g)
    g.save()
    before = {m.vector_id for row in g.search(vecs["person5"], k=1) for m in row}
    g.remove_person("person0")
    g.save()
    g = Gallery.open(tmp_path / "g")
    after = {m.vector_id for row in g.search(vecs["person5"], k=1) for m in row}
    assert before == after


def test_model_versions_never_mix(tmp_path):
    g = Gallery.create(tmp_path / "g", DIM, "m1")
    with pytest.raises(GalleryError, match="model"):
        g.add("x", _unit(1, 0), image_hashes=["h"], sources=["s"], model_version="m2")
    with pytest.raises(GalleryError, match="dimension"):
        g.add("x", np.ones((1, DIM + 1), np.float32), image_hashes=["h"], sources=["s"], model_version="m1")


def test_unsaved_changes_roll_back_and_a_failed_save_keeps_the_old_generation(tmp_path, monkeypatch):
    g = Gallery.create(tmp_path / "g", DIM, "m1")
    _fill(g, people=2)
    g.save()
    g.add("late", _unit(2, 7), image_hashes=["a", "b"], sources=["s", "s"], model_version="m1")
    g.rollback()
    assert set(g.people()) == {"person0", "person1"} and len(g) == 10

    g.remove_person("person0")

    def broken_write(index, path):
        raise OSError("disk full")

    monkeypatch.setattr(fx, "write", broken_write)
    with pytest.raises(GalleryWriteError):
        g.save()
    monkeypatch.undo()
    g.close()
    reopened = Gallery.open(tmp_path / "g")
    assert set(reopened.people()) == {"person0", "person1"} and len(reopened) == 10


def test_auto_index_switches_to_ivf_when_large(tmp_path, monkeypatch):
    monkeypatch.setattr(fx, "EXACT_LIMIT", 100)
    g = Gallery.create(tmp_path / "g", DIM, "m1")
    vecs = _fill(g, people=30, each=5)
    g.save()
    assert fx.index_kind(g._vectors) == "ivf"
    g.remove_person("person7")
    g.save()
    assert len(g) == 145
    assert all(m.identity != "person7" for row in g.search(vecs["person7"], k=5) for m in row)


def test_approximate_index_persists_and_deletes_from_both_parts(tmp_path):
    g = Gallery.create(tmp_path / "g", DIM, "m1", index_kind="ivf")
    vecs = _fill(g, people=20, each=10)
    g.save()
    before = g.search(vecs["person4"], k=3)
    g.close()
    g = Gallery.open(tmp_path / "g")
    assert isinstance(g._vectors, fx.RefinedIVF) and g.search(vecs["person4"], k=3) == before
    g.remove_person("person4")
    g.save()
    assert g._vectors.exact.ntotal == g._vectors.fast.ntotal == 190
    g._vectors.nprobe, g._vectors.rerank = g._vectors.nlist, len(g)
    assert all(m.identity != "person4" for row in g.search(vecs["person4"], k=10) for m in row)


def test_deleting_leaves_no_code_behind_in_the_saved_approximate_index():
    """Fast-scan lists keep codes in blocks of 32: a removed list tail must be zeroed, not just cut."""
    import faiss

    x = _unit(3000, 7)
    ids = np.arange(3000, dtype=np.int64)
    index = fx.make_ivf(x, nlist=16)
    index.add_with_ids(x, ids)
    list_of = np.array([faiss.lo_listno(index.exact.direct_map.get(int(i))) for i in ids])
    last = int(ids[list_of == 3].max())  # the last vector added to list 3
    assert fx.remove(index, np.array([last])) == 1
    fresh = fx.make_ivf(x, nlist=16)
    fresh.add_with_ids(x[ids != last], ids[ids != last])
    assert np.array_equal(faiss.serialize_index(index.fast), faiss.serialize_index(fresh.fast))


def test_a_gallery_is_a_context_manager_that_closes_even_on_an_error(tmp_path):
    import sqlite3

    with Gallery.create(tmp_path / "g", DIM, "m1") as g:
        _fill(g, people=2, each=2)
        g.save()
    with pytest.raises(sqlite3.ProgrammingError):  # closed: its database refuses further use
        g._db.execute("SELECT 1")
    with pytest.raises(RuntimeError):
        with Gallery.open(tmp_path / "g") as reopened:
            assert sorted(reopened.people()) == ["person0", "person1"]
            raise RuntimeError("the caller fails")
    with pytest.raises(sqlite3.ProgrammingError):
        reopened._db.execute("SELECT 1")


def test_templates_follow_adds_before_and_after_a_save_and_a_rollback(tmp_path):
    """Templates are recomputed in one pass (before a template search or a save), not per add."""
    g = Gallery.create(tmp_path / "g", DIM, "m1")
    first = _unit(3, 1)
    g.add("ann", first, image_hashes=["a", "b", "c"], sources=["t"] * 3, model_version="m1")
    assert g.search_templates(first.mean(axis=0), k=1)[0][0].identity == "ann"  # unsaved, already searchable
    more = _unit(2, 2)
    g.add("ann", more, image_hashes=["d", "e"], sources=["t"] * 2, model_version="m1")
    g.add("bob", _unit(1, 3), image_hashes=["f"], sources=["t"], model_version="m1")
    g.save()
    mean = np.concatenate([first, more]).mean(axis=0)
    match = g.search_templates(mean, k=1)[0][0]
    assert match.identity == "ann" and match.score == pytest.approx(1.0, abs=1e-5)
    g.add("cid", _unit(1, 4), image_hashes=["g"], sources=["t"], model_version="m1")
    g.rollback()
    assert [m.identity for m in g.search_templates(_unit(1, 4), k=3)[0]] != [] and "cid" not in g.people()
    g.close()
    g = Gallery.open(tmp_path / "g")
    assert g.search_templates(mean, k=1)[0][0].score == pytest.approx(1.0, abs=1e-5)
    g.close()
