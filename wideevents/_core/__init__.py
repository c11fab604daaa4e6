"""The core: what runs for every event, and nothing it does not need.

Bottom layer of docs/architecture.md: it imports only the standard library, orjson,
``wideevents._errors`` and ``wideevents._version``. Request thread: :mod:`.event`
(``Event`` and the current-event context), :mod:`.instrument`, :mod:`.hooks` (the lists
integrations register into), :mod:`.runtime` (the current-pipeline slot ``configure()``
fills). Worker: :mod:`.pipeline` (queue, worker, accounting) running :mod:`.prepare`
(normalise, processors, sample rate, sampler, redact, limits, serialise) and handing
:class:`.record.Record` batches to sinks, whose outcomes :mod:`.ledger` counts. Shared
rules: :mod:`.normalize`, :mod:`.redact`, :mod:`.limits`, :mod:`.samplerate`,
:mod:`.timefmt`, :mod:`.ids`, :mod:`.env`, :mod:`.log`, :mod:`.service`,
:mod:`.predictions` (the feedback cache the worker fills), :mod:`.lifecycle` (exit,
fork and signals).
"""
