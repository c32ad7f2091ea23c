"""Hybrid retrieval (graphs/retrieval.py) as the chat uses it: time filtering, the
deep unfiltered dense pool, and the filtered fallback when neighbours are mostly stale."""
from __future__ import annotations

from datetime import datetime, timezone

from graphs.retrieval import hybrid_search


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


def seed_versions(app, n_stale: int) -> str:  # noqa: ANN001
    """n_stale facts true in 2020 and false since 2021, and one current fact."""
    st = app.store
    with st.transaction() as c:
        for i in range(n_stale):
            fid = st.insert_fact(c, f"The Acme widget model {i} is on sale.", "Acme widget", "is", "on sale")
            st.add_history(c, fid, t("2020-01-01"), True, None, "extract", None)
            st.add_history(c, fid, t("2021-01-01"), False, None, "make_false", None)
        cur = st.insert_fact(c, "The Acme widget model X is on sale.", "Acme widget", "is", "on sale")
        st.add_history(c, cur, t("2021-01-01"), True, None, "extract", None)
    app.index.sync(st)
    return cur


def test_mostly_stale_neighbours_fall_back_to_the_filtered_search(app, monkeypatch):
    cur = seed_versions(app, 120)
    calls: list[bool] = []
    real = app.index.query

    def spy(text: str, k: int, current_only: bool = True):  # noqa: ANN202
        calls.append(current_only)
        return real(text, k, current_only)

    monkeypatch.setattr(app.index, "query", spy)
    hits = hybrid_search(app.store, app.index, "Which Acme widget model is on sale?", 3)
    assert [h.fact.id for h in hits] == [cur]  # the stale versions never come back
    assert calls == [False, True]  # unfiltered first; too few current among them: filtered

    calls.clear()
    hits = hybrid_search(app.store, app.index, "Which Acme widget model is on sale?", 3, as_of=t("2020-06-01"))
    assert len(hits) == 3 and all(h.fact.truth_at(t("2020-06-01")) for h in hits) and calls == [False]
    hits = hybrid_search(app.store, app.index, "Which Acme widget model is on sale?", 200, include_stale=True)
    assert len(hits) > 3


def test_current_neighbours_need_no_filtered_search(app, monkeypatch):
    seed_versions(app, 0)
    calls: list[bool] = []
    real = app.index.query
    monkeypatch.setattr(app.index, "query", lambda text, k, current_only=True: calls.append(current_only) or real(text, k, current_only))
    hits = hybrid_search(app.store, app.index, "Which Acme widget model is on sale?", 3)
    assert len(hits) == 1 and calls == [False]


def test_stop_words_do_not_make_lexical_hits(app):
    seed_versions(app, 0)
    hits = hybrid_search(app.store, app.index, "Who is it that was there, and what is on?", 3)
    assert all(h.lexical is None for h in hits)
    hits = hybrid_search(app.store, app.index, "widget", 3)
    assert hits and hits[0].lexical is not None
