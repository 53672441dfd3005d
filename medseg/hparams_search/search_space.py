"""Turn Hydra sweep overrides (``interval``, ``tag(log, interval)``, ``choice``, ``range``) into Optuna
distributions, and sampled values back into override strings.

Semantics follow Hydra's grammar: ``range(start, stop, step)`` excludes ``stop`` as Python's ``range``
does (``range(16, 64, 16)`` is 16, 32, 48); ``interval(a, b)`` is continuous (Hydra reads its ends as
floats; ``tag(int, interval(a, b))`` samples integers); ``tag(log, interval(a, b))`` samples on a log
scale (``tag(log, int, interval(a, b))`` both); ``choice(...)`` is categorical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def _encoded(override: Override) -> list[Any]:
    """The values of a sweep override as Hydra encodes them on a command line."""
    return list(override.sweep_iterator(transformer=Transformer.encode))


def distribution_from_override(override: Override) -> BaseDistribution:
    """The Optuna distribution for one sweep override (``override.is_sweep_override()`` must hold).

    Raises:
        ValueError: an empty or reversed range/interval, or a sweep type with no distribution.
    """
    key = override.get_key_element()
    value = override.value()
    if override.is_choice_sweep():
        assert isinstance(value, ChoiceSweep)
        choices: list[Any] = list(override.sweep_iterator(transformer=Transformer.encode))
        if not choices:
            raise ValueError(f"{key}: choice() needs at least one option")
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if value.shuffle:
            return CategoricalDistribution(_encoded(override))
        start, stop, step = value.start, value.stop, value.step
        if any(isinstance(v, float) for v in (start, stop, step)):
            # a float range is a grid: list it (Hydra's own iterator handles the exclusive end)
            return CategoricalDistribution(_encoded(override))
        assert start is not None and stop is not None  # Hydra's range() requires both
        start, stop, step = int(start), int(stop), int(step)
        if step <= 0 or stop <= start:
            raise ValueError(f"{key}: range({start}, {stop}, {step}) is empty")
        last = start + ((stop - 1 - start) // step) * step  # Hydra's range excludes stop
        return IntDistribution(start, last, step=step)
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        lo, hi = value.start, value.end
        if lo is None or hi is None or hi <= lo:
            raise ValueError(f"{key}: interval({lo}, {hi}) needs start < end")
        log = "log" in value.tags
        if "int" in value.tags:  # Hydra parses interval ends as floats; tag(int, ...) asks for integers
            return IntDistribution(int(lo), int(hi), log=log)
        return FloatDistribution(float(lo), float(hi), log=log)
    raise ValueError(f"{key}: sweep type {override.value_type} is not supported by the Optuna sweeper")


def parse_search_space(
    parser: OverridesParser, params: dict[str, str] | None, arguments: Sequence[str]
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Split the sweeper's ``params:`` and the command line into a search space and fixed overrides.

    A key given on the command line replaces the same key in ``params:``.

    Returns:
        ``(search_space, fixed)``: ``{override key: distribution}`` and the non-sweep overrides as strings.
    """
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    by_key: dict[str, Override] = {}
    for ov in parser.parse_overrides(lines):
        by_key[ov.get_key_element()] = ov
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for key, ov in by_key.items():
        if ov.is_sweep_override():
            space[key] = distribution_from_override(ov)
        else:
            fixed.append(ov.input_line if ov.input_line else f"{key}={ov.get_value_element_as_str()}")
    return space, fixed


def format_value(value: Any) -> str:
    """A sampled value as the right-hand side of a Hydra override."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return repr(value)
    return str(value)


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """``{key: value}`` sampled by a trial -> ``["key=value", ...]``."""
    return [f"{k}={format_value(v)}" for k, v in params.items()]
