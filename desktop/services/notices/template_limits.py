"""Bounded template rendering: no template (or one notice of it) may run longer or grow larger than set limits.

Why: a template saved with a nested loop that misbehaved on real data kept ``run --once`` busy past its leases,
so every System Manager then hung on the same notices; ``{{ 'x' * 10**10 }}`` asks for 10 GB at once.

How, in the rendering thread and without a watchdog thread or a subprocess:

* **Time.** Every ``{% for %}`` iterates through :func:`bounded_iter` (the parsed template is rewritten so),
  and every call, attribute and item look-up goes through the sandbox's hooks; each checks the notice's
  deadline. Jinja has no other way to loop, so a template cannot run long between two checks. Output is
  produced with ``Template.generate`` and checked as it comes.
* **Memory.** Every value printed (``finalize``), joined with ``~``, or passed to a call or filter is measured
  first, collections all the way down. Operations that can make a huge value from small inputs (``*``, ``**``,
  ``%``, ``+``, string methods and filters given large numbers, ``replace``/``join``/``indent``/``expandtabs``/
  ``wordwrap``) are checked *before* they run; every value a call or look-up returns is checked after.
  ``lipsum``, ``str.translate`` and ``sum`` of anything but numbers are refused.
* **Structure.** Nesting deeper than :data:`MAX_NESTING` blocks, or too deep for the parser
  (``RecursionError``), is a problem with a line number (:func:`structure_problem`).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Longest one notice may take to render (all its parts), in seconds.
MAX_RENDER_SECONDS = 2.0
#: Largest string or collection a template may build along the way (characters or items).
MAX_VALUE = 1_000_000
#: Most a render may build in all, in characters; an item of a collection counts as :data:`_ITEM_WEIGHT`.
MAX_BUILT = 50_000_000
_ITEM_WEIGHT = 16
#: Largest integer a template may compute, in bits (a 10**10000 has ~33,000).
MAX_INT_BITS = 4096
#: Deepest nesting of blocks (for, if, macro, call, filter, with) in one part.
MAX_NESTING = 12
#: How many loop iterations pass between two looks at the clock.
_CHECK_EVERY = 256
_BIG_NUMBER = re.compile(r"\d{7,}")
_NESTING_NODES = (nodes.For, nodes.If, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.With, nodes.Scope)
LOOP_FILTER = "callslip_bounded_loop"
SIZE_FILTER = "callslip_bounded_value"
#: String methods whose result size cannot be told from their arguments cheaply; no notice needs them.
_REFUSED_STRING_METHODS = frozenset({"translate", "maketrans"})


class RenderLimitError(Exception):
    """A template went past a rendering limit; the message says which, in staff's words."""


_state = threading.local()


@contextlib.contextmanager
def deadline(seconds: float = MAX_RENDER_SECONDS) -> Iterator[None]:
    """Bound the rendering done inside the block: time, and everything built along the way (nested blocks keep
    the outer, earlier deadline and the same budget)."""
    outer = getattr(_state, "deadline", None)
    if outer is None:
        _state.spent = 0
    _state.deadline = time.monotonic() + seconds if outer is None else outer
    try:
        yield
    finally:
        _state.deadline = outer


def check_time() -> None:
    """Raise when the current render's deadline has passed."""
    limit = getattr(_state, "deadline", None)
    if limit is not None and time.monotonic() > limit:
        raise RenderLimitError(f"took longer than {MAX_RENDER_SECONDS:g} s to render (a loop too long for the data?)")


_CONTAINERS = (list, tuple, set, frozenset, dict)
#: What a collection's items must be for them to add to its size (anything else counts nothing).
_NESTED = (str, bytes, *_CONTAINERS)


def _total(value: Any) -> int:
    """Characters and items of ``value`` as text would hold them, collections walked all the way down
    (``[[s]] * 999`` holds one string 999 times: turned into text it is 999 copies). Counting stops once over
    the limit, so it costs at most about :data:`MAX_VALUE` steps however the value is built."""
    if isinstance(value, str | bytes):
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return 0
    total = 0
    stack: list[Any] = [value]
    while stack and total <= MAX_VALUE:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += len(item) + 1
            # A collection of numbers (``range(999999)|list``) has nothing more to count: seen by the types
            # alone (at C speed) rather than popping a million items one by one, which under a loaded CPU took
            # longer than the render's time limit and hid the reason that applies.
            if any(issubclass(kind, _NESTED) for kind in set(map(type, item))):
                stack.extend(item)
    return total


