"""Reading JavaScript syntax: condition expressions and regular expressions.

The expression grammar is the part of jsep (the JavaScript expression parser
behind Codefresh's evaluator, tevale) that tevale can evaluate. What jsep
parses but tevale refuses when evaluating (`===`, bitwise operators,
ternaries, array literals, `this`, compound expressions) is refused here, so
that `freshflow validate` reports it before a pipeline runs. Regular
expressions (`match()` and branch filters) are JavaScript's, translated for
Python's `re`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Final, Literal, NoReturn

from flows.errors import ExpressionError

MAX_LENGTH: Final = 12000
MAX_DEPTH: Final = 50

# What JavaScript's String.prototype.trim() removes.
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)

# tevale's function table: parameter types by signature ("|" separates
# the types one parameter accepts).
_SIGNATURES: Final = {
    "number|string": ("String", "Number", "Boolean"),
    "number": ("round", "floor"),
    "string": ("upper", "lower", "trim", "trimLeft", "trimRight", "length", "Variable"),
    "string string": ("includes", "indexOf"),
    "string string string": ("replace",),
    "string number number": ("substring",),
    "string string boolean": ("match",),
    "object string": ("Member",),
}
FUNCTION_PARAMS: Final = {
    name: tuple(tuple(param.split("|")) for param in signature.split())
    for signature, names in _SIGNATURES.items()
    for name in names
}
# JavaScript's precedence, loosest first; all are left-associative.
_LEVELS: Final = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), "+-", "*/%")
BINARY_PRECEDENCE: Final = {op: n for n, ops in enumerate(_LEVELS, 1) for op in ops}
_UNARY = ("!", "-", "+")

# Longest first, so that "===" is never read as "==" followed by "=".
_OPERATORS: Final = sorted(
    [*BINARY_PRECEDENCE, *"!~&|^()[],;.?:=", "===", "!==", "<<", ">>", ">>>"],
    key=len,
    reverse=True,
)
_REFUSED: Final = {
    "===": "'===' is not supported; use '==' (comparisons are already strict)",
    "!==": "'!==' is not supported; use '!=' (comparisons are already strict)",
    "&": "bitwise operator '&' is not supported; did you mean '&&'?",
    "|": "bitwise operator '|' is not supported; did you mean '||'?",
    "^": "bitwise operator '^' is not supported",
    "~": "bitwise operator '~' is not supported; use '!' for logical not",
    "<<": "bitwise operator '<<' is not supported",
    ">>": "bitwise operator '>>' is not supported",
    ">>>": "bitwise operator '>>>' is not supported",
    "?": "the ternary operator (a ? b : c) is not supported; use && and ||",
    "=": "assignment '=' is not supported; use '==' to compare",
    ":": "unexpected ':'",
    "]": "unexpected ']'",
}
_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v"}
_KEYWORDS: Final[dict[str, bool | None]] = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class Span:
    """Where a node is in the expression; kept instead of a copy of its text."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, kw_only=True)
class _Node:
    span: Span = field(repr=False, compare=False)

    @property
    def source(self) -> str:
        """The node's text in the expression, for messages."""
        return self.span.text[self.span.start : self.span.end]


@dataclass(frozen=True)
class Constant(_Node):
    """A literal: number, string, `true`, `false` or `null`."""

    value: str | float | bool | None


@dataclass(frozen=True)
class Name(_Node):
    """A variable name, looked up in the top level of the variables."""

    name: str


@dataclass(frozen=True)
class Attribute(_Node):
    """Member access `value.name`."""

    value: Node
    name: str


@dataclass(frozen=True)
class Call(_Node):
    """A call of one of the built-in functions."""

    function: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class UnaryOp(_Node):
    """`!x`, `-x` or `+x`."""

    op: str
    operand: Node


@dataclass(frozen=True)
class BinaryOp(_Node):
    """A binary or logical operator applied to two operands."""

    op: str
    left: Node
    right: Node


Node = Constant | Name | Attribute | Call | UnaryOp | BinaryOp


@dataclass(frozen=True)
class Token:
    """One lexical token; `start` and `end` index the expression text."""

    kind: Literal["number", "string", "name", "op", "end"]
    text: str
    start: int
    end: int
    value: str | float = ""


