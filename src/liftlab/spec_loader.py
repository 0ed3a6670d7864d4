"""Loading experiment YAML with every problem reported as ``file:line:col: what; hint``.

The YAML is composed into PyYAML's node tree (safe constructors only), so each pydantic
error ``loc`` can be walked back to the line of the offending key or value. Duplicate keys,
which PyYAML would silently overwrite, are reported too.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from liftlab import filters
from liftlab.errors import Problem, SpecError
from liftlab.spec import Experiment

EXAMPLES = {
    "schema_version": "schema_version: 1",
    "id": "id: spring-email   # lowercase letters, digits and dashes",
    "start": "start: 2026-02-02",
    "end": "end: 2026-02-23   # exclusive",
    "channels": "channels: {email: {holdout: 0.1, cost_per_contact: 0.002}}",
    "metrics": "metrics: [{name: revenue, kind: mean, table: orders, value: revenue}]",
    "primary_metric": "primary_metric: revenue",
    "holdout": "holdout: 0.1",
    "name": "name: revenue",
    "kind": "kind: mean",
    "adoption_metric": "adoption_metric: adopted_web",
}


class _Loader(yaml.SafeLoader):
    """Safe loading that leaves dates as text, so pydantic checks and reports them."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_experiment(path: Path | str) -> Experiment:
    """Parse and validate one experiment file; raises SpecError listing every problem."""
    path = Path(path)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("file not found", file=label)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(f"cannot read the file: {exc}", file=label)]) from None
    return parse_experiment(text, label)


def parse_experiment(text: str, label: str = "<yaml>") -> Experiment:
    """Validate YAML text; ``label`` names it in messages."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = _Loader(text).get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        what = exc.problem or exc.context or "invalid YAML"
        raise SpecError([Problem(f"invalid YAML: {what}", file=label, line=line, col=col,
                                 hint="check indentation, colons and quotes")]) from None
    if node is None or not isinstance(node, yaml.MappingNode):
        raise SpecError([Problem("an experiment file must be a mapping of keys", file=label,
                                 line=1, col=1, hint="start with: schema_version: 1")])
    problems = _duplicate_keys(node, label)
    problems += _filter_problems(data, node, label)
    try:
        spec = Experiment.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(err, node, label) for err in exc.errors()]
        raise SpecError(_unique(problems)) from None
    if problems:
        raise SpecError(problems)
    return spec


def _filter_problems(data: Any, root: yaml.Node, label: str) -> list[Problem]:
    """A syntax error in population.where, located at the filter's line."""
    where = data.get("population") if isinstance(data, dict) else None
    text = where.get("where") if isinstance(where, dict) else None
    if not isinstance(text, str):
        return []
    try:
        filters.parse(text)
    except filters.FilterSyntaxError as exc:
        line, col = _mark(_find(root, ("population", "where")))
        return [Problem(f"population.where: {exc.short} (character {exc.offset + 1} of the "
                        "filter)", file=label, line=line, col=col,
                        hint='write e.g. optin_email and segment in ["gold", "silver"]')]
    return []


