"""Table-driven tests of the condition expression language (semantics §7).

Rows marked "README" come from the golden table in tevale's README; the
others pin down the rules of semantics §7 and Decisions 1-2.
"""

from __future__ import annotations

import math

import pytest

from flows.errors import ExpressionError
from flows.expressions import (
    compile_js_regex,
    evaluate,
    evaluate_condition,
    js_number_to_string,
    parse,
)

VARIABLES: dict[str, object] = {
    "steps": {
        "build": {"result": "success"},
        "tests": {"result": "failure"},
        "my-step": {"result": "failure", "working-directory": "/codefresh/volume"},
    },
    "build": {"result": "success"},
    "my-step": {"result": "failure"},
    "workflow": {"result": "running"},
    "count": 123,
    "zero": 0,
    "negative": -50,
    "ratio": 1.5,
    "text": "hello",
    "empty": "",
    "yes": True,
    "no": False,
    "nothing": None,
    "nested": {"inner": {"deep": {"number": 123, "flag": False, "none": None}}},
    "emptyObject": {},
    "author": {"name": "Alon Diamant", "github": {"repositories": 12}},
    "company": {"phoneNumber": "+972-99-999-9999"},
    "hello there": {"testVariable": 567},
    "items": ["a", "b"],
}

VALUES = [
    # literals
    ("1234", 1234),
    ("-1234", -1234),
    ("0000000", 0),
    ("1.5", 1.5),
    (".5", 0.5),
    ("1.", 1),
    ("1e3", 1000),
    ("1.79E+308", 1.79e308),
    ("2.5e-3", 0.0025),
    ('"double"', "double"),
    ("'single'", "single"),
    ("'it\\'s'", "it's"),
    ('"a\\tb"', "a\tb"),
    ('"\\d"', "d"),  # jsep: an unknown escape is the character itself
    ('"\\\\d"', "\\d"),
    ("true", True),
    ("false", False),
    ("null", None),
    ("", False),
    ("   ", False),
    ("true;", True),
    # variables and members
    ("count", 123),
    ("text", "hello"),
    ("nothing", None),
    ("steps.build.result", "success"),
    ("build.result", "success"),
    ("workflow.result", "running"),
    ("nested.inner.deep.number", 123),
    ("nested.inner.deep.none", None),
    ("Variable('my-step').result", "failure"),
    ("Member(Variable('my-step'), 'result')", "failure"),
    ("Member(steps, 'my-step').result", "failure"),
    ("Member(Variable('steps'), 'my-step.result')", "failure"),
    ("Member(author.github, 'repositories')", 12),
    ('Variable("author").name', "Alon Diamant"),
    ('Variable("hello there").testVariable', 567),
    # arithmetic
    ("1 + 2", 3),
    ("23423 - 223", 23200),
    ("6 * 7", 42),
    ("7 / 2", 3.5),
    ("55 % 10", 5),
    ("-7 % 3", -1),
    ("7.5 % 2", 1.5),
    ("0.1 + 0.2", 0.30000000000000004),
    ("9007199254740991 * 9007199254740991", 9007199254740991.0**2),
    ('"con" + "cat"', "concat"),
    ("count / count", 1),
    # precedence and grouping
    ("2 + 3 * 4", 14),
    ("(2 + 3) * 4", 20),
    ("10 - 4 - 3", 3),
    ("100 / 10 / 5", 2),
    ("2 * 3 % 4", 2),
    ("-2 * 3", -6),
    ("-(2 + 3)", -5),
    ("((((7))))", 7),
    ("1 + 2 < 4", True),
    ("1 < 2 == true", True),
    ("!true == false", True),
    ("true || false && false", True),
    ("false && true || true", True),
    ("(false && true) || true", True),
    ("false && (true || true)", False),
    # unary
    ("+234", 234),
    ("-count", -123),
    ("--5", 5),
    ("!true", False),
    ("!!true", True),
    ("!!!!!!!!!!true", True),
    ("!33", False),
    ("!0", True),
    ("!!0", False),
    ("!no", True),
    # comparison
    ("count > zero", True),
    ("count < zero", False),
    ("count >= count", True),
    ("count <= zero", False),
    ("'b' > 'a'", True),
    ("'B' < 'a'", True),
    ("'abc' <= 'abd'", True),
    ("'10' < '9'", True),
    ("text == 'hello'", True),
    ("text != 'hello'", False),
    ("yes == true", True),
    ("no != false", False),
    ("1 == 1.0", True),
    ("nothing == null", True),
    ("null == null", True),
    ("text == null", False),
    ("null != 'x'", True),
    ("steps == null", False),
    ("steps.build == steps.build", True),
    ("steps.build == build", False),
    ("steps.build.result == 'success'", True),
    ("steps.tests.result == 'success' || workflow.result == 'running'", True),
    ("steps.build.result == 'success' && steps.tests.result != 'failure'", False),
    # String, Number, Boolean
    ("String(40)", "40"),
    ("String(1.0)", "1"),
    ("String(1.5)", "1.5"),
    ("String(-0.25)", "-0.25"),
    ("String('x')", "x"),
    ("String(999234234.23423)", "999234234.23423"),
    ("Number('50')", 50),
    ("Number(' 12.5 ')", 12.5),
    ("Number('')", 0),
    ("Number('0x1F')", 31),
    ("Number('1e3')", 1000),
    ("Number('-.5')", -0.5),
    ("Number(7)", 7),
    ("Number(substring(company.phoneNumber, 1, 4)) / 2", 486),
    ("Boolean('123')", True),
    ("Boolean('0')", True),
    ("Boolean('')", False),
    ("Boolean(583)", True),
    ("Boolean(0)", False),
    ("Boolean(Number(String(0)))", False),
    ("Boolean('${{X}}') == true", True),
    # numbers
    ("round(1.3)", 1),
    ("round(1.95)", 2),
    ("round(2.5)", 3),
    ("round(-2.5)", -2),
    ("round(-2.6)", -3),
    ("floor(1.95)", 1),
    ("floor(-1.5)", -2),
    ("floor(13E8)", 1300000000),
    ("floor(1359 / 342)", 3),
    ("round(13) == floor(13.9922)", True),
    # strings
    ("upper('hello')", "HELLO"),
    ("lower('BYE BYE')", "bye bye"),
    ("trim('   abc   ')", "abc"),
    ("trim('\\t\\n abc \\r')", "abc"),
    ("trimLeft('   abc   ')", "abc   "),
    ("trimRight('   abc   ')", "   abc"),
    ("trim(lower('   ASD   ')) == 'asd'", True),
    ("replace('hello there', 'e', 'a')", "hallo there"),
    ("replace('test me and you', 'me', 'her')", "test her and you"),
    ("replace('test ME and you', 'me', 'her')", "test ME and you"),
    ("replace('a.b.c', '.', '-')", "a-b.c"),
    ("replace('abc', '', '-')", "-abc"),
    ("replace('abc', 'b', '[$&]')", "a[b]c"),
    ("replace('abc', 'b', '$$')", "a$c"),
    ("replace('abc', 'b', '$1')", "a$1c"),
    ("substring('hello world', 6, 11)", "world"),
    ("substring('test ME and you', 0, 4)", "test"),
    ("substring('test ME and you', 4, -1)", " ME and you"),
    ("substring('hello', 3, 1)", "lo"),
    ("substring('hello', -3, 2)", "he"),
    ("substring('hello', 2, 100)", "llo"),
    ("substring('hello', 20, 40)", ""),
    ("substring('hello', 1.7, 3.2)", "el"),
    ("length('gump')", 4),
    ("length('')", 0),
    ("includes('codefresh', 'odef')", True),
    ("includes('team', 'i')", False),
    ("includes('team', '')", True),
    ("includes('${{MY_VAR}}', '{{MY_VAR}}') == false", False),
    ("includes('defined-value', '{{MY_VAR}}') == false", True),
    ("indexOf('codefresh', 'odef')", 1),
    ("indexOf('team', 'i')", -1),
    ("indexOf(String(999234234.23423), '234')", 3),
    # match: a JavaScript regular expression, searched anywhere
    ("match('hello there you', '..ll.', false)", True),
    ("match('hello there you', '..LL.', false)", False),
    ("match('hello there you', '..LL.', true)", True),
    ("match('hello there you', 'hell$', true)", False),
    ("match('hello there you', '^hell', true)", True),
    ("match('hello there you', 'bye', false)", False),
    ("match('v1.2.3', '^v\\\\d+\\\\.\\\\d+', false)", True),
    ("match('123', '^\\d+$', false)", False),  # "\d" in the expression is "d"
    ("match('release/1.0', '^release/', false)", True),
    ("match(author.name, 'alon', true)", True),
    (
        "match(author.name, 'alon', true) && author.github.repositories > 10 && "
        "Number(substring(company.phoneNumber, 1, 4)) / 2 == 486",
        True,
    ),
]


