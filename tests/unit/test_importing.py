"""The /import parser: what it accepts, and how it names what it refuses (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from engine.import_json import BadImport, ImportItem
from engine.importing import check_size, parse_import

LIMIT = 100


def as_json(entries: object) -> bytes:
    return json.dumps(entries).encode()


def test_an_export_file_keeps_text_tags_and_times() -> None:
    export = {
        "exported_at": "2026-01-01T00:00:00+00:00",
        "memories": [
            {
                "id": "x",
                "text": "  oat milk #shopping ",
                "tags": ["Shopping", "#home", " "],
                "created_at": "2025-03-04T05:06:07+00:00",
                "expires_at": None,
            },
            {"text": "dentist friday", "created_at": "2025-03-04T05:06:07"},
        ],
        "count": 2,
    }
    items = parse_import(as_json(export), file_name="memorybot-export.JSON", limit=LIMIT)
    assert items == [
        ImportItem(
            "oat milk #shopping",
            ("shopping", "home"),
            datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
        ),
        ImportItem("dentist friday", (), datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)),
    ]


def test_a_bare_list_of_strings_or_objects_is_accepted_and_repeats_are_dropped() -> None:
    items = parse_import(as_json(["a", {"text": "b"}, "a "]), file_name="x.json", limit=LIMIT)
    assert [item.text for item in items] == ["a", "b"]


def test_paragraphs_of_a_text_file_with_windows_line_ends_and_a_bom() -> None:
    body = "\ufefffirst line\r\nsame memory\r\n\r\n \t \r\nsecond\n\n\n\nthird\n"
    items = parse_import(body.encode(), file_name="notes.txt", limit=LIMIT)
    assert [item.text for item in items] == ["first line\nsame memory", "second", "third"]


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"{", "x.json", "not valid JSON (line 1, column 2"),
        (b'{"memories": 3}', "x.json", "not an export"),
        (b'[{"txt": "a"}]', "x.json", 'Memory 1 in the file has no "text" string'),
        (b'["a", {"text": ""}]', "x.json", "Memory 2 in the file: There is nothing to remember"),
        (b'[{"text": "a", "tags": "x"}]', "x.json", '"tags" must be a list'),
        (b'[{"text": "a", "created_at": "soon"}]', "x.json", '"created_at" is not a date'),
        (b"ok\n\n\n" + b"y" * 101, "n.md", "The paragraph on line 4: That text has 101"),
        (b"a\n\xff", "n.txt", "not UTF-8 text (a bad byte on line 2)"),
        (b"\n \n", "n.txt", "holds no memories"),
        (b"a", "photo.jpg", "I import the .json file that /export sends"),
        # hostile files (issue 30): each crashed the handler and ended in a dead letter
        (b"[" * 50_000, "x.json", "nests lists or objects too deeply"),
        (b'[{"text": "a", "n": ' + b"9" * 5000 + b"}]", "x.json", "a number too long"),
        (
            b'["a", {"text": "b", "created_at": "0001-01-01T00:00:00+01:00"}]',
            "x.json",
            'Memory 2 in the file: "created_at" (0001-01-01T00:00:00+01:00) is not between 1900',
        ),
        (
            b'[{"text": "b", "expires_at": "9999-12-31T23:59:59-05:00"}]',
            "x.json",
            '"expires_at" (9999-12-31T23:59:59-05:00) is not between 1900 and 2999',
        ),
        (b'[{"text": "b", "created_at": "1850-01-01"}]', "x.json", "is not between 1900"),
        (b'[{"text": "b", "created_at": 1700000000}]', "x.json", '"created_at" is not a date'),
        (b'["ok", "hi \\ud800"]', "x.json", "Memory 2 in the file: That text holds a character"),
        (b'[{"text": ["a"]}]', "x.json", 'Memory 1 in the file has no "text" string'),
        (b'[{"text": "a", "tags": ["x", 3]}]', "x.json", '"tags" must be a list'),
        (b"[null]", "x.json", 'Memory 1 in the file has no "text" string'),
    ],
)
def test_bad_files_are_refused_naming_the_problem(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(BadImport) as refused:
        parse_import(data, file_name=name, limit=LIMIT)
    assert reason in str(refused.value)


def test_too_many_items_and_too_many_bytes() -> None:
    with pytest.raises(BadImport, match="holds 4 memories; one import takes at most 3"):
        parse_import(b"a\n\nb\n\nc\n\nd", file_name="n.txt", limit=LIMIT, max_items=3)
    with pytest.raises(BadImport, match=r"That file is 2\.5 MB; I import files of up to 2\.0 MB"):
        check_size(int(2.5 * 1024 * 1024))
    with pytest.raises(BadImport, match="up to 10 bytes"):
        parse_import(b"x" * 11, file_name="n.txt", limit=LIMIT, max_bytes=10)
