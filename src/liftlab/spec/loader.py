"""Loading experiment YAML with every problem reported as ``file:line:col: what; hint``.

The YAML is composed into PyYAML's node tree (safe constructors only), so each pydantic
error ``loc`` can be walked back to the line of the offending key or value. Duplicate keys,
which PyYAML would silently overwrite, are reported too.

Before anything is built, one pass over the parser's events (iterative, linear in the text)
enforces the limits below: a definition is a few kilobytes, so anything far larger is a
mistake or an attack (an alias bomb expands 500 bytes into billions of nodes). Anchors and
aliases are allowed, but what they expand to counts against the node budget.
"""

from __future__ import annotations

import difflib
import re
import reprlib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from liftlab.core.errors import Problem, SpecError
from liftlab.spec import filters
from liftlab.spec.geo import GeoExperiment
from liftlab.spec.models import Experiment

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


MAX_FILE_BYTES = 256 * 1024
MAX_NODES = 20_000  # keys, values and items once aliases are expanded
MAX_DEPTH = 32
MAX_TEXT_CHARS = 4_000  # one value (a description, a filter)
MAX_KEY_CHARS = 100
MAX_QUOTED_CHARS = 80  # a value echoed in a message
MAX_PROBLEMS = 50  # listed per file; the rest are counted
_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist = 2, 4, 4
_REPR.maxstring = _REPR.maxother = MAX_QUOTED_CHARS


class _Loader(yaml.SafeLoader):
    """Safe loading that leaves dates as text, so pydantic checks and reports them."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_experiment(path: Path | str) -> Experiment | GeoExperiment:
    """Parse and validate one experiment file; raises SpecError listing every problem."""
    path = Path(path)
    label = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SpecError([_too_big(path.stat().st_size, label)])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("file not found", file=label,
                                 hint="check the path (folders are read for *.yaml)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(f"cannot read the file: {exc}", file=label,
                                 hint="save it as UTF-8 text")]) from None
    return parse_experiment(text, label)


def experiment_files(paths: Iterable[Path | str]) -> list[Path]:
    """The experiment definitions named by files and folders: a file as given, a folder's
    *.yaml and *.yml files sorted by name."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if p.is_dir() else [p]
    return files


def load_experiments(paths: Iterable[Path | str]) -> list[Experiment | GeoExperiment]:
    """Load files and folders (``experiment_files``); ids must be unique."""
    given = [Path(p) for p in paths]
    files = experiment_files(given)
    if not files:
        where = ", ".join(str(p) for p in given) or "(no path given)"
        raise SpecError([Problem(f"no experiment files (*.yaml, *.yml) in {where}",
                                 hint="pass YAML files or a folder holding them")])
    problems: list[Problem] = []
    specs: list[Experiment | GeoExperiment] = []
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
    if problems:
        raise SpecError(problems)
    return specs


def parse_experiment(text: str, label: str = "<yaml>") -> Experiment | GeoExperiment:
    """Validate YAML text, reporting every problem at once; ``label`` names it in messages."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise SpecError([_too_big(len(text.encode("utf-8", "surrogatepass")), label)])
    limit = _limit_problem(text, label)
    if limit is not None:
        raise SpecError([limit])
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        problems = _duplicate_keys(root, label) if root is not None else []
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_problem(exc, label)]) from None
    finally:
        loader.dispose()
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise SpecError([Problem("an experiment file must be a mapping of keys", file=label,
                                 line=1, col=1, hint="start with: schema_version: 1")])
    problems += _filter_problems(data, root, text, label)
    # a geo experiment (design: geo) has a model of its own, checked the same way
    model: type[Experiment | GeoExperiment] = (
        GeoExperiment if data.get("design") == "geo" else Experiment)
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(exc, root, label, model)
    if problems:
        raise SpecError(_capped(sorted(dict.fromkeys(problems), key=_reading_order), label))
    return spec


def _capped(problems: list[Problem], label: str) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS],
            Problem(f"and {len(problems) - MAX_PROBLEMS:,} more problems", file=label)]


def _too_big(size: int, label: str) -> Problem:
    return Problem(f"the file is {size:,} bytes; an experiment definition may be at most "
                   f"{MAX_FILE_BYTES:,}", file=label, hint="is this the right file?")


@dataclass
class _Open:
    """A collection being parsed: its anchor, expanded node count, depth below it."""

    anchor: str | None
    mapping: bool
    nodes: int = 1
    depth: int = 0
    children: int = 0


def _limit_problem(text: str, label: str) -> Problem | None:
    """The first limit the YAML breaks (size once aliases are expanded, depth, text length),
    found from the parser's events without building anything; None when within limits."""
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, depth below it)
    stack = [_Open(None, False)]  # the document itself
    try:
        for event in yaml.parse(text, Loader=_Loader):
            problem = _event_problem(event, sizes, stack, label)
            if problem is not None:
                return problem
    except yaml.YAMLError:
        return None  # reported, at its line, when the YAML is composed
    return None


