"""Python driver for Strata (docs/drivers/python.md).

    import strata
    with strata.connect("127.0.0.1", 7450) as client:
        client.append("wordcount", "*sentences", "the fox")
        client.select_one("wordcount", "$$word_counts", strata.Path().key("the"))

``strata.connect`` gives a blocking, thread-safe client; ``strata.aio.connect`` the same
API on asyncio with many requests in flight on one connection.
"""

from . import aio
from .client import Client, connect
from .diffs import Diff, apply_diff, apply_diffs
from .errors import *  # noqa: F401,F403 (StrataError and one subclass per error code)
from .errors import __all__ as _errors
from .path import Path
from .subscription import Subscription, Update
from .types import *  # noqa: F401,F403
from .types import __all__ as _types
from .values import FrozenDict, from_json, to_json

__version__ = "0.1.0"
__all__ = ["aio", "connect", "Client", "Path", "FrozenDict", "from_json", "to_json",
           "Subscription", "Update", "Diff", "apply_diff", "apply_diffs"] + \
    _errors + _types
