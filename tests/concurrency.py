"""Running work in threads released at the same instant, each with its own database connection."""

import threading
from collections.abc import Callable, Sequence

from django.db import connection


def all_at_once(works: Sequence[Callable]) -> list:
    """Run each callable in its own thread, all released together; their results, in order. A
    thread's exception fails the caller (it would otherwise vanish with the thread)."""
    start = threading.Barrier(len(works))
    results: list = [None] * len(works)
    failures: list[BaseException] = []

    def run(position: int) -> None:
        try:
            start.wait()
            results[position] = works[position]()
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(position,)) for position in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return results
