"""Rename rules from one toolkit's state dict to tailseg's, and the check against the model.

A `Rule` full-matches source keys with a regular expression and names the tailseg key (a
`re` template), or drops them with a reason; its `transform` changes the tensor where the
layouts differ (a permutation, a tiling). `apply_rules` maps every key of a source state dict —
a key no rule matches is an error — and `fit_model` checks the result against a model's own
state dict: a missing key (unless `fills` provides it), an unexpected key or a shape mismatch is
an error naming the source key, the tailseg key and both shapes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from torch import Tensor

from tailseg.errors import ConversionError

Transform = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Rule:
    pattern: str  # regular expression, full match on the source key
    # tailseg key: a `\1`-style template or a function of the match; None: dropped
    target: str | Callable[[re.Match], str] | None
    note: str = ""  # why dropped, or what the transform does
    transform: Transform | None = None


@dataclass
class Report:
    """What a conversion did with every key."""

    source: str
    flavour: str = ""
    mapped: list[tuple[str, str, str]] = field(default_factory=list)  # (source, target, note)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (source key, reason)
    filled: list[tuple[str, str]] = field(default_factory=list)  # (tailseg key, how)
    notes: list[str] = field(default_factory=list)  # settings the user should know of

    def summary(self) -> str:
        changed = sum(1 for *_, note in self.mapped if note)
        lines = [
            f"{self.source} ({self.flavour}): {len(self.mapped)} tensors mapped "
            f"({changed} transformed), {len(self.dropped)} dropped, {len(self.filled)} filled"
        ]
        lines += [f"  dropped {n}: {why}" for why, n in Counter(w for _, w in self.dropped).items()]
        lines += [f"  filled {n}: {why}" for why, n in Counter(w for _, w in self.filled).items()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "flavour": self.flavour,
            "mapped": [list(m) for m in self.mapped],
            "dropped": [list(d) for d in self.dropped],
            "filled": [list(f) for f in self.filled],
            "notes": list(self.notes),
        }


def apply_rules(
    source: Mapping[str, Tensor],
    rules: Sequence[Rule],
    report: Report,
    names: Mapping[str, str] = {},
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tailseg state dict, tailseg key → its source key). Every source key must match a rule.
    `names`: the file's own name of a key the caller renamed before the rules (reported)."""
    compiled = [(re.compile(r.pattern), r) for r in rules]
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in source.items():
        name = names.get(key, key)
        for regex, rule in compiled:
            m = regex.fullmatch(key)
            if m is None:
                continue
            if rule.target is None:
                report.dropped.append((name, rule.note))
                break
            target = rule.target(m) if callable(rule.target) else m.expand(rule.target)
            if target in out:
                raise ConversionError(
                    f"{report.source}: {name}: maps to {target}, which {origin[target]} "
                    "already fills"
                )
            out[target] = rule.transform(value) if rule.transform else value
            origin[target] = name
            report.mapped.append((name, target, rule.note if rule.transform else ""))
            break
        else:
            shape = tuple(value.shape) if hasattr(value, "shape") else type(value).__name__
            raise ConversionError(
                f"{report.source}: {name} {shape}: no rule maps this key ({report.flavour}); "
                "it is a layer tailseg's model does not have"
            )
    return out, origin


def fit_model(
    converted: dict[str, Tensor],
    origin: Mapping[str, str],
    model_state: Mapping[str, Tensor],
    report: Report,
    fills: Mapping[str, tuple[str, Callable[[Tensor], Tensor]]] = {},
    hint: Callable[[str], str] = lambda key: "",
) -> dict[str, Tensor]:
    """`converted` checked against the model's state dict and completed by `fills` (regular
    expression on the tailseg key → (why, a function of the model's tensor giving the value)),
    in the model's order and dtypes."""
    out: dict[str, Tensor] = {}
    for key, mine in model_state.items():
        value = converted.get(key)
        if value is None:
            fill = next(((why, f) for p, (why, f) in fills.items() if re.fullmatch(p, key)), None)
            if fill is None:
                raise ConversionError(
                    f"{report.source}: no weights for tailseg's {key} {tuple(mine.shape)}"
                    f"{hint(key)}"
                )
            out[key] = fill[1](mine)
            report.filled.append((key, fill[0]))
            continue
        if tuple(value.shape) != tuple(mine.shape):
            raise ConversionError(
                f"{report.source}: {origin[key]} {tuple(value.shape)} → {key}: the config's "
                f"model has {tuple(mine.shape)}{hint(key)}"
            )
        out[key] = value.to(mine.dtype)
    extra = [k for k in converted if k not in model_state]
    if extra:
        raise ConversionError(
            f"{report.source}: {origin[extra[0]]} → {extra[0]}: the config's model has no such "
            f"tensor ({len(extra)} such){hint(extra[0])}"
        )
    return out
