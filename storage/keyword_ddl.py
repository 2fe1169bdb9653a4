"""The keyword index's schema: SQLite FTS5 with triggers, PostgreSQL a generated tsvector + GIN.

Migration 0008 creates these objects and `keyword_index.rebuild` re-creates the SQLite
triggers from here; change them only together with a new migration.

Both dialects fold text the same way: lower case, diacritics removed (`FOLD_FROM` → `FOLD_TO`
is exactly what SQLite's `unicode61 remove_diacritics 2` folds, measured character by
character), words split at every ASCII punctuation mark. PostgreSQL's `simple` configuration
has no stopwords and no stemming, so every word is searchable in every language. The fold is an
IMMUTABLE SQL function (`translate`, no extension needed) so a stored generated column can use
it; case folding follows the database's LC_CTYPE (a UTF-8 locale folds Cyrillic, "C" only ASCII).
"""

from __future__ import annotations

FTS_TABLE = "memories_fts"
PG_COLUMN = "search_vector"
PG_INDEX = "ix_memories_search_vector"
PG_FOLD = "memorybot_fold"
SQLITE_TRIGGERS = ("memories_fts_insert", "memories_fts_delete", "memories_fts_update")
TOKENIZER = "unicode61 remove_diacritics 2"

FOLD_FROM = (
    "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜ"
    "ĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽ"
    "žſƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰ"
    "ȱȲȳςϐϑϕϖϰϱϵḀḁḂḃḄḅḆḇḈḉḊḋḌḍḎḏḐḑḒḓḔḕḖḗḘḙḚḛḜḝḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḮḯḰḱḲḳḴḵḶḷḸḹḺḻḼḽḾḿṀṁṂṃṄ"
    "ṅṆṇṈṉṊṋṌṍṎṏṐṑṒṓṔṕṖṗṘṙṚṛṜṝṞṟṠṡṢṣṤṥṦṧṨṩṪṫṬṭṮṯṰṱṲṳṴṵṶṷṸṹṺṻṼṽṾṿẀẁẂẃẄẅẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔ"
    "ẕẖẗẘẙẛẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứ"
    "ỪừỬửỮữỰựỲỳỴỵỶỷỸỹι"
)
FOLD_TO = (
    "aaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyyaaaaaaccccccccddeeeeeeeeeeg"
    "ggggggghhiiiiiiiiijjkkllllllnnnnnnoooooorrrrrrssssssssttttuuuuuuuuuuuuwwyyyzzzzz"
    "zsoouuaaiioouuuuuuuuuuaaggkkoooojggnnaaaaaaeeeeiiiioooorrrruuuusstthhaaeeooooooo"
    "oyyσβθφπκρεaabbbbbbccddddddddddeeeeeeeeeeffgghhhhhhhhhhiiiikkkkkkllllllllmmmmmmn"
    "nnnnnnnoooooooopppprrrrrrrrssssssssssttttttttuuuuuuuuuuvvvvwwwwwwwwwwxxxxyyzzzzz"
    "zhtwysaaaaaaaaaaaaaaaaaaaaaaaaeeeeeeeeeeeeeeeeiiiioooooooooooooooooooooooouuuuuu"
    "uuuuuuuuyyyyyyyyι"
)
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


SQLITE_CREATE = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    f"text, content='memories', content_rowid='rowid', tokenize='{TOKENIZER}')"
)
SQLITE_TRIGGER_DDL = (
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_TRIGGERS[0]} AFTER INSERT ON memories BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.rowid, new.text); END",
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_TRIGGERS[1]} AFTER DELETE ON memories BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.rowid, old.text);"
    " END",
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_TRIGGERS[2]} AFTER UPDATE OF text ON memories BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.rowid, old.text);"
    f" INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.rowid, new.text); END",
)
SQLITE_REBUILD = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"
SQLITE_DROP = (
    *(f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS),
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
)

PG_CREATE = (
    f"CREATE OR REPLACE FUNCTION {PG_FOLD}(value text) RETURNS text"
    " LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS"
    f" $$ SELECT translate(lower(value), {_literal(FOLD_FROM)}, {_literal(FOLD_TO)}) $$",
    f"ALTER TABLE memories ADD COLUMN {PG_COLUMN} tsvector GENERATED ALWAYS AS"
    f" (to_tsvector('simple'::regconfig, translate({PG_FOLD}(text), {_literal(PUNCTUATION)},"
    f" {_literal(' ' * len(PUNCTUATION))}))) STORED",
    f"CREATE INDEX {PG_INDEX} ON memories USING gin ({PG_COLUMN})",
)
PG_DROP = (
    f"DROP INDEX IF EXISTS {PG_INDEX}",
    f"ALTER TABLE memories DROP COLUMN IF EXISTS {PG_COLUMN}",
    f"DROP FUNCTION IF EXISTS {PG_FOLD}(text)",
)


def is_index_object(name: str | None) -> bool:
    """True for the schema objects above, which the ORM models leave out on purpose.

    They are dialect-specific (a virtual table, a generated column) and no ORM query reads
    them, so schema comparisons (alembic autogenerate) skip them with this predicate.
    """
    return bool(name) and (str(name).startswith(FTS_TABLE) or name in (PG_COLUMN, PG_INDEX))