def _event_problem(event: yaml.Event, sizes: dict[str, tuple[int, int]],
                   stack: list[_Open], label: str) -> Problem | None:
    line, col = event.start_mark.line + 1, event.start_mark.column + 1
    if isinstance(event, yaml.CollectionStartEvent):
        if len(stack) > MAX_DEPTH:
            return Problem(f"nested more than {MAX_DEPTH} levels deep", file=label, line=line,
                           col=col, hint="an experiment definition needs a few levels")
        stack.append(_Open(event.anchor, isinstance(event, yaml.MappingStartEvent)))
        return None
    if isinstance(event, yaml.AliasEvent):
        if any(o.anchor == event.anchor for o in stack):
            return Problem(f"the alias *{event.anchor} is inside its own anchor "
                           f"&{event.anchor} (an endless structure)", file=label, line=line,
                           col=col, hint="an alias may only repeat a finished node")
        if event.anchor not in sizes:
            return None  # undefined: the composer reports it
        nodes, depth = sizes[event.anchor]
    elif isinstance(event, yaml.ScalarEvent):
        nodes, depth = 1, 0
        top = stack[-1]
        key = top.mapping and top.children % 2 == 0
        limit = MAX_KEY_CHARS if key else MAX_TEXT_CHARS
        if len(event.value) > limit:
            return Problem(f"a {'key' if key else 'value'} of {len(event.value):,} "
                           f"characters; at most {limit:,} are allowed", file=label,
                           line=line, col=col, hint="shorten it")
        if event.anchor:
            sizes[event.anchor] = (1, 0)
    elif isinstance(event, yaml.CollectionEndEvent):
        done = stack.pop()
        nodes, depth = done.nodes, done.depth + 1
        if done.anchor:
            sizes[done.anchor] = (nodes, depth)
    else:
        return None
    return _add(stack[-1], nodes, depth, len(stack), label, line, col)


def _add(parent: _Open, nodes: int, depth: int, level: int, label: str, line: int,
         col: int) -> Problem | None:
    """Count a finished node (an alias by what it expands to) into its parent."""
    parent.children += 1
    parent.nodes += nodes
    parent.depth = max(parent.depth, depth)
    if parent.nodes <= MAX_NODES and level + depth <= MAX_DEPTH + 1:
        return None
    what = (f"more than {MAX_NODES:,} keys, values and items" if parent.nodes > MAX_NODES
            else f"nesting deeper than {MAX_DEPTH} levels")
    return Problem(f"the definition holds {what} once aliases (*name) are expanded",
                   file=label, line=line, col=col,
                   hint="an alias repeats its anchor's whole content; use fewer of them")


def _reading_order(problem: Problem) -> tuple[int, int]:
    return problem.line or 0, problem.col or 0


