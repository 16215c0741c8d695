"""The `when.condition` expression language, as Codefresh's evaluator runs it.

A port of tevale (`codefresh-io/tevale`, built on jsep): strict types, `==`
only between values of one type, `&&` and `||` only on booleans (both sides
are always evaluated), and a fixed table of functions whose argument counts
and types are checked. Numbers are JavaScript numbers: ints and floats are one
type, held as `float`; `bool` is not a number. Mappings are objects.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from flows._expr_parser import (
    FUNCTION_PARAMS,
    JS_WHITESPACE,
    MAX_LENGTH,
    Attribute,
    BinaryOp,
    Call,
    Constant,
    Name,
    Node,
    UnaryOp,
    compile_js_regex,
    parse,
)
from flows.errors import ExpressionError

__all__ = [
    "MAX_LENGTH",
    "Node",
    "compile_js_regex",
    "evaluate",
    "evaluate_condition",
    "js_number_to_string",
    "parse",
]

_QUOTE_HINT: Final = 'quote string values, e.g. \'"${{CF_BRANCH}}" == "main"\''
_BLOCKED: Final = frozenset({"__proto__", "constructor", "prototype"})
_ORDER: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
_ARITHMETIC: Final[dict[str, Callable[[float, float], float]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": math.fmod,
}
_TAKES: Final = {
    **dict.fromkeys(
        ("==", "!="), "two values of one type (or a string or object and null)"
    ),
    **dict.fromkeys(("<", ">", "<=", ">=", "+"), "two numbers or two strings"),
    **dict.fromkeys(("-", "*", "/", "%"), "two numbers"),
    **dict.fromkeys(("&&", "||"), "two booleans"),
}


def evaluate(expression: str, variables: Mapping[str, object]) -> object:
    """Evaluate an expression; return its str, float, bool, None or mapping."""
    return _eval(parse(expression), variables)


def evaluate_condition(expression: str, variables: Mapping[str, object]) -> bool:
    """Evaluate an expression and return its truthiness, as tevale does."""
    value = evaluate(expression, variables)
    if value is None:
        return False
    if isinstance(value, str | bool):
        return bool(value)
    if isinstance(value, float):
        return not (value == 0 or math.isnan(value))
    msg = (
        f"Cannot evaluate object variable directly: {expression.strip()!r}; "
        "compare one of its members, e.g. steps.build.result == 'success'"
    )
    raise ExpressionError(msg)


def _typeof(value: object) -> str:
    """The tevale type name of an evaluated value ("null" for None)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _describe(value: object) -> str:
    kind = _typeof(value)
    return kind if kind in ("null", "object") else f"{kind} {_show(value)}"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return js_number_to_string(value)
    return repr(value)


def _js_value(value: object, where: str) -> object:
    """Bring a variable's value into the evaluator's types."""
    if value is None or isinstance(value, bool | float | str | Mapping):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return value
    msg = f"{where!r} holds a {type(value).__name__}, which expressions cannot use"
    raise ExpressionError(msg)


def _is_blocked(name: str) -> bool:
    return name in _BLOCKED or (name.startswith("__") and name.endswith("__"))


def _variable(name: str, variables: Mapping[str, object], hint: bool) -> object:
    if _is_blocked(name) or name not in variables:
        extra = f"; if it is meant as text, {_QUOTE_HINT}" if hint else ""
        msg = f"Invalid identifier: {name!r} is not a variable{extra}"
        raise ExpressionError(msg)
    return _js_value(variables[name], name)


def _member(container: object, key: str, source: str) -> object:
    if isinstance(container, Mapping) and not _is_blocked(key) and key in container:
        return _js_value(container[key], source)
    what = (
        "has no such member" if isinstance(container, Mapping) else "is not an object"
    )
    msg = (
        f"Undefined identifier member: {key!r} in {source!r} "
        f"({_describe(container)} {what})"
    )
    raise ExpressionError(msg)


def _eval(node: Node, variables: Mapping[str, object]) -> object:
    match node:
        case Constant():
            return node.value
        case Name():
            return _variable(node.name, variables, hint=True)
        case Attribute():
            return _member(_eval(node.value, variables), node.name, node.source)
        case Call():
            args = [_eval(arg, variables) for arg in node.args]
            return _call(node, args, variables)
        case UnaryOp():
            return _unary(node, _eval(node.operand, variables))
        case BinaryOp():
            return _binary_chain(node, variables)


