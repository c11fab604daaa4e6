"""The sending machinery shared by the network sinks: the only code that talks HTTP.

One entry point: a sink builds a :class:`Sender` with a :class:`Codec` (how a batch body
is written and what a reply means) and submits pre-encoded items for a
:class:`Destination` (origin, path, headers). Inside:

- :mod:`.sender`: buffers per destination, sender threads, flush/close, fork handling;
- :mod:`.delivery`: one batch's life (compress, POST, retry with backoff, split, settle);
- :mod:`.http`: keep-alive connections, origins, compression, ``Retry-After`` (seconds or
  an HTTP-date), the ``User-Agent`` every request carries;
- :mod:`.contract`: the interfaces above and :class:`SenderConfig`;
- :mod:`.reasons`: backend-supplied texts made bounded (rejection reasons, log lines).

The transport imports the core (ledger, log) and nothing above it: never the sinks.
"""

from .contract import SENT, Codec, Destination, Reply, SenderConfig, backoff_delay, reply_for_status
from .http import (
    COMPRESSIONS,
    MAX_REPLY_BYTES,
    USER_AGENT,
    Response,
    make_compression,
    parse_origin,
    post_once,
)
from .reasons import OTHER, Reasons
from .sender import STARVED_WAIT, Sender, TaggedOutcome

__all__ = [
    "COMPRESSIONS",
    "MAX_REPLY_BYTES",
    "OTHER",
    "SENT",
    "STARVED_WAIT",
    "Codec",
    "Destination",
    "Reasons",
    "Reply",
    "Response",
    "Sender",
    "SenderConfig",
    "TaggedOutcome",
    "USER_AGENT",
    "backoff_delay",
    "make_compression",
    "parse_origin",
    "post_once",
    "reply_for_status",
]