def _yaml_problem(exc: yaml.YAMLError, label: str) -> Problem:
    """Scanner, parser and constructor errors at their own line:col."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
    what = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    return Problem(f"invalid YAML: {what}", file=label, line=line, col=col,
                   hint="check indentation, colons and quotes")


def _filter_problems(data: dict[str, Any], root: yaml.Node, text: str,
                     label: str) -> list[Problem]:
    """A syntax error in population.where, at its exact column when the source allows."""
    population = data.get("population")
    where = population.get("where") if isinstance(population, dict) else None
    if not isinstance(where, str):
        return []
    try:
        filters.parse(where)
    except filters.FilterSyntaxError as exc:
        node = _find(root, ("population", "where"))
        inside = _position_inside(node, text, exc.offset) if node is not None else None
        line, col = inside or _mark(node)
        return [Problem(f"population.where: {exc.message}" + (
            "" if inside else f" (character {exc.offset + 1} of the filter)"),
            file=label, line=line, col=col,
            hint=filters.EXAMPLE)]
    return []


def _position_inside(node: yaml.Node, text: str, offset: int) -> tuple[int, int] | None:
    """The 1-based line:col of character ``offset`` of a scalar's value, when the source
    shows the value verbatim: one line (plain, or quoted without escapes) or a literal
    block (``|``); None otherwise."""
    start, end = node.start_mark, node.end_mark
    if node.style == "|":
        lines = text.splitlines()
        before = node.value[:offset]
        index = before.count("\n")
        value_line = node.value.split("\n")[index]
        source = lines[start.line + 1 + index] if start.line + 1 + index < len(lines) else ""
        indent = len(source) - len(value_line)
        if indent < 0 or source[indent:] != value_line or source[:indent].strip():
            return None
        return start.line + 2 + index, indent + len(before) - (before.rfind("\n") + 1) + 1
    if start.line != end.line or node.style not in (None, '"', "'"):
        return None
    raw = text[start.index:end.index]
    quote = 1 if node.style else 0
    if raw[quote:len(raw) - quote] != node.value:
        return None
    return start.line + 1, start.column + 1 + quote + offset


# -- mapping pydantic errors to YAML lines ------------------------------------------------
def _validation_problems(exc: ValidationError, root: yaml.Node, label: str,
                         model: type[BaseModel] = Experiment) -> list[Problem]:
    """One Problem per pydantic error; a 'missing' key is dropped when an unknown key next
    to it is its misspelling (the 'did you mean' already says it)."""
    errors = exc.errors()
    misspelt = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = tuple(err["loc"])
            guess = _suggestion(str(loc[-1]), _allowed_fields(loc[:-1], model))
            if guess:
                misspelt.add((*loc[:-1], guess))
    return [_problem(err, root, label, model) for err in errors
            if not (err["type"] == "missing" and tuple(err["loc"]) in misspelt)]


def _suggestion(key: str, allowed: list[str]) -> str | None:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    prefixed = [a for a in allowed if a.startswith(key)]
    return (close or prefixed or [None])[0]


def _problem(err: Any, root: yaml.Node, label: str,
             model: type[BaseModel] = Experiment) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        line, col = _mark(_find(root, loc, key=True) or _nearest(root, loc[:-1]))
        allowed = _allowed_fields(loc[:-1], model)
        guess = _suggestion(str(loc[-1]), allowed)
        hint = f"did you mean {guess!r}?" if guess else (
            f"allowed keys here: {', '.join(allowed)}" if allowed else None)
        where = _dotted(loc[:-1])
        return Problem(f"unknown key {loc[-1]!r}" + (f" in {where}" if where else ""),
                       file=label, line=line, col=col, hint=hint)
    if kind == "missing":
        line, col = _mark(_nearest(root, loc[:-1]))
        example = EXAMPLES.get(str(loc[-1]))
        return Problem(f"missing required key {_dotted(loc)!r}", file=label, line=line,
                       col=col, hint=f"add: {example}" if example else None)
    on_key = bool(loc) and loc[-1] == "[key]"  # a bad dict key, e.g. a channel name
    node = _find(root, loc[:-1], key=True) if on_key else _find(root, loc)
    if kind == "value_error" and isinstance(node, yaml.CollectionNode):
        node = _quoted_value(node, err["msg"]) or node
    line, col = _mark(node or _nearest(root, loc))
    return Problem(_message(err, loc), file=label, line=line, col=col, hint=_hint(err, loc))


def _quoted_value(node: yaml.Node, message: str) -> yaml.Node | None:
    """A validator on a whole list or mapping names the culprit in quotes ('visits'): the
    first scalar under ``node`` holding the last quoted name found, so the line is its own."""
    for name in reversed(re.findall(r"'([^']+)'", message)):
        stack = [node]
        while stack:
            current = stack.pop(0)
            if isinstance(current, yaml.ScalarNode) and current.value == name:
                return current
            if isinstance(current, yaml.MappingNode):
                stack[:0] = [n for pair in current.value for n in pair]
            elif isinstance(current, yaml.SequenceNode):
                stack[:0] = list(current.value)
    return None


def _message(err: Any, loc: tuple[Any, ...]) -> str:
    where = _dotted(loc) or "the file"
    kind, got = err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind in ("greater_than", "less_than") and _is_fraction(loc):
        return f"{where} must be between 0 and 1 (exclusive), got {_shown(got)}"
    if kind in ("greater_than", "less_than", "greater_than_equal", "less_than_equal"):
        word = {"greater_than": "greater than", "less_than": "less than",
                "greater_than_equal": "at least", "less_than_equal": "at most"}[kind]
        bound = ctx.get({"greater_than": "gt", "less_than": "lt", "greater_than_equal": "ge",
                         "less_than_equal": "le"}[kind])
        return f"{where} must be {word} {bound}, got {_shown(got)}"
    if kind.startswith("date"):
        return f"{where}: expected a date like 2026-02-02, got {_shown(got)}"
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{where} must be one of {choices}, got {_shown(got)}"
    if kind == "string_pattern_mismatch" and loc[-1] == "[key]":
        return f"{_dotted(loc[:-2])}: the name {_shown(got)} is not allowed here"
    if kind == "string_pattern_mismatch":
        return f"{where}: {_shown(got)} is not allowed here"
    if kind == "string_too_long":
        return f"{where} must be at most {ctx.get('max_length')} characters long"
    if kind == "too_long":
        count = len(got) if isinstance(got, list | dict) else ctx.get("actual_length")
        return f"{where} may hold at most {ctx.get('max_length')} entries, got {count}"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        whole = " whole" if kind.startswith("int") else ""
        return f"{where}: expected a{whole} number, got {_shown(got)}"
    if kind == "finite_number":
        return f"{where} must be a finite number, got {_shown(got)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{where}: expected true or false, got {_shown(got)}"
    if kind == "string_type":
        return f"{where}: expected text, got {_shown(got)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{where}: expected a mapping of keys (key: value), got {_shown(got)}"
    if kind == "list_type":
        return f"{where}: expected a list, got {_shown(got)}"
    if kind == "value_error":
        text = str(ctx.get("error", err["msg"]))
        return text if where == "the file" else f"{where}: {text}"
    return f"{where}: {err['msg']}"


def _shown(value: Any) -> str:
    """A value as quoted in a message, cut to a few words: a message never echoes a whole
    mapping or megabytes of text."""
    if isinstance(value, str) and len(value) > MAX_QUOTED_CHARS:
        return f"{value[:MAX_QUOTED_CHARS]!r}… ({len(value):,} characters)"
    return _REPR.repr(value)


def _is_fraction(loc: tuple[Any, ...]) -> bool:
    return bool(loc) and (loc[-1] == "holdout" or (len(loc) > 2 and loc[-2] == "variants"))


def _hint(err: Any, loc: tuple[Any, ...]) -> str | None:
    kind = err["type"]
    if kind == "value_error":
        return None  # the validators' messages already say what to write
    if kind == "string_pattern_mismatch":
        if loc and loc[-1] == "id":
            return "use lowercase letters, digits and dashes, e.g. spring-email"
        return "use lowercase letters, digits and underscores, e.g. email or flash_sale"
    if kind.startswith("date"):
        return "write the date as YYYY-MM-DD"
    if _is_fraction(loc):
        return "write e.g. holdout: 0.1 for a 10% holdout"
    example = EXAMPLES.get(str(loc[-1])) if loc else None
    return f"e.g. {example}" if example else None


def _dotted(loc: tuple[Any, ...]) -> str:
    """A pydantic loc as the analyst would name it: channels.email.holdout, metrics[0].kind."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" not in str(part) and not str(part).startswith("function-"):
            out += ("." if out else "") + str(part)
    return out