def load_experiments(paths: Iterable[Path | str]) -> list[Experiment]:
    """Load files and folders (their *.yaml / *.yml, sorted); ids must be unique."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        else:
            files.append(p)
    problems: list[Problem] = []
    specs: list[Experiment] = []
    seen: dict[str, Path] = {}
    for f in files:
        try:
            spec = load_experiment(f)
        except SpecError as exc:
            problems += exc.problems
            continue
        if spec.id in seen:
            problems.append(Problem(f"experiment id {spec.id!r} is already used by "
                                    f"{seen[spec.id]}", file=str(f),
                                    hint="give each experiment its own id"))
            continue
        seen[spec.id] = f
        specs.append(spec)
    if not files:
        problems.append(Problem("no experiment files found (*.yaml)",
                                file=", ".join(str(p) for p in paths)))
    if problems:
        raise SpecError(problems)
    return specs


# -- mapping pydantic errors to YAML lines ------------------------------------------------
def _problem(err: Any, root: yaml.Node, label: str) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key_node = _find(root, loc, key=True)
        line, col = _mark(key_node or _find(root, loc[:-1]))
        allowed = _allowed_fields(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6) or [
            a for a in allowed if a.startswith(str(loc[-1]))][:1]
        hint = f"did you mean {close[0]!r}?" if close else (
            f"allowed keys here: {', '.join(allowed)}" if allowed else None)
        where = _dotted(loc[:-1])
        return Problem(f"unknown key {loc[-1]!r}" + (f" in {where}" if where else ""),
                       file=label, line=line, col=col, hint=hint)
    node = _find(root, loc)
    if kind == "missing":
        parent = _find(root, loc[:-1])
        line, col = _mark(parent)
        example = EXAMPLES.get(str(loc[-1]))
        return Problem(f"missing required key {_dotted(loc)!r}", file=label, line=line,
                       col=col, hint=f"add: {example}" if example else None)
    line, col = _mark(node or _nearest(root, loc))
    return Problem(_message(err, loc), file=label, line=line, col=col, hint=_hint(err, loc))


def _message(err: Any, loc: tuple[Any, ...]) -> str:
    where = _dotted(loc) or "the file"
    kind, got = err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if (kind in ("greater_than", "less_than", "greater_than_equal", "less_than_equal") and \
            str(loc[-1]) in ("holdout",)) or (len(loc) > 2 and loc[-2] == "variants"):
        return f"{where}: a fraction must be between 0 and 1 (exclusive), got {got!r}"
    if kind == "greater_than":
        return f"{where}: must be greater than {ctx.get('gt')}, got {got!r}"
    if kind == "less_than":
        return f"{where}: must be less than {ctx.get('lt')}, got {got!r}"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        word = "at least" if kind == "greater_than_equal" else "at most"
        return f"{where}: must be {word} {bound}, got {got!r}"
    if kind.startswith("date") or kind == "date_from_datetime_parsing":
        return f"{where}: expected a date like 2026-02-02, got {got!r}"
    if kind in ("literal_error", "enum"):
        return f"{where}: must be one of {ctx.get('expected', '')}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"{where}: {got!r} is not allowed here"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        return f"{where}: expected a number, got {got!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{where}: expected true or false, got {got!r}"
    if kind in ("string_type",):
        return f"{where}: expected text, got {got!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{where}: expected a mapping of keys (key: value), got {got!r}"
    if kind == "list_type":
        return f"{where}: expected a list, got {got!r}"
    if kind == "value_error":
        return f"{where}: {ctx.get('error', err['msg'])!s}" if where != "the file" else str(
            ctx.get("error", err["msg"]))
    return f"{where}: {err['msg']}"


def _hint(err: Any, loc: tuple[Any, ...]) -> str | None:
    kind = err["type"]
    if kind == "value_error":
        return None  # the message already says what to write
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "id":
        return "use lowercase letters, digits and dashes, e.g. spring-email"
    if kind == "string_pattern_mismatch":
        return "use lowercase letters, digits and underscores"
    if kind.startswith("date"):
        return "write the date as YYYY-MM-DD"
    if (loc and str(loc[-1]) in ("holdout",)) or (len(loc) > 2 and loc[-2] == "variants"):
        return "write e.g. holdout: 0.1 for a 10% holdout"
    example = EXAMPLES.get(str(loc[-1])) if loc else None
    return f"e.g. {example}" if example else None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[")) or "[" in str(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _find(node: yaml.Node | None, loc: tuple[Any, ...], key: bool = False) -> yaml.Node | None:
    """The node at ``loc`` (or its key node with ``key=True``); None when absent."""
    for i, part in enumerate(loc):
        if node is None:
            return None
        if isinstance(node, yaml.MappingNode):
            match = None
            for k, v in node.value:
                if k.value == str(part):
                    match = (k, v)
            if match is None:
                if isinstance(part, str) and not part.isidentifier():
                    continue  # pydantic's tagged-union or validator step: skip it
                return None
            if key and i == len(loc) - 1:
                return match[0]
            node = match[1]
        elif isinstance(node, yaml.SequenceNode):
            if isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            elif isinstance(part, int):
                return None
        else:
            return None
    return node


def _nearest(root: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node:
    for k in range(len(loc), -1, -1):
        node = _find(root, loc[:k])
        if node is not None:
            return node
    return root


def _mark(node: yaml.Node | None) -> tuple[int | None, int | None]:
    if node is None:
        return None, None
    return node.start_mark.line + 1, node.start_mark.column + 1


def _duplicate_keys(node: yaml.Node, label: str) -> list[Problem]:
    out: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for k, v in node.value:
            if k.value in seen:
                first = seen[k.value].start_mark.line + 1
                out.append(Problem(f"key {k.value!r} appears twice (first on line {first}); "
                                   "YAML would silently keep the last one", file=label,
                                   line=k.start_mark.line + 1, col=k.start_mark.column + 1,
                                   hint="keep one of them"))
            seen[k.value] = k
            out += _duplicate_keys(v, label)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out += _duplicate_keys(item, label)
    return out


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model accepts at ``loc`` (for 'did you mean' hints)."""
    model: Any = Experiment
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            continue  # a dict key such as a channel name
        model = _model_of(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside Optional[...], list[...] or dict[str, ...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict, typing.Annotated):
        for arg in reversed(typing.get_args(annotation)):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
