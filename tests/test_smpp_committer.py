"""The group committer on its own: batches, results, failures, stop."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from modemd.errors import StoreError
from modemd.store import Store
from modemd.store.committer import GroupCommitter
from modemd.store.journal import CommitResult, Journal, RawEntry


def entry(i: int) -> RawEntry:
    return RawEntry(modem="agg", mode="smpp", raw=bytes(16) + f"body {i}".encode())


def test_every_caller_gets_its_own_result_and_repeats_are_not_new(store: Store) -> None:
    committer = GroupCommitter(store.journal)
    committer.start()
    try:
        first = committer.commit(entry(1))
        again = committer.commit(entry(1))
        other = committer.commit(entry(2))
        assert first.inserted and not again.inserted and other.inserted
        assert first.raw_id == again.raw_id != other.raw_id
        assert store.journal.count() == 2
    finally:
        committer.stop()


def test_a_bug_in_the_journal_fails_the_batch_not_the_thread(store: Store) -> None:
    class Broken(Journal):
        calls = 0

        def commit_many(self, entries: Sequence[RawEntry]) -> list[CommitResult]:
            Broken.calls += 1
            if Broken.calls == 1:
                raise TypeError("a bug")
            return super().commit_many(entries)

    committer = GroupCommitter(Broken(store.db))
    committer.start()
    try:
        with pytest.raises(StoreError, match="a bug"):
            committer.commit(entry(1))
        assert committer.alive
        assert committer.commit(entry(1)).inserted
    finally:
        committer.stop()


def test_stop_commits_what_was_submitted(store: Store) -> None:
    committer = GroupCommitter(store.journal)
    committer.start()
    done = threading.Event()
    results: list[CommitResult | None] = []

    def record(result: CommitResult | None, error: StoreError | None) -> None:
        results.append(result)
        if len(results) == 100:
            done.set()

    for i in range(100):
        committer.submit(entry(i), record)
    committer.stop()
    assert done.is_set() and all(r is not None and r.inserted for r in results)
    assert store.journal.count() == 100
    refused: list[StoreError | None] = []
    committer.submit(entry(200), lambda result, error: refused.append(error))
    assert isinstance(refused[0], StoreError)
