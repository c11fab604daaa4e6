"""Rules sampling: ordered rules over the finished event, first match wins.

A rule is plain data::

    {"name": "slow",                                   # optional, the key in stats()
     "conditions": [{"column": "duration_ms", "op": ">", "value": 1000}],
     "combination": "AND",                             # or "OR"; default "AND"
     "sample_rate": 1}                                 # an int >= 1, "drop", or a sampler

Conditions use the query's operators and missing-column semantics, from the one filter
module (``wideevents._filter``): a positive operator never matches a missing field, a
negative one does, and a field of the wrong type makes a comparison false.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any, Final

from wideevents._core.log import log_once
from wideevents._errors import ConfigurationError
from wideevents._filter import Predicate, compile_filter

from ._validate import SamplerFn, check_number, check_rate, sampler_name

__all__ = [
    "RulesSampler",
    "keep_errors",
    "keep_input_violations",
    "keep_nonfinite",
    "keep_shadow_disagreement",
    "keep_slower_than",
    "keep_status_at_least",
]

_RULE_KEYS: Final = frozenset(("name", "conditions", "combination", "sample_rate"))
_EXAMPLE: Final = (
    '{"conditions": [{"column": "error", "op": "=", "value": true}], "sample_rate": 1}'
)


def _action(value: object, what: str) -> int | SamplerFn:
    """An int rate, 0 for "drop", or a sampler."""
    if isinstance(value, str) and value == "drop":
        return 0
    if callable(value):
        return value
    if isinstance(value, str):
        raise ConfigurationError(
            f"{what} must be an int >= 1, 'drop' or a sampler, got {value!r}; "
            "write 'drop' to drop the matching events"
        )
    return check_rate(value, what)


class _Rule:
    __slots__ = ("action", "dropped", "kept", "name", "predicate")

    def __init__(self, name: str, predicate: Predicate, action: int | SamplerFn) -> None:
        self.name = name
        self.predicate = predicate
        self.action = action
        self.kept = 0
        self.dropped = 0

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "matched": self.kept + self.dropped,
            "kept": self.kept,
            "dropped": self.dropped,
        }
        if callable(self.action):
            out["sampler"] = sampler_name(self.action)
            nested = getattr(self.action, "stats", None)
            if callable(nested):
                try:
                    out["sampler_stats"] = nested()
                except Exception as exc:  # noqa: BLE001 -- contained, logged once
                    log_once(
                        "sampling.rules.nested_stats",
                        "wideevents: stats() of sampler %s failed (%r)",
                        out["sampler"],
                        exc,
                    )
        else:
            out["sample_rate"] = "drop" if self.action == 0 else self.action
        return out


def _compile_rule(rule: object, index: int) -> _Rule:
    where = f"rules[{index}]"
    if not isinstance(rule, Mapping):
        raise ConfigurationError(f"{where} must be a dict such as {_EXAMPLE}, got {rule!r}")
    unknown = set(rule) - _RULE_KEYS
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown key(s) {sorted(map(str, unknown))}; a rule has "
            f"'conditions', 'sample_rate' and optionally 'combination' and 'name', e.g. {_EXAMPLE}"
        )
    conditions = rule.get("conditions")
    if (
        not isinstance(conditions, Sequence)
        or isinstance(conditions, (str, bytes))
        or not conditions
    ):
        raise ConfigurationError(
            f"{where} needs a non-empty list of 'conditions' (a rule that matches every event "
            f"is the RulesSampler's default=...), e.g. {_EXAMPLE}"
        )
    if "sample_rate" not in rule:
        raise ConfigurationError(
            f"{where} needs a 'sample_rate': 1 to keep every matching event, N to keep 1 in N, "
            "'drop', or a sampler such as DeterministicSampler(10)"
        )
    name = rule.get("name", f"rule{index}")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    try:
        predicate = compile_filter(conditions, rule.get("combination", "AND"))
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where} ({name}): {exc}") from None
    return _Rule(name, predicate, _action(rule["sample_rate"], f"{where} ({name}) sample_rate"))


class RulesSampler:
    """Apply the first rule whose conditions match; no match: ``default``.

    ``default``: a sampler, an int rate, ``"drop"``, or None (keep at rate 1). A sampler
    used as a rule's ``sample_rate`` or as the default sees only the events routed to it;
    its return value is this sampler's. Rules are validated here (ConfigurationError with
    the rule's index and name); at run time a failing nested sampler keeps the event at
    rate 1 and is logged once. Calls are meant to come from one thread (the pipeline's
    worker); only the counters in :meth:`stats` assume it.
    """

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any]],
        *,
        default: SamplerFn | int | str | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(rules, Sequence) or isinstance(rules, (str, bytes)):
            raise ConfigurationError(
                f"rules must be a list of rule dicts such as [keep_errors()], got {rules!r}"
            )
        compiled = [_compile_rule(rule, i) for i, rule in enumerate(rules)]
        seen: dict[str, int] = {}
        for rule in compiled:  # stats keys must be unique
            seen[rule.name] = seen.get(rule.name, 0) + 1
            if seen[rule.name] > 1:
                rule.name = f"{rule.name}#{seen[rule.name]}"
        self._rules: Final = tuple(compiled)
        self._pairs: Final = tuple((rule.predicate, rule) for rule in compiled)
        self._default: Final = _Rule(
            "default", lambda event: True, 1 if default is None else _action(default, "default")
        )
        self.name: str = name or type(self).__name__
        self._errors = 0

    def __call__(self, event: Mapping[str, Any]) -> int:
        """The matching rule's rate (or its sampler's answer); 0 drops. Never raises."""
        rule = self._default
        try:
            for predicate, candidate in self._pairs:
                if predicate(event):
                    rule = candidate
                    break
            action = rule.action
            rate = action if type(action) is int else self._ask(action, event)
        except Exception as exc:  # noqa: BLE001 -- fail open: losing the event is worse
            self._errors += 1
            log_once(
                f"sampling.{self.name}.error",
                "wideevents: sampler %s failed on rule %s (%r); keeping the event at rate 1",
                self.name,
                rule.name,
                exc,
            )
            rate = 1
        if rate:
            rule.kept += 1
        else:
            rule.dropped += 1
        return rate

    def _ask(self, sampler: Any, event: Mapping[str, Any]) -> int:
        rate = sampler(event)
        if type(rate) is int and rate >= 0:
            return rate
        if not isinstance(rate, bool):
            try:
                value = operator.index(rate)  # numpy integers and other int-likes
            except TypeError:
                pass
            else:
                if value >= 0:
                    return value
        self._errors += 1
        log_once(
            f"sampling.{self.name}.bad_rate",
            "wideevents: sampler %s returned %r, not an int >= 0; keeping the event at rate 1",
            sampler_name(sampler),
            rate,
        )
        return 1

    def _nested(self) -> list[Any]:
        unique: dict[int, Any] = {}
        for rule in (*self._rules, self._default):
            if callable(rule.action):
                unique.setdefault(id(rule.action), rule.action)
        return list(unique.values())

    def close(self) -> bool:
        """Close every nested sampler that has ``close()``; True when all report success."""
        ok = True
        for sampler in self._nested():
            close = getattr(sampler, "close", None)
            if callable(close):
                try:
                    ok = close() is not False and ok
                except Exception as exc:  # noqa: BLE001 -- contained, logged once
                    ok = False
                    log_once(
                        "sampling.rules.close",
                        "wideevents: close() of sampler %s failed (%r)",
                        sampler_name(sampler),
                        exc,
                    )
        return ok

    def reset_after_fork(self) -> None:
        """Pass the fork on to every nested sampler that needs to know."""
        for sampler in self._nested():
            reset = getattr(sampler, "reset_after_fork", None)
            if callable(reset):
                reset()

    def stats(self) -> dict[str, Any]:
        """Totals and, per rule (and ``default``), events matched, kept, dropped."""
        rules = (*self._rules, self._default)
        return {
            "kept": sum(rule.kept for rule in rules),
            "dropped": sum(rule.dropped for rule in rules),
            "errors": self._errors,
            "rules": {rule.name: rule.stats() for rule in rules},
        }

    def __repr__(self) -> str:
        return f"RulesSampler([{', '.join(r.name for r in self._rules)}])"


# --- ready-made rules -------------------------------------------------------------------


def _rule(
    name: str, conditions: list[dict[str, Any]], sample_rate: object, combination: str = "AND"
) -> dict[str, Any]:
    return {
        "name": name,
        "conditions": conditions,
        "combination": combination,
        "sample_rate": sample_rate,
    }


def keep_errors(*, sample_rate: int = 1) -> dict[str, Any]:
    """Events whose block raised (``error`` is true)."""
    return _rule("keep_errors", [{"column": "error", "op": "=", "value": True}], sample_rate)


def keep_status_at_least(status: int = 500, *, sample_rate: int = 1) -> dict[str, Any]:
    """Events with ``http.response.status_code >= status``."""
    check_number(status, "status", minimum=0, example="500")
    return _rule(
        f"keep_status_at_least_{status}",
        [{"column": "http.response.status_code", "op": ">=", "value": status}],
        sample_rate,
    )


def keep_slower_than(ms: float, *, sample_rate: int = 1) -> dict[str, Any]:
    """Events with ``duration_ms > ms``."""
    check_number(ms, "ms", minimum=0, example="1000")
    return _rule(
        f"keep_slower_than_{ms:g}ms",
        [{"column": "duration_ms", "op": ">", "value": ms}],
        sample_rate,
    )


def keep_nonfinite(*, sample_rate: int = 1) -> dict[str, Any]:
    """Events with NaN/inf values (``meta.nonfinite_count > 0`` or ``prediction.nonfinite``)."""
    return _rule(
        "keep_nonfinite",
        [
            {"column": "meta.nonfinite_count", "op": ">", "value": 0},
            {"column": "prediction.nonfinite", "op": "=", "value": True},
        ],
        sample_rate,
        "OR",
    )


def keep_input_violations(*, sample_rate: int = 1) -> dict[str, Any]:
    """Events with inputs outside the reference profile (``data.oor_count > 0``)."""
    return _rule(
        "keep_input_violations", [{"column": "data.oor_count", "op": ">", "value": 0}], sample_rate
    )


def keep_shadow_disagreement(*, sample_rate: int = 1) -> dict[str, Any]:
    """Events where the shadow model's top result differs (``shadow.top1_same`` is false)."""
    return _rule(
        "keep_shadow_disagreement",
        [{"column": "shadow.top1_same", "op": "=", "value": False}],
        sample_rate,
    )