def _same(actual: object, expected: object) -> bool:
    """Equal and of the same JS type (True must not pass for 1.0)."""
    if isinstance(expected, int) and not isinstance(expected, bool):
        expected = float(expected)
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize(("expression", "expected"), VALUES)
def test_value(expression: str, expected: object) -> None:
    result = evaluate(expression, VARIABLES)
    assert _same(result, expected), f"{expression!r} gave {result!r}"


CONDITIONS = [
    # README: the truthiness of the final value
    ("null", False),
    ("1234", True),
    ("0000000", False),
    ('""', False),
    ('"asdasd"', True),
    ("count", True),
    ("zero", False),
    ("negative", True),
    ("text", True),
    ("empty", False),
    ("yes", True),
    ("no", False),
    ("nothing", False),
    ("nested.inner.deep.none", False),
    ("nested.inner.deep.flag", False),
    ("!!nested.inner.deep.number", True),
    ("count / count", True),
    ("123 - 123", False),
    ("upper(text)", True),
    ("substring(text, 20, 40)", False),
    ("String(0)", True),
    ("Number('0')", False),
    (
        "60 > 35 && (50 > 22 && ((90 > 33) && ((26 > 10) && 15 > 30)) || (80 > 32))",
        True,
    ),
    (
        "60 > 35 && (50 > 22 && ((90 > 33) && ((26 > 10) && 15 > 30)) || (80 < 32))",
        False,
    ),
    (
        "match(lower(String(round(99.234234)) + ' is the number to call') + "
        "' in case of emergencies', '100', true) == "
        "(99 * 2000 > 99 * 999 && yes && count < negative)",
        True,
    ),
    ("", False),
]