def check_size(value: Any) -> Any:
    """``value`` itself, or an error when it is (or holds) more than :data:`MAX_VALUE` characters or items, or
    when what the render has built in all (each value counted when seen) is more than :data:`MAX_BUILT`: many
    values each under the limit (``{% set a1 = … %}{% set a2 = … %}`` …) must not fill the memory either."""
    kind = type(value)
    if kind is str and len(value) <= 64:  # nearly every value: nothing to count
        return value
    if kind is int:  # a transaction number, a count: only its size in bits can be too much
        if value.bit_length() > MAX_INT_BITS:
            raise RenderLimitError("computes a number too large to use")
        return value
    total = _total(value)
    if total > MAX_VALUE:
        raise RenderLimitError(f"builds a value of more than {MAX_VALUE:,} characters or items ({total:,}+)")
    if total > 64 and getattr(_state, "deadline", None) is not None:
        _state.spent += total if isinstance(value, str | bytes) else total * _ITEM_WEIGHT
        if _state.spent > MAX_BUILT:
            raise RenderLimitError(f"builds more than {MAX_BUILT:,} characters (or items) in all")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise RenderLimitError("computes a number too large to use")
    return value


def _check_number(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
        raise RenderLimitError(f"uses the number {value:,}, more than the {MAX_VALUE:,} allowed here")


def _check_format(text: Any) -> None:
    if isinstance(text, str) and _BIG_NUMBER.search(text) and ("%" in text or "{" in text):
        raise RenderLimitError("uses a format with a width or precision over a million characters")


def bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Iterate, looking at the clock every few items (every ``{% for %}`` goes through this)."""
    for count, item in enumerate(iterable):
        if not count % _CHECK_EVERY:
            check_time()
        yield item


def _len(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


def _joined(separator: str, iterable: Any) -> list[Any]:
    """``iterable`` as a list, refused when joining it with ``separator`` would be over the limit."""
    items = list(bounded_iter(iterable))
    total = len(separator) * len(items) + sum(len(i) if isinstance(i, str) else 1 for i in items)
    if total > MAX_VALUE:
        raise RenderLimitError(f"join would build more than {MAX_VALUE:,} characters")
    return items


def _precheck_growth(name: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse, before it runs, a string operation whose result would be over the limit; the arguments to use."""
    for value in (*args, *kwargs.values()):
        _check_number(value)
    if not isinstance(target, str):
        return args
    if name == "join" and args:
        return (_joined(target, args[0]), *args[1:])
    if name in {"format", "format_map"}:
        _check_format(target)
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        occurrences = target.count(args[0]) if args[0] else len(target) + 1
        if len(target) + occurrences * len(args[1]) > MAX_VALUE:
            raise RenderLimitError(f"replace would build more than {MAX_VALUE:,} characters")
    elif name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else kwargs.get("tabsize", 8)
        if isinstance(size, int) and (target.count("\t") + 1) * size > MAX_VALUE:
            raise RenderLimitError(f"expandtabs would build more than {MAX_VALUE:,} characters")
    return args


#: Filters that only count what they are given and build nothing from it: their argument is not measured (the
#: arrival template's ``requests|length``, three times a notice, walked every request's fields each time).
_COUNTING_FILTERS = frozenset({"length", "count"})


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    counting = name in _COUNTING_FILTERS

    def bounded(*args: Any, **kwargs: Any) -> Any:
        check_time()
        values = [a for a in args if not isinstance(a, Context | EvalContext | ImmutableSandboxedEnvironment)]
        for value in () if counting else (*values, *kwargs.values()):
            check_size(value)  # a literal list of many references to one long string is only seen here
        subject = values[0] if values else None
        for value in (*values[1:], *kwargs.values()):
            _check_number(value)
        if name == "format":
            _check_format(subject)
        elif name == "indent" and isinstance(subject, str):
            width = values[1] if len(values) > 1 else kwargs.get("width", 4)
            per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
            if (subject.count("\n") + 1) * per_line > MAX_VALUE:
                raise RenderLimitError(f"indent would build more than {MAX_VALUE:,} characters")
        elif name == "replace" and isinstance(subject, str) and len(values) >= 3:
            _precheck_growth("replace", subject, (str(values[1]), str(values[2])), {})
        elif name == "join" and values:
            separator = values[1] if len(values) > 1 else kwargs.get("d", "")
            joined = _joined(str(separator), values[0])
            args = tuple(joined if a is values[0] else a for a in args)
        elif name == "wordwrap" and isinstance(subject, str):
            width = values[1] if len(values) > 1 else kwargs.get("width", 79)
            wrap = values[3] if len(values) > 3 else kwargs.get("wrapstring") or "\n"
            if isinstance(width, int) and len(subject) // max(width, 1) * len(str(wrap)) > MAX_VALUE:
                raise RenderLimitError(f"wordwrap would build more than {MAX_VALUE:,} characters")
        elif name == "sum":
            start = values[2] if len(values) > 2 else kwargs.get("start", 0)
            if not isinstance(start, int | float):
                raise RenderLimitError("sum adds numbers only")
        return check_size(function(*args, **kwargs))

    for attribute in ("jinja_pass_arg", "__name__", "__doc__"):
        if hasattr(function, attribute):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(bounded, attribute, getattr(function, attribute))
    return bounded


def _bounded_range(*args: int) -> range:
    for value in args:
        _check_number(value)
    result = range(*args)
    if len(result) > MAX_VALUE:
        raise RenderLimitError(f"a range of {len(result):,} numbers is more than the {MAX_VALUE:,} allowed")
    return result


#: What ``a.b`` finds as an attribute of a plain dict (its methods, ``__class__``, …): the sandbox decides on those.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox plus the time and size bounds described in the module docstring."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[LOOP_FILTER] = bounded_iter
        self.filters[SIZE_FILTER] = check_size

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, then send every ``{% for %}``'s iterable through :func:`bounded_iter`."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        for concat in tree.find_all(nodes.Concat):  # ``a ~ b`` turns its operands into text without a hook
            concat.nodes = [nodes.Filter(n, SIZE_FILTER, [], [], None, None, lineno=n.lineno) for n in concat.nodes]
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**``, ``%`` and ``+`` with their results' sizes checked first."""
        check_time()
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                growing = isinstance(sequence, str | bytes | list | tuple) and isinstance(count, int)
                if growing and len(sequence) * count > MAX_VALUE:
                    raise RenderLimitError(f"repeats a value to more than {MAX_VALUE:,} characters or items")
            numbers = isinstance(left, int) and isinstance(right, int)
            if numbers and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise RenderLimitError("computes a number too large to use")
        elif operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            if abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > MAX_INT_BITS:
                raise RenderLimitError("computes a number too large to use")
        elif operator == "%":
            _check_format(left)
            check_size(right)
        elif operator == "+" and _len(left) + _len(right) > MAX_VALUE:
            raise RenderLimitError(f"builds a value of more than {MAX_VALUE:,} characters or items")
        return check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """A call (function, method, macro) with the clock checked and its arguments and result bounded."""
        check_time()
        for value in (*args, *kwargs.values()):
            check_size(value)
        args = _precheck_growth(getattr(__obj, "__name__", ""), getattr(__obj, "__self__", None), args, kwargs)
        return check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``a.b`` with the clock checked and the value bounded (a namespace grown in a loop is seen here)."""
        check_time()
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            # ``patron.full_name``: no dict has such an attribute, so the sandbox would look the key up once
            # ``getattr`` had raised; looked up directly (the raise was a tenth of a notice's render).
            try:
                return check_size(obj[attribute])
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        if isinstance(obj, str | bytes):
            if attribute in _REFUSED_STRING_METHODS:
                raise RenderLimitError(f"{attribute} is not allowed in a template")
            if attribute in {"format", "format_map"}:
                _check_format(obj)  # the sandbox wraps str.format, so the call hook cannot see whose it is
        return check_size(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``a[b]`` with the clock checked and the value bounded."""
        check_time()
        return check_size(super().getitem(obj, argument))


def nesting_problem(tree: nodes.Template) -> tuple[str, int] | None:
    """``(message, line)`` when blocks nest deeper than :data:`MAX_NESTING`, else ``None``."""

    def deepest(node: nodes.Node, depth: int) -> tuple[int, int]:
        if isinstance(node, _NESTING_NODES):
            depth += 1
            if depth > MAX_NESTING:
                return depth, node.lineno
        best = (depth, node.lineno)
        for child in node.iter_child_nodes():
            found = deepest(child, depth)
            if found[0] > best[0]:
                best = found
            if best[0] > MAX_NESTING:
                break
        return best

    try:
        depth, line = deepest(tree, 0)
    except RecursionError:
        return f"is nested too deeply (more than {MAX_NESTING} blocks)", 1
    if depth > MAX_NESTING:
        return f"nests blocks {depth} deep here; at most {MAX_NESTING} are allowed", line
    return None


def deepest_bracket_line(source: str) -> int:
    """The line where brackets and blocks nest deepest: where a parser's ``RecursionError`` comes from."""
    depth = best = 0
    line = best_line = 1
    for ch in source:
        if ch == "\n":
            line += 1
        elif ch in "([{":
            depth += 1
            if depth > best:
                best, best_line = depth, line
        elif ch in ")]}":
            depth = max(depth - 1, 0)
    return best_line
