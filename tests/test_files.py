import os

from nesgan.files import JsonlAppender, atomic_write_bytes, read_jsonl


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "x.bin", b"hello")
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"hello"
    assert os.listdir(tmp_path / "a") == ["x.bin"]


def test_jsonl_reader_skips_a_torn_last_line_and_appender_repairs_it(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')  # killed mid-append
    assert read_jsonl(path) == [{"a": 1}]
    with JsonlAppender(path) as app:
        app.append({"a": 3})
    assert read_jsonl(path) == [{"a": 1}, {"a": 3}]


def test_jsonl_rows_have_sorted_keys(tmp_path):
    path = tmp_path / "m.jsonl"
    with JsonlAppender(path) as app:
        app.append({"b": 1, "a": 2})
    assert path.read_text() == '{"a": 2, "b": 1}\n'
