"""The JSONL helper on real files: torn last lines, corrupt lines, atomic rewrites."""

import json

import pytest

from transcendence_jax import jsonl
from transcendence_jax.errors import UserError


def test_missing_file_reads_as_empty(tmp_path):
    path = tmp_path / "absent.jsonl"
    assert jsonl.read(path) == [] and jsonl.read(str(path)) == []
    assert not path.exists()  # reading creates nothing


def test_torn_last_line_is_dropped_and_the_file_repaired(tmp_path):
    path = tmp_path / "games.jsonl"  # a pathlib.Path, as well as str, is a path
    jsonl.append(str(path), [{"game_id": "a"}, {"game_id": "b"}])
    with open(path, "a") as f:
        f.write('{"game_id": "c", "res')  # killed mid-write
    torn = path.read_text()
    assert jsonl.read(path) == [{"game_id": "a"}, {"game_id": "b"}]
    assert path.read_text() == torn  # a plain reader never writes (a read-only copy, a live run's file)
    assert jsonl.read(path, repair=True) == [{"game_id": "a"}, {"game_id": "b"}]
    assert path.read_text() == '{"game_id": "a"}\n{"game_id": "b"}\n'  # repaired on disk
    jsonl.append(str(path), [{"game_id": "d"}])
    assert [r["game_id"] for r in jsonl.read(path)] == ["a", "b", "d"]  # the next row has its own line


def test_whole_last_row_without_its_newline_is_kept_and_terminated(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}')  # killed between the row and its newline
    assert jsonl.read(str(path), repair=True) == [{"step": 1}, {"step": 2}]
    jsonl.append(str(path), [{"step": 3}])
    assert path.read_text().splitlines() == ['{"step": 1}', '{"step": 2}', '{"step": 3}']


def test_bad_middle_line_is_a_user_error_naming_file_and_line(tmp_path):
    path = tmp_path / "model_stats.jsonl"
    text = '{"game_id": "a"}\nnot json at all\n{"game_id": "b"}\n'
    path.write_text(text)
    with pytest.raises(UserError, match=r"model_stats\.jsonl, line 2: not JSON \('not json at all'\)"):
        jsonl.read(str(path))
    assert path.read_text() == text  # refused, not "repaired"


def test_blank_lines_carry_no_row(tmp_path):
    path = tmp_path / "games.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n')
    assert jsonl.read(str(path)) == [{"a": 1}, {"a": 2}]


def test_rewrite_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "games.pgn"
    path.write_text("old contents\n")
    jsonl.rewrite(str(path), [{"k": 1}, '[GameId "x"]\n\n1. e4 *\n\n'])  # dicts as JSON lines, strings as they are
    assert path.read_text() == '{"k": 1}\n[GameId "x"]\n\n1. e4 *\n\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["games.pgn"]  # no .tmp left behind

    def failing_rows():
        yield {"k": 2}
        raise RuntimeError("killed mid-rewrite")

    with pytest.raises(RuntimeError):
        jsonl.rewrite(str(path), failing_rows())
    assert path.read_text() == '{"k": 1}\n[GameId "x"]\n\n1. e4 *\n\n'  # the old file, whole


def test_append_writes_one_json_line_per_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"s": "a\nb"}, {"n": 1.5, "l": [1, None]}]
    jsonl.append(str(path), rows)
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows
    assert jsonl.read(str(path)) == rows
