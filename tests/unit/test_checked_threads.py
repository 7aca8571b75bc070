"""The test suite's own thread helper: nothing a worker thread raises or leaves running goes unseen."""

from __future__ import annotations

import threading
import traceback

import pytest

from tests.support.threads import CheckedThread, join_all, start_all


def failing_writer() -> None:
    raise ConnectionError("the source went away")


def test_an_exception_in_a_thread_is_raised_with_its_traceback() -> None:
    threads = [CheckedThread(failing_writer, "writer-1"), CheckedThread(lambda: None, "writer-2")]
    start_all(threads)
    with pytest.raises(ConnectionError, match="the source went away") as raised:
        join_all(threads, timeout_seconds=10)
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert "failing_writer" in frames
    assert "raised in thread writer-1" in raised.value.__notes__


def test_every_failing_thread_is_reported() -> None:
    threads = [CheckedThread(failing_writer, "first"), CheckedThread(failing_writer, "second")]
    start_all(threads)
    with pytest.raises(ConnectionError) as raised:
        join_all(threads, timeout_seconds=10)
    assert any(note.startswith("second raised too:") and "failing_writer" in note for note in raised.value.__notes__)


def test_a_thread_still_running_after_the_join_fails_the_test() -> None:
    release = threading.Event()
    stuck = CheckedThread(release.wait, "stuck-writer")
    start_all([stuck])
    try:
        with pytest.raises(pytest.fail.Exception, match=r"threads \['stuck-writer'\] were still running when their 0.2s join ran out"):
            join_all([stuck], timeout_seconds=0.2)
    finally:
        release.set()
        stuck.join(5)


def test_threads_that_finish_cleanly_pass() -> None:
    done: list[int] = []
    threads = [CheckedThread(done.append, f"worker-{n}", args=(n,)) for n in range(3)]
    start_all(threads)
    join_all(threads, timeout_seconds=10)
    assert sorted(done) == [0, 1, 2]