@pytest.mark.parametrize(("expression", "expected"), CONDITIONS)
def test_condition(expression: str, expected: bool) -> None:
    assert evaluate_condition(expression, VARIABLES) is expected


ERRORS = [
    # strict types
    ('"1" == 1', "operator '==' cannot be used with string '1' and number 1"),
    ('"1" == 1', "String() or Number()"),
    ("1 != '1'", "operator '!='"),
    ("true == 1", "boolean true and number 1"),
    ("nothing == 5", "null and number 5"),
    ("nothing == false", "operator '=='"),
    ("steps == 'x'", "object and string 'x'"),
    ("count > nothing", "operator '>' cannot be used with number 123 and null"),
    ("count < text", "two numbers or two strings"),
    ("count > yes", "operator '>'"),
    ("steps > steps", "operator '>'"),
    ("true > false", "operator '>'"),
    ("555 + true", "operator '+'"),
    ("text + 5", "operator '+' cannot be used with string 'hello' and number 5"),
    ("text / 5", "it takes two numbers"),
    ("text * text", "operator '*'"),
    ("text - 1", "operator '-'"),
    ("'a' % 2", "operator '%'"),
    ('"abc" && true', "operator '&&' cannot be used with string 'abc' and boolean"),
    ("true || 1", "it takes two booleans"),
    ("count && yes", "make each side a comparison"),
    ("nothing || true", "operator '||'"),
    ("+true", "operator '+' cannot be used with boolean true"),
    ("-text", "operator '-'"),
    ("!text", "it takes a number or a boolean"),
    ("!nothing", "operator '!'"),
    # arithmetic limits
    ("count / zero", "division by zero in 'count / zero'"),
    ("0 / 0", "division by zero"),
    ("count % zero", "modulo by zero"),
    ("1.79E+308 * 1.79E+308", "numeric overflow"),
    ("1.79E+308 + 1.79E+308", "numeric overflow"),
    ("1e300 / 1e-300", "numeric overflow"),
    # identifiers and members
    ("invalidIdentifier", "Invalid identifier: 'invalidIdentifier'"),
    ('master == "master"', "Invalid identifier: 'master'"),
    ('master == "master"', '\'"${{CF_BRANCH}}" == "main"\''),
    ("someStringValue > null", "Invalid identifier: 'someStringValue'"),
    ("steps.nonExistant", "Undefined identifier member: 'nonExistant'"),
    ("emptyObject.flag == false", "Undefined identifier member: 'flag'"),
    ("nested.inner.missing.number", "Undefined identifier member: 'missing'"),
    ("text.length", "Undefined identifier member: 'length'"),
    ("nothing.x", "Undefined identifier member: 'x'"),
    ("author.toString", "Undefined identifier member: 'toString'"),
    ("author.__class__", "Undefined identifier member: '__class__'"),
    ("author.constructor", "Undefined identifier member: 'constructor'"),
    ("__proto__", "Invalid identifier: '__proto__'"),
    ("Variable('hello there').nope", "Undefined identifier member: 'nope'"),
    ("Variable('nope')", "Invalid identifier: 'nope'"),
    ("Member(Variable('hello world'), 'x')", "Invalid identifier: 'hello world'"),
    ("Member(author, 'nope')", "Undefined identifier member: 'nope'"),
    ("Member(author, '__proto__')", "Undefined identifier member: '__proto__'"),
    # objects cannot be conditions
    ("steps", "Cannot evaluate object variable directly"),
    ("emptyObject", "Cannot evaluate object variable directly"),
    ("nested.inner", "Cannot evaluate object variable directly"),
    ("items", "Cannot evaluate object variable directly"),
    # function arguments
    ("lower(123)", "lower() argument 1 must be string, not number 123"),
    ("trim(null)", "trim() argument 1 must be string, not null"),
    ("Number(false)", "Number() argument 1 must be number or string, not boolean"),
    ("Number('hello there')", "Error converting value 'hello there' to number"),
    ("Number('1_000')", "Error converting value"),
    ("Number('Infinity')", "Error converting value"),
    ("Number(1e999)", "Error converting value Infinity"),
    ("round('13')", "round() argument 1 must be number"),
    ("floor(yes)", "floor() argument 1 must be number"),
    ("String(yes)", "String() argument 1 must be number or string, not boolean"),
    ("Boolean(null)", "Boolean() argument 1"),
    ("replace('abc', 123, 'x')", "replace() argument 2 must be string"),
    ("substring('abc', '1', '2')", "substring() argument 2 must be number"),
    ("substring('abc', 1, null)", "substring() argument 3 must be number, not null"),
    ("length(12345)", "length() argument 1 must be string"),
    ("includes('team', 456)", "includes() argument 2 must be string"),
    ("indexOf(234234, '234')", "indexOf() argument 1 must be string"),
    ("match('abc', 123, false)", "match() argument 2 must be string"),
    ("match('abc', 'a', null)", "match() argument 3 must be boolean, not null"),
    ("match('abc', 'a', 'true')", "match() argument 3 must be boolean"),
    ("match('abc', '(', false)", "invalid regular expression '('"),
    ("Variable(5)", "Variable() argument 1 must be string"),
    ("Member('some-clone', 'working-directory')", "Member(Variable('my-step')"),
    ("Member(null, 'x')", "Member() argument 1 must be object, not null"),
]


