"""One time budget for every request huggingface_hub makes while a model is read from the Hub.

huggingface_hub (2.4.0, as pinned in locks/runtime.txt) gives a HEAD of a file 10 s (``HF_HUB_ETAG_TIMEOUT``,
constants.py lines 37 and 310), and when that fails and no file is cached, asks again with a 60 s timeout
(``_ETAG_RETRY_TIMEOUT``, file_download.py line 89) under ``http_backoff``'s 5 retries with waits of 1, 2, 4, 8 and 8 s
(utils/_http.py lines 473-475 and 569): an endpoint that accepts connections and never answers costs about 397 s.
Neither timeout bounds the whole. So every request of the client huggingface_hub shares (``set_client_factory``,
utils/_http.py line 372) goes through one more request hook: it gives the request at most the time left of the
budget (connect, read, write and pool alike), and once the budget is spent it raises ``BudgetSpent``, which is not an
httpx error, so ``http_backoff`` does not retry it and it leaves ``hf_hub_download`` as it is.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from helm_rdma.errors import HubTimeoutSettingError

ENV = "HELM_RDMA_HUB_TIMEOUT"
DEFAULT_SECONDS = 60.0
MAX_SECONDS = 3600.0


class BudgetSpent(Exception):  # noqa: N818  # a signal between the hook and hubmodel, never shown to a user
    """The Hub's time budget is spent: no further request is sent."""


def budget_seconds(env: Mapping[str, str] = os.environ) -> float:
    """The Hub's time budget in seconds: ``HELM_RDMA_HUB_TIMEOUT`` when set, else 60.

    Raises:
        HubTimeoutSettingError: Not a number of seconds above 0 and at most an hour.
    """
    raw = env.get(ENV, "").strip()
    if not raw:
        return DEFAULT_SECONDS
    try:
        seconds = float(raw.removesuffix("s"))
    except ValueError:
        seconds = math.nan
    if not (0 < seconds <= MAX_SECONDS):  # NaN fails this too
        raise HubTimeoutSettingError(variable=ENV, value=raw, most=int(MAX_SECONDS))
    return seconds


@contextmanager
def hub_budget(seconds: float) -> Iterator[None]:
    """Within the block, every request huggingface_hub sends shares ``seconds`` in all."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    deadline = time.monotonic() + seconds

    def bounded(request: Any) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BudgetSpent(f"the budget of {seconds:g} s is spent")
        given = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            phase: left if given.get(phase) is None else min(float(given[phase]), left)
            for phase in ("connect", "read", "write", "pool")}

    previous = _http._GLOBAL_CLIENT_FACTORY

    def factory() -> Any:
        client = previous()
        client.event_hooks = {**client.event_hooks, "request": [*client.event_hooks["request"], bounded]}
        return client

    # huggingface_hub logs a warning per retry ("Retrying in 1s [Retry 1/5]", utils/_http.py http_backoff): the
    # budget's one failure line says what happened, so those stay quiet within the block.
    retries = logging.getLogger(_http.__name__)
    level = retries.level
    set_client_factory(factory)
    retries.setLevel(logging.ERROR)
    try:
        yield
    finally:
        set_client_factory(previous)
        retries.setLevel(level)