def _binary_chain(node: BinaryOp, variables: Mapping[str, object]) -> object:
    # Long `a || b || c ...` chains nest to the left; walk them in a loop
    # so that their length is not limited by Python's recursion limit.
    spine: list[BinaryOp] = []
    current: Node = node
    while isinstance(current, BinaryOp):
        spine.append(current)
        current = current.left
    value = _eval(current, variables)
    for step in reversed(spine):
        value = _binary(step, value, _eval(step.right, variables))
    return value


def _type_error(
    node: BinaryOp | UnaryOp, takes: str, *values: object
) -> ExpressionError:
    kinds = " and ".join(_describe(v) for v in values)
    msg = (
        f"operator {node.op!r} cannot be used with {kinds} in {node.source!r}; "
        f"it takes {takes}"
    )
    if node.op in ("==", "!=") and {_typeof(v) for v in values} == {"string", "number"}:
        msg += "; convert one side with String() or Number()"
    elif node.op in ("&&", "||"):
        msg += '; make each side a comparison, e.g. \'"${{FLAG}}" == "true"\''
    return ExpressionError(msg)


def _binary(node: BinaryOp, left: object, right: object) -> object:
    op = node.op
    if op in ("==", "!="):
        return _equal(node, left, right) == (op == "==")
    if op in ("&&", "||") and isinstance(left, bool) and isinstance(right, bool):
        return (left and right) if op == "&&" else (left or right)
    if isinstance(left, str) and isinstance(right, str) and op in (*_ORDER, "+"):
        return left + right if op == "+" else bool(_ORDER[op](left, right))
    numeric = op in _ARITHMETIC or op in _ORDER
    if numeric and isinstance(left, float) and isinstance(right, float):
        return _arithmetic(node, left, right)
    raise _type_error(node, _TAKES[op], left, right)


def _equal(node: BinaryOp, left: object, right: object) -> bool:
    kinds = {_typeof(left), _typeof(right)}
    # tevale checks `typeof`, for which null is an object, plus "nullableString".
    if len(kinds) > 1 and not (
        "null" in kinds and kinds <= {"null", "string", "object"}
    ):
        raise _type_error(node, _TAKES[node.op], left, right)
    if "object" in kinds:
        # JavaScript `===`: an object equals only itself.
        return left is right
    return left == right


def _arithmetic(node: BinaryOp, left: float, right: float) -> float | bool:
    op = node.op
    if op in _ORDER:
        return bool(_ORDER[op](left, right))
    if op in ("/", "%") and right == 0:
        word = "division" if op == "/" else "modulo"
        msg = f"{word} by zero in {node.source!r}"
        raise ExpressionError(msg)
    if op == "%" and math.isinf(left):
        result = math.nan
    else:
        result = _ARITHMETIC[op](left, right)
    if math.isnan(result):
        msg = f"{node.source!r} is not a number (NaN)"
        raise ExpressionError(msg)
    if math.isinf(result) and math.isfinite(left) and math.isfinite(right):
        msg = f"numeric overflow in {node.source!r}"
        raise ExpressionError(msg)
    return result


def _unary(node: UnaryOp, value: object) -> object:
    if isinstance(value, float):
        if node.op == "!":
            return value == 0 or math.isnan(value)
        return -value if node.op == "-" else value
    if node.op == "!" and isinstance(value, bool):
        return not value
    takes = "a number or a boolean" if node.op == "!" else "a number"
    raise _type_error(node, takes, value)


def _call(node: Call, args: list[object], variables: Mapping[str, object]) -> object:
    for position, (arg, types) in enumerate(
        zip(args, FUNCTION_PARAMS[node.function], strict=True), 1
    ):
        if _typeof(arg) not in types:
            msg = (
                f"{node.function}() argument {position} must be {' or '.join(types)}, "
                f"not {_describe(arg)}, in {node.source!r}"
            )
            if node.function == "Member" and isinstance(arg, str):
                msg += (
                    "; name the object with Variable(), "
                    "e.g. Member(Variable('my-step'), 'result')"
                )
            raise ExpressionError(msg)
    return _apply(node, args, variables)