def parse(expression: str) -> Node:
    """Parse an expression; raise ExpressionError if it is not valid."""
    if len(expression) > MAX_LENGTH:
        msg = f"expression is {len(expression)} characters long; the limit is {MAX_LENGTH}"
        raise ExpressionError(msg)
    text = expression.strip(JS_WHITESPACE)
    return _Parser(text).program()


def _is_name_start(char: str) -> bool:
    # As in jsep, every non-ASCII character may be part of a name.
    return not char.isascii() or char.isalpha() or char in "$_"


def _is_name_part(char: str) -> bool:
    return _is_name_start(char) or "0" <= char <= "9"


def _is_digit(text: str, index: int) -> bool:
    return index < len(text) and "0" <= text[index] <= "9"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []

    def fail(self, message: str, index: int) -> NoReturn:
        msg = f"{message} (at character {index + 1} of {self.text!r})"
        raise ExpressionError(msg)

    def run(self) -> list[Token]:
        text, index = self.text, 0
        while index < len(text):
            char = text[index]
            if char in " \t\n\r":
                index += 1
            elif _is_digit(text, index) or (char == "." and _is_digit(text, index + 1)):
                index = self.number(index)
            elif char in "'\"":
                index = self.string(index)
            elif text.startswith("${{", index):
                end = text.find("}}", index)
                ref = text[index : end + 2] if end > 0 else text[index:]
                msg = f"variable reference {ref!r} must be inside quotes, e.g. '\"{ref}\"'"
                self.fail(msg, index)
            elif _is_name_start(char):
                index = self.name(index)
            elif char == "`":
                msg = "backtick strings are not supported; use '...' or \"...\""
                self.fail(msg, index)
            else:
                index = self.operator(index)
        self.tokens.append(Token("end", "", len(text), len(text)))
        return self.tokens

    def number(self, start: int) -> int:
        text, index = self.text, start
        while _is_digit(text, index):
            index += 1
        if text.startswith(".", index):
            index += 1
            while _is_digit(text, index):
                index += 1
        if text[index : index + 1] in ("e", "E"):
            index += 1
            if text[index : index + 1] in ("+", "-"):
                index += 1
            if not _is_digit(text, index):
                msg = f"number {text[start:index]!r} has no digits in its exponent"
                self.fail(msg, index)
            while _is_digit(text, index):
                index += 1
        if index < len(text) and _is_name_start(text[index]):
            msg = f"names cannot start with a digit: {text[start : index + 1]!r}"
            self.fail(msg, start)
        if text.startswith(".", index):
            self.fail(f"unexpected '.' after number {text[start:index]!r}", index)
        raw = text[start:index]
        self.tokens.append(Token("number", raw, start, index, float(raw)))
        return index

    def string(self, start: int) -> int:
        text, quote, index = self.text, self.text[start], start + 1
        chars: list[str] = []
        while index < len(text) and text[index] != quote:
            if text[index] == "\\" and index + 1 < len(text):
                # jsep knows six escapes; any other escaped character is itself.
                chars.append(_ESCAPES.get(text[index + 1], text[index + 1]))
                index += 2
            else:
                chars.append(text[index])
                index += 1
        if index >= len(text):
            msg = f"unclosed quote: {text[start:]!r} has no closing {quote}"
            self.fail(msg, start)
        token = Token(
            "string", text[start : index + 1], start, index + 1, "".join(chars)
        )
        self.tokens.append(token)
        return index + 1

    def name(self, start: int) -> int:
        index = start + 1
        while index < len(self.text) and _is_name_part(self.text[index]):
            index += 1
        self.tokens.append(Token("name", self.text[start:index], start, index))
        return index

    def operator(self, start: int) -> int:
        op = next((o for o in _OPERATORS if self.text.startswith(o, start)), None)
        if op is None:
            self.fail(f"unexpected character {self.text[start]!r}", start)
        if op == "[":
            previous = self.tokens[-1] if self.tokens else None
            if previous is not None and (previous.kind != "op" or previous.text == ")"):
                msg = "computed member access (a[...]) is not supported; use Member(a, 'key')"
            else:
                msg = "array literals ([1, 2, 3]) are not supported"
            self.fail(msg, start)
        if op in _REFUSED:
            self.fail(_REFUSED[op], start)
        self.tokens.append(Token("op", op, start, start + len(op)))
        return start + len(op)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _Lexer(text).run()
        self.index = 0
        self.depth = 0

    def fail(self, message: str, token: Token) -> NoReturn:
        msg = f"{message} (at character {token.start + 1} of {self.text!r})"
        raise ExpressionError(msg)

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def is_op(self, *ops: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text in ops

    def program(self) -> Node:
        nodes: list[Node] = []
        while True:
            # jsep separates expressions with ';' or ','; tevale accepts only one.
            while self.is_op(";", ","):
                self.take()
            token = self.peek()
            if token.kind == "end":
                break
            if nodes:
                self.compound(nodes[0], token)
            nodes.append(self.expression(0))
            if self.is_op(")"):
                self.fail("unmatched ')'", self.peek())
        # An empty expression is false, as in tevale.
        return nodes[0] if nodes else Constant(False, span=Span(self.text, 0, 0))

    def compound(self, first: Node, second: Token) -> NoReturn:
        msg = (
            f"Cannot handle compound expressions: {first.source!r} is followed by "
            f"{self.text[second.start :]!r} with no operator between them; join "
            "conditions with && or ||, and quote string values "
            '(\'"${{CF_BRANCH}}" == "main"\')'
        )
        self.fail(msg, second)

    def span(self, start: Token) -> Span:
        """From `start` to the last token taken."""
        return Span(self.text, start.start, self.tokens[self.index - 1].end)

    def expression(self, min_precedence: int) -> Node:
        first = self.peek()
        left = self.unary()
        while True:
            token = self.peek()
            precedence = (
                BINARY_PRECEDENCE.get(token.text, 0) if token.kind == "op" else 0
            )
            if precedence == 0 or precedence < min_precedence:
                return left
            self.take()
            right = self.expression(precedence + 1)
            left = BinaryOp(token.text, left, right, span=self.span(first))

    def unary(self) -> Node:
        start = self.peek()
        if not self.is_op(*_UNARY):
            return self.postfix()
        self.take()
        self.enter(start)
        operand = self.unary()
        self.depth -= 1
        return UnaryOp(start.text, operand, span=self.span(start))

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"expression nests deeper than {MAX_DEPTH} levels", token)

    def postfix(self) -> Node:
        start = self.peek()
        node = self.primary()
        if start.kind == "number":
            # jsep ends a number literal there: `123(x)` is two expressions.
            return node
        while self.is_op(".", "("):
            if self.take().text == ".":
                name = self.take()
                if name.kind != "name":
                    self.fail("expected a member name after '.'", name)
                node = Attribute(node, name.text, span=self.span(start))
            else:
                node = self.call(node, start)
        return node

    def call(self, callee: Node, start: Token) -> Call:
        if not isinstance(callee, Name):
            msg = f"{callee.source!r} cannot be called; only the built-in functions can"
            self.fail(msg, start)
        self.enter(start)
        args: list[Node] = []
        while not self.is_op(")"):
            if args and not self.is_op(","):
                self.fail("expected ',' or ')' in the argument list", self.peek())
            if args:
                self.take()
            args.append(self.expression(0))
        self.take()
        self.depth -= 1
        return self.check_call(
            Call(callee.name, tuple(args), span=self.span(start)), start
        )

    def check_call(self, node: Call, start: Token) -> Call:
        params = FUNCTION_PARAMS.get(node.function)
        if params is None:
            known = ", ".join(FUNCTION_PARAMS)
            msg = f"Unknown function: {node.function!r}; the functions are {known}"
            self.fail(msg, start)
        if len(node.args) != len(params):
            signature = ", ".join(" or ".join(types) for types in params)
            msg = (
                f"{node.function}() takes {len(params)} argument(s) ({signature}), "
                f"got {len(node.args)} in {node.source!r}"
            )
            self.fail(msg, start)
        return node

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("number", "string"):
            return Constant(token.value, span=self.span(token))
        if token.kind == "name":
            return self.name(token)
        if token.kind == "op" and token.text == "(":
            self.enter(token)
            inner = self.expression(0)
            if self.peek().kind == "end":
                self.fail("missing ')'", self.peek())
            if not self.is_op(")"):
                self.compound(inner, self.peek())
            self.take()
            self.depth -= 1
            return inner
        if token.kind == "end":
            previous = self.tokens[self.index - 2] if self.index > 1 else token
            msg = f"expression ends after {previous.text!r}; a value is missing"
            self.fail(msg, token)
        self.fail(f"unexpected {token.text!r}; expected a value", token)

    def name(self, token: Token) -> Node:
        if token.text in _KEYWORDS:
            return Constant(_KEYWORDS[token.text], span=self.span(token))
        if token.text == "this":
            self.fail("keyword 'this' is not supported", token)
        return Name(token.text, span=self.span(token))