@pytest.mark.parametrize(("expression", "message"), ERRORS)
def test_error(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_condition(expression, VARIABLES)
    assert message in str(caught.value)


SYNTAX_ERRORS = [
    ("a === b", "'===' is not supported; use '=='"),
    ("a !== b", "'!==' is not supported; use '!='"),
    ("5 > 2 ? 4 : 1", "ternary operator"),
    ("[1, 2, 3]", "array literals"),
    ("steps['build']", "use Member(a, 'key')"),
    ("this", "keyword 'this'"),
    ("this.x", "keyword 'this'"),
    ("`asdasd`", "backtick"),
    ("15 | 33", "did you mean '||'?"),
    ("15 & 33", "did you mean '&&'?"),
    ("15 ^ 33", "bitwise operator '^'"),
    ("~234", "bitwise operator '~'"),
    ("1 << 2", "bitwise operator '<<'"),
    ("1 >> 2", "bitwise operator '>>'"),
    ("1 >>> 2", "bitwise operator '>>>'"),
    ("a = 1", "use '==' to compare"),
    ("5555 : 33333", "unexpected ':'"),
    ("5555 @ 33333", "unexpected character '@'"),
    ("5555 \\ 33333", "unexpected character '\\\\'"),
    ("a b", "Cannot handle compound expressions"),
    ("5555 $ 33333", "Cannot handle compound expressions"),
    ("123(false)", "Cannot handle compound expressions"),
    ("a; b", "Cannot handle compound expressions"),
    ("nested.internal Object Value.x", "Cannot handle compound expressions"),
    ("hello there.testVariable == 567", "Cannot handle compound expressions"),
    ("(a b)", "Cannot handle compound expressions"),
    ("hello(false)", "Unknown function: 'hello'"),
    ("upper()", "upper() takes 1 argument(s)"),
    ('lower("asd", 3, 5)', "lower() takes 1 argument(s)"),
    ("replace('a', 'b')", "replace() takes 3 argument(s)"),
    ("match(123, false)", "match() takes 3 argument(s)"),
    ("match()", "match() takes 3 argument(s)"),
    ("author.eval('')", "'author.eval' cannot be called"),
    ("upper('a')('b')", "cannot be called"),
    ("steps.", "expected a member name after '.'"),
    ("steps..x", "expected a member name after '.'"),
    ("1 +", "a value is missing"),
    ("!", "a value is missing"),
    ("upper(", "a value is missing"),
    ("upper('a'", "expected ',' or ')'"),
    ("upper('a',)", "unexpected ')'"),
    ("(1", "missing ')'"),
    ("1)", "unmatched ')'"),
    ("()", "unexpected ')'"),
    ("'unclosed", "unclosed quote"),
    ('"unclosed', "unclosed quote"),
    ("1e", "no digits in its exponent"),
    ("1e+", "no digits in its exponent"),
    ("123abc", "names cannot start with a digit"),
    ("1..2", "unexpected '.' after number"),
    ("1.2.3", "unexpected '.' after number"),
    ("${{CF_BRANCH}} == 'main'", "must be inside quotes"),
    ("${{CF_BRANCH}} == 'main'", "'\"${{CF_BRANCH}}\"'"),
    ("!" * 60 + "true", "nests deeper than"),
    ("(" * 60 + "1" + ")" * 60, "nests deeper than"),
    ("1 + " * 3000 + "1" + " " * 3000, "the limit is 12000"),
]


@pytest.mark.parametrize(("expression", "message"), SYNTAX_ERRORS)
def test_syntax_error(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(expression)
    assert message in str(caught.value)


def test_syntax_errors_also_fail_evaluation() -> None:
    with pytest.raises(ExpressionError, match="use '=='"):
        evaluate("text === 'hello'", VARIABLES)


def test_error_quotes_position_and_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse("a == 1 ? 2 : 3")
    assert str(caught.value).endswith("(at character 8 of 'a == 1 ? 2 : 3')")


def test_long_chain_is_not_limited_by_recursion() -> None:
    expression = " || ".join(["count == 1"] * 800) + " || count == 123"
    assert len(expression) < 12000
    assert evaluate_condition(expression, VARIABLES) is True


def test_both_sides_of_logical_operators_are_evaluated() -> None:
    # No short circuit: an error on the right counts even when the left decides.
    with pytest.raises(ExpressionError, match="Invalid identifier: 'missing'"):
        evaluate("true || missing == 1", VARIABLES)


def test_length_limit_applies_to_the_text_as_given() -> None:
    padded = "true" + " " * 11996
    assert evaluate(padded, VARIABLES) is True
    with pytest.raises(ExpressionError, match="12001 characters"):
        evaluate(padded + " ", VARIABLES)


def test_int_variables_are_numbers_and_bools_are_not() -> None:
    assert evaluate("count + 0.5", {"count": 1}) == 1.5
    with pytest.raises(ExpressionError, match="boolean true and number 1"):
        evaluate("flag == 1", {"flag": True})


def test_unusable_variable_type() -> None:
    with pytest.raises(ExpressionError, match="holds a bytes"):
        evaluate("raw == 'x'", {"raw": b"x"})


NUMBERS = [
    (0.0, "0"),
    (-0.0, "0"),
    (1.0, "1"),
    (-1.5, "-1.5"),
    (100.0, "100"),
    (0.1, "0.1"),
    (0.000001, "0.000001"),
    (1e-7, "1e-7"),
    (1.5e-10, "1.5e-10"),
    (123456789.0, "123456789"),
    (1e20, "100000000000000000000"),
    (1e21, "1e+21"),
    (1.2345e25, "1.2345e+25"),
    (2.0**53, "9007199254740992"),
    (math.inf, "Infinity"),
    (-math.inf, "-Infinity"),
    (math.nan, "NaN"),
]


@pytest.mark.parametrize(("number", "text"), NUMBERS)
def test_js_number_to_string(number: float, text: str) -> None:
    assert js_number_to_string(number) == text


REGEXES = [
    ("^FB-", "i", "fb-123", True),
    ("^FB-", "", "fb-123", False),
    ("hotfix$", "", "release-hotfix", True),
    ("hotfix$", "", "hotfix\n", False),  # JS `$` is the very end
    ("^b", "", "a\nb", False),
    ("^b", "m", "a\nb", True),
    ("a$", "m", "a\rb", True),
    ("a.b", "", "a\nb", False),
    ("a.b", "s", "a\nb", True),
    ("a.b", "", "a\u2028b", False),
    ("^\\d+$", "", "123", True),
    ("^\\d+$", "", "\u0661\u0662", False),  # JS \d is ASCII only
    ("^\\w+$", "", "caf\u00e9", False),
    ("^\\s$", "", "\u00a0", True),
    ("\\bfix\\b", "", "hot fix", True),
    ("\\bfix\\b", "", "hotfix", False),
    ("[\\d.]+", "", "v1.2", True),
    ("[^\\s]", "", "   ", False),
    ("(?<major>\\d+)\\.\\k<major>", "", "v1.1", True),
    ("(?<major>\\d+)\\.\\k<major>", "", "v1.2", False),
    ("release\\/1", "", "release/1", True),
    ("[[]", "", "a[b", True),
    ("[a&&b]", "", "&", True),
    ("[^]", "", "\n", True),
    ("a[]", "", "a", False),
]


@pytest.mark.parametrize(("pattern", "flags", "text", "found"), REGEXES)
def test_compile_js_regex(pattern: str, flags: str, text: str, found: bool) -> None:
    assert (compile_js_regex(pattern, flags).search(text) is not None) is found