def _apply(node: Call, args: list[object], variables: Mapping[str, object]) -> object:
    # The argument types were checked against FUNCTION_PARAMS; the patterns
    # below only narrow them for the type checker.
    match node.function, args:
        case "String", [float() as number]:
            return js_number_to_string(number)
        case "String", [str() as text]:
            return text
        case "Number", [float() | str() as value]:
            return _to_number(value)
        case "Boolean", [float() as number]:
            return not (number == 0 or math.isnan(number))
        case "Boolean", [str() as text]:
            return text != ""
        case "round", [float() as number]:
            return _round(number)
        case "floor", [float() as number]:
            return float(math.floor(number)) if math.isfinite(number) else number
        case "upper", [str() as text]:
            return text.upper()
        case "lower", [str() as text]:
            return text.lower()
        case "trim", [str() as text]:
            return text.strip(JS_WHITESPACE)
        case "trimLeft", [str() as text]:
            return text.lstrip(JS_WHITESPACE)
        case "trimRight", [str() as text]:
            return text.rstrip(JS_WHITESPACE)
        case "replace", [str() as text, str() as find, str() as replacement]:
            return _replace_first(text, find, replacement)
        case "substring", [str() as text, float() as start, float() as end]:
            return _substring(text, start, end)
        case "length", [str() as text]:
            return float(len(text))
        case "includes", [str() as text, str() as find]:
            return find in text
        case "indexOf", [str() as text, str() as find]:
            return float(text.find(find))
        case "match", [str() as text, str() as pattern, bool() as ignore_case]:
            regex = compile_js_regex(pattern, "i" if ignore_case else "")
            return regex.search(text) is not None
        case "Variable", [str() as variable]:
            return _variable(variable, variables, hint=False)
        case "Member", [container, str() as key]:
            return _member_path(container, key, node.source)
    msg = f"{node.function}() cannot take {args!r}"
    raise AssertionError(msg)


def _to_number(value: float | str) -> float:
    number = value if isinstance(value, float) else _parse_js_number(value)
    if not math.isfinite(number):
        msg = (
            f"Error converting value {_show(value)} to number; "
            "Number() takes text such as '42' or '-3.5'"
        )
        raise ExpressionError(msg)
    return number


_JS_DECIMAL: Final = re.compile(
    r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
)
_JS_RADIX: Final = re.compile(r"0([xXoObB])([0-9a-zA-Z]+)")


def _parse_js_number(text: str) -> float:
    """JavaScript's Number(string): NaN for anything it cannot read."""
    text = text.strip(JS_WHITESPACE)
    if not text:
        return 0.0
    radix = _JS_RADIX.fullmatch(text)
    if radix:
        base = {"x": 16, "o": 8, "b": 2}[radix[1].lower()]
        try:
            return float(int(radix[2], base))
        except ValueError:
            return math.nan
        except OverflowError:
            return math.inf
    if _JS_DECIMAL.fullmatch(text):
        return float(text.replace("Infinity", "inf"))
    return math.nan


def _round(number: float) -> float:
    """Math.round: halves go up, towards +Infinity (round(-2.5) is -2)."""
    if not math.isfinite(number):
        return number
    floor = math.floor(number)
    return float(floor + 1 if number - floor >= 0.5 else floor)


def _replace_first(text: str, find: str, replacement: str) -> str:
    """String.prototype.replace with a string pattern, `$` patterns included."""
    start = text.find(find)
    if start < 0:
        return text
    end = start + len(find)
    specials = {"$": "$", "&": find, "`": text[:start], "'": text[end:]}
    parts: list[str] = []
    index = 0
    while index < len(replacement):
        pair = replacement[index : index + 2]
        if len(pair) == 2 and pair[0] == "$" and pair[1] in specials:
            parts.append(specials[pair[1]])
            index += 2
        else:
            parts.append(replacement[index])
            index += 1
    return text[:start] + "".join(parts) + text[end:]


def _substring(text: str, start: float, end: float) -> str:
    """String.prototype.substring, after tevale drops an end before the start."""
    if end < start:
        end = math.inf

    def clamp(index: float) -> int:
        return 0 if math.isnan(index) else int(min(max(index, 0), len(text)))

    first, last = sorted((clamp(start), clamp(end)))
    return text[first:last]


def _member_path(container: object, key: str, source: str) -> object:
    """Member(obj, key) is lodash `_.get`: a key "a.b" walks nested objects."""
    if isinstance(container, Mapping) and key in container:
        return _member(container, key, source)
    value = container
    for part in key.split("."):
        value = _member(value, part, source)
    return value


def js_number_to_string(number: float) -> str:
    """Format a number as JavaScript's String(number) does."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    # repr() gives the shortest digits that read back as the same float,
    # which is also what JavaScript prints; only the layout differs.
    mantissa, _, exponent = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    power = point - 1
    shown = digits if count == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{shown}e{'+' if power >= 0 else '-'}{abs(power)}"