_LINE_END: Final = "\n\r\u2028\u2029"
_CLASS_BODY: Final = {
    "d": "0-9",
    "w": "A-Za-z0-9_",
    "s": r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff",
}
_WORD: Final = "[A-Za-z0-9_]"
_BOUNDARY: Final = {
    "b": f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))",
    "B": f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))",
}


@functools.lru_cache(maxsize=256)
def compile_js_regex(pattern: str, flags: str = "") -> re.Pattern[str]:
    """Compile a JavaScript regular expression with Python's `re`.

    Flags `i`, `m` and `s` carry over; the others do not change a search.
    JavaScript's meaning of `\\d \\w \\s \\b`, of `.`, `^` and `$` (all line
    terminators), and `(?<name>...)` groups are kept.
    """
    source = _translate_regex(pattern, dotall="s" in flags, multiline="m" in flags)
    try:
        return re.compile(source, re.IGNORECASE if "i" in flags else 0)
    except re.error as exc:
        msg = f"invalid regular expression {pattern!r}: {exc}"
        raise ExpressionError(msg) from exc


def _translate_regex(pattern: str, *, dotall: bool, multiline: bool) -> str:
    outside = {
        ".": "(?s:.)" if dotall else f"[^{_LINE_END}]",
        "^": f"(?:\\A|(?<=[{_LINE_END}]))" if multiline else r"\A",
        "$": f"(?=\\Z|[{_LINE_END}])" if multiline else r"\Z",
    }
    out: list[str] = []
    index, in_class = 0, False
    while index < len(pattern):
        char, step = pattern[index], 1
        if char == "\\" and index + 1 < len(pattern):
            piece, used = _translate_escape(pattern[index + 1 :], in_class)
            step += used
        elif in_class:
            # Escaped so that Python does not read them as set operations.
            doubled = char == "-" and out[-1] == "-"
            piece = "\\" + char if char in "[&~|" or doubled else char
            in_class = char != "]"
        elif pattern.startswith("[^]", index):
            piece, step = "(?s:.)", 3
        elif pattern.startswith("[]", index):
            piece, step = "(?!)", 2
        elif char == "[":
            piece, in_class = char, True
        elif (
            pattern.startswith("(?<", index)
            and pattern[index + 3 : index + 4] not in "=!"
        ):
            piece, step = "(?P<", 3
        else:
            piece = outside.get(char, char)
        out.append(piece)
        index += step
    return "".join(out)


def _translate_escape(rest: str, in_class: bool) -> tuple[str, int]:
    """Translate the escape whose letter starts `rest`; say how much it used."""
    char = rest[0]
    body = _CLASS_BODY.get(char.lower())
    if body is not None and char.islower():
        return (body if in_class else f"[{body}]"), 1
    if body is not None:
        # Python's own \\D \\W \\S are close enough inside a class.
        return (f"\\{char}" if in_class else f"[^{body}]"), 1
    if char in _BOUNDARY:
        inside = "\\x08" if char == "b" else "B"
        return (inside if in_class else _BOUNDARY[char]), 1
    if rest.startswith("k<") and ">" in rest:
        return f"(?P={rest[2 : rest.index('>')]})", rest.index(">") + 1
    if char == "c" and rest[1:2].isascii() and rest[1:2].isalpha():
        return re.escape(chr(ord(rest[1]) % 32)), 2
    if char.isascii() and char.isalpha() and char not in "fnrtvxu":
        # JavaScript reads an unknown letter escape as the letter itself.
        return char, 1
    return "\\" + char, 1
