"""The query cache deletes only what it can prove it created (docs/query.md, "Speed").

The cache directory may be one the user also keeps other things in
(``WIDEEVENTS_CACHE_DIR=~/work``, ``run_local(cache="results")``): nothing there that
lacks the cache's marker is deleted, emptied, followed or written into.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from tests.support.query import write_events
from wideevents.query import Query, run_local
from wideevents.query._cachedir import MARKER_NAME, MARKER_TEXT

TWO_HOURS_AGO = time.time() - 7200


def _age(*paths: Path) -> None:
    """Make paths look two hours old (the cache prunes leftovers older than an hour)."""
    for path in paths:
        os.utime(path, (TWO_HOURS_AGO, TWO_HOURS_AGO), follow_symlinks=False)


def _user_things(root: Path, outside: Path) -> dict[Path, bytes]:
    """What a user might keep in a directory the cache is pointed at; returns path -> bytes."""
    things: dict[Path, bytes] = {}
    notes = root / "notes"
    notes.mkdir(parents=True)
    things[notes / "todo.txt"] = b"buy milk\n"
    looks_like_entry = root / ("0123456789abcdef" * 2)  # 32 hex digits, no marker
    looks_like_entry.mkdir()
    things[looks_like_entry / "manifest.json"] = json.dumps({"path": "/nonexistent"}).encode()
    things[looks_like_entry / "p0123456789ab.parquet"] = b"user data"
    v3_like = root / ("v3-" + "f" * 32)  # the cache's own naming, but no marker
    v3_like.mkdir()
    things[v3_like / "manifest.json"] = json.dumps({"path": "/nonexistent"}).encode()
    things[root / "results.csv"] = b"a,b\n1,2\n"
    for path, data in things.items():
        path.write_bytes(data)
    (outside / "precious.txt").write_bytes(b"not yours")
    things[outside / "precious.txt"] = b"not yours"
    (root / ("v3-" + "e" * 32)).symlink_to(outside, target_is_directory=True)
    _age(notes, looks_like_entry, v3_like, *things)
    return things


def test_a_shared_cache_directory_keeps_everything_the_cache_did_not_create(
    tmp_path: Path,
) -> None:
    """Old directories without the marker, entry-like names, symlinks: all survive a prune."""
    root, outside = tmp_path / "work", tmp_path / "outside"
    outside.mkdir()
    things = _user_things(root, outside)
    data = write_events(tmp_path / "events.jsonl", [{"a": 1}, {"a": 2}])
    assert 2 == run_local(Query(), data, cache=root).rows[0]["COUNT"]  # a new entry: prune ran
    expected = {str(p): d for p, d in things.items()}
    assert expected == {str(p): p.read_bytes() for p in things if p.exists()}


def test_wideevents_cache_dir_pointing_at_a_user_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WIDEEVENTS_CACHE_DIR at a directory full of other things loses none of them."""
    root, outside = tmp_path / "home", tmp_path / "elsewhere"
    outside.mkdir()
    things = _user_things(root, outside)
    monkeypatch.setenv("WIDEEVENTS_CACHE_DIR", str(root))
    for n in range(3):  # each new file enters the cache and prunes it
        data = write_events(tmp_path / f"e{n}.jsonl", [{"a": n}])
        assert n == run_local(Query(calculations=["MAX(a)"]), data).rows[0]["MAX(a)"]
    assert {str(p): d for p, d in things.items()} == {
        str(p): p.read_bytes() for p in things if p.exists()
    }


def _entry_dirs(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if (p / MARKER_NAME).exists())


def test_the_cache_removes_its_own_entries_of_deleted_files(tmp_path: Path) -> None:
    """An entry the cache made for a file that is gone is removed when a new file enters."""
    cache = tmp_path / "cache"
    gone = write_events(tmp_path / "gone.jsonl", [{"a": 1}])
    run_local(Query(calculations=["SUM(a)"]), gone, cache=cache)
    (entry,) = _entry_dirs(cache)
    assert MARKER_TEXT == (entry / MARKER_NAME).read_bytes()
    gone.unlink()
    run_local(Query(), write_events(tmp_path / "new.jsonl", [{"a": 2}]), cache=cache)
    remaining = [json.loads((e / "manifest.json").read_text())["path"] for e in _entry_dirs(cache)]
    assert ([os.path.realpath(tmp_path / "new.jsonl")], False) == (remaining, entry.exists())


def test_a_user_file_inside_an_entry_survives_and_keeps_the_entry(tmp_path: Path) -> None:
    """Only the cache's own file names are deleted from an entry; anything else stays."""
    cache = tmp_path / "cache"
    gone = write_events(tmp_path / "gone.jsonl", [{"a": 1}])
    run_local(Query(), gone, cache=cache)
    (entry,) = _entry_dirs(cache)
    (entry / "mine.txt").write_text("keep me")
    gone.unlink()
    run_local(Query(), write_events(tmp_path / "new.jsonl", [{"a": 2}]), cache=cache)
    left = sorted(p.name for p in entry.iterdir())
    assert (["mine.txt"], "keep me") == (left, (entry / "mine.txt").read_text())


def test_deletion_never_follows_a_symlink_inside_an_entry(tmp_path: Path) -> None:
    """A symlink named like a part inside an entry is unlinked; its target is untouched."""
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    (outside / "data.parquet").write_bytes(b"precious")
    gone = write_events(tmp_path / "gone.jsonl", [{"a": 1}])
    run_local(Query(), gone, cache=cache)
    (entry,) = _entry_dirs(cache)
    (entry / "p000000000000.parquet").symlink_to(outside / "data.parquet")
    gone.unlink()
    run_local(Query(), write_events(tmp_path / "new.jsonl", [{"a": 2}]), cache=cache)
    assert (b"precious", False) == ((outside / "data.parquet").read_bytes(), entry.exists())


def test_a_stale_leftover_of_the_cache_is_pruned(tmp_path: Path) -> None:
    """An entry with the marker but no manifest (a crash), older than an hour, is removed."""
    cache = tmp_path / "cache"
    leftover = cache / ("v3-" + "a" * 32)
    leftover.mkdir(parents=True)
    (leftover / MARKER_NAME).write_bytes(MARKER_TEXT)
    (leftover / "p0123456789ab.parquet.tmp").write_bytes(b"half a part")
    _age(leftover)
    run_local(Query(), write_events(tmp_path / "new.jsonl", [{"a": 2}]), cache=cache)
    assert False is leftover.exists()


def test_a_directory_in_the_entrys_place_is_neither_used_nor_touched(tmp_path: Path) -> None:
    """A directory without the marker where this file's entry would go: the query still
    answers (without caching) and the directory's contents are unchanged, even when old."""
    cache = tmp_path / "cache"
    data = write_events(tmp_path / "events.jsonl", [{"a": 1}, {"a": 5}])
    digest = hashlib.sha256(os.fsencode(os.path.realpath(data))).hexdigest()[:32]
    squatters = [cache / digest, cache / f"v3-{digest}"]
    for d in squatters:
        d.mkdir(parents=True)
        (d / "manifest.json").write_text("not a manifest")
        (d / "mine.txt").write_text("mine")
        _age(d / "manifest.json", d / "mine.txt", d)
    answers = [run_local(Query(calculations=["MAX(a)"]), data, cache=cache).rows[0]["MAX(a)"]
               for _ in range(2)]  # fmt: skip
    contents = [sorted((p.name, p.read_text()) for p in d.iterdir()) for d in squatters]
    expected = [[("manifest.json", "not a manifest"), ("mine.txt", "mine")]] * 2
    assert ([5, 5], expected) == (answers, contents)