def _find(node: yaml.Node | None, loc: tuple[Any, ...], key: bool = False) -> yaml.Node | None:
    """The node at ``loc`` (its key node with ``key=True``); None when absent."""
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            match = None
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    match = (k, v)  # the last one wins, as in the loaded data
            if match is None:
                if isinstance(part, str) and not part.isidentifier():
                    continue  # a pydantic step such as function-after[...]: not a key
                return None
            if key and i == len(loc) - 1:
                return match[0]
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return None
            node = node.value[part]
        else:
            return None
    return node


def _nearest(root: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node:
    """The deepest node that exists along ``loc`` (the file itself at worst)."""
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
    """Keys given twice in one mapping (PyYAML silently keeps the last one)."""
    out: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
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


def _allowed_fields(loc: tuple[Any, ...], top: type[BaseModel] = Experiment) -> list[str]:
    """The keys the model accepts at ``loc`` (for 'did you mean' hints)."""
    model: Any = top
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part)) or next(
            (f for f in model.model_fields.values() if f.alias == str(part)), None)
        if field is None:
            continue  # a dict key such as a channel name
        model = _model_of(field.annotation)
        if model is None:
            return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside Optional[...], list[...] or dict[str, ...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict,
                                         typing.Annotated):
        for arg in reversed(typing.get_args(annotation)):
            found = _model_of(arg)
            if found is not None:
                return found
    return None
