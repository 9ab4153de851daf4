"""catalog.index.browse and the pager: views of the index answered a page at a time."""

from __future__ import annotations

import random

import orjson
import pytest

from catalog.index import browse
from catalog.index.browse import View
from catalog.errors import CardConflict, CardError, SidecarError
from catalog.index.library import Library
from lutnav.tui.paging import KEEP_PAGES, PAGE_SIZE, Pager
from tests.test_tui_support import demo_lib, demo_template  # noqa: F401  (fixtures)

WORDS = "ink wash anime neon pixel oil sketch robot castle forest knight witch".split()


@pytest.fixture
def big_lib(tmp_path) -> Library:
    """2,500 synthetic index rows (no files): enough for many pages, cheap to build."""
    lib = Library(tmp_path)
    rng = random.Random(3)
    rows = []
    for i in range(2500):
        a, b = rng.sample(WORDS, 2)
        category = rng.choice(["style", "character", "industry"])
        rows.append({
            "path": f"{category}/{a}/{a}_{b}_{i:05d}.safetensors", "kind": "file",
            "category": category, "theme": a, "name": f"{a}_{b}_{i:05d}",
            "base_model": rng.choice(["sd1", "sdxl", "flux", None]),
            "format": rng.choice(["kohya", "diffusers"]), "rank": rng.choice([4, 8, 16, None]),
            "strength": rng.choice([0.5, 0.7, None]), "size": rng.randint(1, 10**8),
            "trigger_words": orjson.dumps([b]).decode(), "warnings": "[]", "notes": f"{a} and {b}",
        })
    with lib.db.atomic():
        lib.db["entries"].insert_all(rows)
    return lib


def all_rows(lib: Library, view: View) -> list[dict]:
    return browse.page(lib, view, limit=10**6)


def test_pages_stitch_into_the_whole_view_in_order(big_lib):
    view = View(order_by="size", descending=True)
    whole = all_rows(big_lib, view)
    assert len(whole) == browse.count(big_lib, view) == 2500
    sizes = [r.size for r in whole]
    assert sizes == sorted(sizes, reverse=True)
    stitched = []
    for offset in range(0, 2500, 300):
        stitched += browse.page(big_lib, view, limit=300, offset=offset)
    assert [r.path for r in stitched] == [r.path for r in whole]


