"""What an executor worker needs for one attempt."""

import uuid
from typing import Any, Callable, Optional, Union

import attrs

from blackbox_sync.qa.spec import Case


@attrs.define
class AttemptJob:
    """Everything an executor worker needs for one attempt (it pickles)."""

    suite: str
    case: Case
    target: Any
    """A :class:`~blackbox_sync.qa.targets.Target`: the built-in ones, or a user's own object
    with the same methods (``secrets()`` and ``record_dir`` are optional)."""
    repeat: int = 1
    attempt: int = 1
    judge: Optional[Union[str, Callable[..., Any]]] = None
    judge_cache: Optional[str] = None
    base_dir: Optional[str] = None
    nonce: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    """Makes every job distinct, so an executor that caches by arguments (dask) never reuses
    another attempt's result."""