@pytest.mark.parametrize("view", [
    View(), View(category="style"), View(category="style", theme="ink"), View(base="sdxl"),
    View(fmt="diffusers", order_by="rank"), View(query="ink"), View(query="ink rob", base="sd1"),
    View(query="witch", category="character", order_by="strength", descending=True),
])
@pytest.mark.parametrize("few_hits", [0, 10**9], ids=["index-walk", "hits-sorted"])
def test_count_page_and_position_agree(big_lib, view, few_hits, monkeypatch):
    """Both query plans (sort index drives / full-text hits drive) give the same rows."""
    monkeypatch.setattr(browse, "FEW_HITS", few_hits)
    rows = all_rows(big_lib, view)
    monkeypatch.setattr(browse, "FEW_HITS", 10**9 - few_hits)
    assert [r.path for r in all_rows(big_lib, view)] == [r.path for r in rows]
    monkeypatch.setattr(browse, "FEW_HITS", few_hits)
    assert browse.count(big_lib, view) == len(rows)
    for want in (0, len(rows) // 2, len(rows) - 1) if rows else ():
        assert browse.position(big_lib, view, rows[want].path) == want
    for r in rows:
        assert view.category in (None, r.category) and view.base in (None, r.base_model)
    if view.query:
        words = view.query.split()
        assert all(any(w in (r.name + " " + " ".join(r.trigger_words)) for w in words)
                   for r in rows)


def test_counts_follow_writes_from_another_connection(big_lib):
    view = View(query="zebra")
    assert browse.count(big_lib, view) == 0
    other = Library(big_lib.root)  # e.g. a scan running in another process
    other.db["entries"].insert({"path": "style/zebra/zebra.safetensors", "name": "zebra",
                                "category": "style", "theme": "zebra", "warnings": "[]",
                                "trigger_words": "[]"})
    assert browse.count(big_lib, view) == 1
    assert [r.name for r in browse.page(big_lib, view, limit=10)] == ["zebra"]


def test_position_is_none_outside_the_view(big_lib):
    some = all_rows(big_lib, View(category="style"))[0].path
    assert browse.position(big_lib, View(category="industry"), some) is None


def test_nulls_sort_first_ascending_and_last_descending(big_lib):
    up = [r.rank for r in all_rows(big_lib, View(order_by="rank"))]
    down = [r.rank for r in all_rows(big_lib, View(order_by="rank", descending=True))]
    assert up[0] is None and down[-1] is None
    assert up == list(reversed(down))


def test_folder_counts_and_facets_add_up(big_lib):
    counts = browse.folder_counts(big_lib)
    assert sum(n for _, _, n in counts) == 2500
    assert counts == sorted(counts)
    bases = dict(browse.facet(big_lib, "base_model"))
    assert sum(bases.values()) == browse.count(big_lib, View()) - browse.count(big_lib, View(base=""))
    with pytest.raises(ValueError):
        browse.facet(big_lib, "notes; drop table entries")


def test_pager_keeps_only_a_few_pages(big_lib):
    pager = Pager(big_lib, View(order_by="name"))
    names = [r.name for r in all_rows(big_lib, View(order_by="name"))]
    for i in range(0, 2500, 37):
        assert pager.row(i).name == names[i]
    assert pager.row(2500) is None and pager.row(-1) is None
    assert pager.cached_rows <= KEEP_PAGES * PAGE_SIZE


def test_hostile_queries_are_just_text(big_lib):
    for text in ['"', "ink OR", "NEAR(", "*", "-ink", "a" * 10_000, "ink' ; drop table entries --"]:
        view = View(query=text)
        assert browse.count(big_lib, view) == len(all_rows(big_lib, view))
    assert big_lib.db["entries"].count == 2500


# --- card drafts -------------------------------------------------------------------


def test_open_card_gives_form_texts_that_parse_back(demo_lib):
    from catalog.cards.card import parse_set
    from catalog.cards.card_file import read_card

    path = demo_lib.root / "style/anime/cute_anime_girl_zz.toml"
    draft = browse.open_card(path)
    card, digest = read_card(path)
    assert draft.digest == digest and draft.error is None
    assert draft.fields["trigger_words"] == "zz_girl"
    assert draft.fields["strength_range"] == "0.5~0.9"
    texts = {k: v for k, v in draft.fields.items() if v}
    assert parse_set([f"{k}={v}" for k, v in texts.items()]) == card.to_dict()
    assert browse.changed_fields(draft, {"strength": "0.7", "notes": "new"}) == ["notes=new"]


def test_missing_card_opens_empty_and_broken_card_opens_raw(tmp_path):
    draft = browse.open_card(tmp_path / "x.toml")
    assert draft.digest is None and set(draft.fields.values()) == {""}
    broken = tmp_path / "y.toml"
    broken.write_text("strength = = 1\n", "utf-8")
    draft = browse.open_card(broken)
    assert draft.fields is None and "not valid TOML" in draft.error
    assert draft.text == "strength = = 1\n"
    wrong_type = tmp_path / "z.toml"
    wrong_type.write_text('strength = "strong"\n', "utf-8")
    assert "expected" in browse.open_card(wrong_type).error


def test_save_card_text_checks_then_replaces_atomically(tmp_path):
    path = tmp_path / "y.toml"
    path.write_text("strength = = 1\n", "utf-8")
    draft = browse.open_card(path)
    with pytest.raises(SidecarError):
        browse.save_card_text(draft, "still = = broken")
    with pytest.raises(CardError):
        browse.save_card_text(draft, 'strength = "strong"\n')
    assert path.read_text("utf-8") == "strength = = 1\n"
    card = browse.save_card_text(draft, "# fixed\nstrength = 0.8\n")
    assert card.strength == 0.8 and path.read_text("utf-8") == "# fixed\nstrength = 0.8\n"
    with pytest.raises(CardConflict):  # the draft's digest is of the old bytes
        browse.save_card_text(draft, "strength = 0.9\n")
    assert path.read_text("utf-8") == "# fixed\nstrength = 0.8\n"
