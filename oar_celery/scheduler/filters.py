"""A small, safe property-filter language (``-p "mem > 64 AND gpu='YES'"``).

OAR pastes ``-p`` text into SQL; we never do. The text is tokenized and parsed
by a recursive-descent parser into a tree of Python closures, so nothing a user
writes is ever evaluated or sent to a database. The grammar is the part of SQL
that OAR users actually write::

    expr       := and_expr (OR and_expr)*
    and_expr   := not_expr (AND not_expr)*
    not_expr   := NOT not_expr | '(' expr ')' | comparison
    comparison := operand (= | != | <> | < | <= | > | >=) operand
                | operand [NOT] IN '(' literal (',' literal)* ')'
                | operand [NOT] LIKE string
    operand    := column | literal

Comparisons follow SQL's three-valued logic: a resource without the property
(``None``) matches neither ``x = 1`` nor ``NOT x = 1``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .errors import RequestError

Value = int | float | str | None
Tri = bool | None  # SQL three-valued truth
Evaluator = Callable[[Mapping[str, object]], Tri]

KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE"}
FORBIDDEN_WORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "UNION",
    "INSERT",
    "UPDATE",
    "DELETE",
    "DROP",
    "CREATE",
    "ALTER",
    "EXEC",
    "EXECUTE",
    "TRUNCATE",
    "GRANT",
    "INTO",
}
COMPARATORS = ("<=", ">=", "<>", "!=", "=", "<", ">")
COLUMN_TYPES = {"int", "float", "str"}
DIGITS = frozenset("0123456789")
_NUMBER = re.compile(r"\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?", re.ASCII)


@dataclass(frozen=True)
class Token:
    kind: str  # "ident", "keyword", "number", "string", "op", "(", ")", ",", "end"
    text: str
    value: Value = None
    pos: int = 0


def _fail(text: str, pos: int, why: str) -> RequestError:
    return RequestError(f"bad property filter {text!r} at position {pos}: {why}")


def tokenize(text: str) -> list[Token]:
    """Split filter text into tokens; refuse any character SQL could abuse."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif text.startswith("--", i) or text.startswith("/*", i):
            raise _fail(text, i, "comments are not allowed")
        elif ch == ";":
            raise _fail(text, i, "';' is not allowed")
        elif ch in "'\"":
            start, i, chars = i, i + 1, []
            while True:
                if i >= n:
                    raise _fail(text, start, "unterminated string")
                if text[i] == ch:
                    if i + 1 < n and text[i + 1] == ch:  # '' (or "") escapes the quote
                        chars.append(ch)
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            tokens.append(Token("string", text[start:i], "".join(chars), start))
        elif ch in DIGITS or (ch == "." and i + 1 < n and text[i + 1] in DIGITS):
            sub = _number_at(text, i)
            assert sub is not None
            token, end = sub
            if end < n and (text[end].isalnum() or text[end] == "_"):
                raise _fail(text, i, f"bad number {text[i : end + 1]!r}")
            tokens.append(token)
            i = end
        elif ch.isalpha() or ch == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            word = text[start:i]
            upper = word.upper()
            if upper in FORBIDDEN_WORDS:
                raise _fail(text, start, f"'{word}' is not allowed (sub-queries and statements are refused)")
            kind = "keyword" if upper in KEYWORDS else "ident"
            tokens.append(Token(kind, upper if kind == "keyword" else word, None, start))
        elif ch in "(),":
            tokens.append(Token(ch, ch, None, i))
            i += 1
        elif ch == "-" and (not tokens or tokens[-1].kind in {"op", "(", ",", "keyword"}):
            # A unary minus directly in front of a number literal.
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            sub = _number_at(text, j)
            if sub is None:
                raise _fail(text, i, "'-' must be followed by a number")
            token, end = sub
            assert isinstance(token.value, int | float)
            tokens.append(Token("number", "-" + token.text, -token.value, i))
            i = end
        else:
            op = next((c for c in COMPARATORS if text.startswith(c, i)), None)
            if op is None:
                raise _fail(text, i, f"unexpected character {ch!r}")
            tokens.append(Token("op", op, None, i))
            i += len(op)
    tokens.append(Token("end", "", None, n))
    return tokens


def _number_at(text: str, i: int) -> tuple[Token, int] | None:
    """Read one ASCII number literal at ``i``."""
    match = _NUMBER.match(text, i)
    if match is None:
        return None
    literal = match.group()
    is_float = any(c in literal for c in ".eE")
    return Token("number", literal, float(literal) if is_float else int(literal), i), match.end()


def _coerce(value: object, kind: str) -> Value:
    """Bring a stored property value to its column type; ``None`` if it cannot be."""
    if value is None:
        return None
    try:
        if kind == "int":
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, float):
                return value if not value.is_integer() else int(value)
            return int(value)  # type: ignore[call-overload]
        if kind == "float":
            return float(value)  # type: ignore[arg-type]
        return str(value)
    except (TypeError, ValueError):
        if kind == "int":
            try:
                return float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return None
        return None


def _like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE → an anchored regex built only from escaped literal characters."""
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


@dataclass(frozen=True)
class Operand:
    """A column reference (``column`` set) or a literal (``literal`` set)."""

    column: str | None = None
    kind: str = "str"  # column type, or the literal's own type
    literal: Value = None

    def getter(self) -> Callable[[Mapping[str, object]], Value]:
        if self.column is None:
            literal = self.literal
            return lambda props: literal
        column, kind = self.column, self.kind
        return lambda props: _coerce(props.get(column), kind)


class _Parser:
    def __init__(self, text: str, columns: Mapping[str, str] | None) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.columns = columns
        self.lower_columns = {name.lower(): name for name in columns} if columns is not None else {}
        self.used: set[str] = set()

    # -- token helpers --
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept_keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "keyword" and token.text == word:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise _fail(self.text, token.pos, f"expected {what}, found {token.text or 'end of text'!r}")
        return self.take()

    # -- grammar --
    def parse(self) -> Evaluator:
        node = self.expr()
        token = self.peek()
        if token.kind != "end":
            if token.kind == ")":
                raise _fail(self.text, token.pos, "unbalanced ')'")
            raise _fail(self.text, token.pos, f"unexpected {token.text!r}")
        return node

    def expr(self) -> Evaluator:
        terms = [self.and_expr()]
        while self.accept_keyword("OR"):
            terms.append(self.and_expr())
        if len(terms) == 1:
            return terms[0]

        def either(props: Mapping[str, object]) -> Tri:
            unknown = False
            for term in terms:
                value = term(props)
                if value is True:
                    return True
                unknown = unknown or value is None
            return None if unknown else False

        return either

    def and_expr(self) -> Evaluator:
        terms = [self.not_expr()]
        while self.accept_keyword("AND"):
            terms.append(self.not_expr())
        if len(terms) == 1:
            return terms[0]

        def both(props: Mapping[str, object]) -> Tri:
            unknown = False
            for term in terms:
                value = term(props)
                if value is False:
                    return False
                unknown = unknown or value is None
            return None if unknown else True

        return both

    def not_expr(self) -> Evaluator:
        if self.accept_keyword("NOT"):
            inner = self.not_expr()

            def negate(props: Mapping[str, object]) -> Tri:
                value = inner(props)
                return None if value is None else not value

            return negate
        token = self.peek()
        if token.kind == "(":
            self.take()
            node = self.expr()
            closing = self.peek()
            if closing.kind != ")":
                raise _fail(self.text, token.pos, "unbalanced '('")
            self.take()
            return node
        return self.comparison()

    def operand(self) -> Operand:
        token = self.take()
        if token.kind == "number":
            return Operand(kind="float" if isinstance(token.value, float) else "int", literal=token.value)
        if token.kind == "string":
            return Operand(kind="str", literal=token.value)
        if token.kind == "ident":
            if self.peek().kind == "(":
                raise _fail(self.text, token.pos, f"function calls such as '{token.text}(...)' are not allowed")
            return self.column(token)
        raise _fail(self.text, token.pos, f"expected a column or a value, found {token.text or 'end of text'!r}")

    def column(self, token: Token) -> Operand:
        if self.columns is None:  # syntax check only
            self.used.add(token.text)
            return Operand(column=token.text, kind="str")
        name = token.text if token.text in self.columns else self.lower_columns.get(token.text.lower())
        if name is None:
            raise RequestError(f"unknown property '{token.text}' in property filter {self.text!r}")
        kind = self.columns[name]
        if kind not in COLUMN_TYPES:
            kind = "str"
        self.used.add(name)
        return Operand(column=name, kind=kind)

    def literal(self) -> Operand:
        operand = self.operand()
        if operand.column is not None:
            raise _fail(self.text, self.peek(-1).pos, "only values are allowed in an IN list")
        return operand

    def comparison(self) -> Evaluator:
        left = self.operand()
        negated = False
        if self.peek().kind == "keyword" and self.peek().text == "NOT" and self.peek(1).text in {"IN", "LIKE"}:
            self.take()
            negated = True
        token = self.peek()
        if token.kind == "keyword" and token.text == "IN":
            self.take()
            self.expect("(", "'(' after IN")
            items = [self.literal()]
            while self.peek().kind == ",":
                self.take()
                items.append(self.literal())
            self.expect(")", "')' closing the IN list")
            return self._in(left, items, negated)
        if token.kind == "keyword" and token.text == "LIKE":
            self.take()
            pattern = self.expect("string", "a quoted pattern after LIKE")
            return self._like(left, str(pattern.value), negated)
        if negated or token.kind != "op":
            raise _fail(self.text, token.pos, f"expected a comparison operator, found {token.text or 'end of text'!r}")
        self.take()
        right = self.operand()
        return self._compare(left, token.text, right)

    # -- node builders --
    def _typed(self, operand: Operand, kind: str) -> Operand:
        """Cast a literal to the type of the column it is compared with."""
        if operand.column is not None or kind == operand.kind:
            return operand
        if kind == "str":
            return Operand(kind="str", literal=str(operand.literal))
        cast = _coerce(operand.literal, kind)
        if cast is None:
            raise RequestError(
                f"cannot compare a {kind} property with {operand.literal!r} in property filter {self.text!r}"
            )
        return Operand(kind=kind, literal=cast)

    def _compare(self, left: Operand, op: str, right: Operand) -> Evaluator:
        if left.column is not None and right.column is None:
            right = self._typed(right, left.kind)
        elif right.column is not None and left.column is None:
            left = self._typed(left, right.kind)
        get_left, get_right, compare = left.getter(), right.getter(), _COMPARE[op]
        if (left.kind == "str") != (right.kind == "str"):
            # Text against a number with no column to cast to: compare as text, as SQL would after a cast.
            get_left, get_right = _as_text(get_left), _as_text(get_right)

        def comparison(props: Mapping[str, object]) -> Tri:
            a, b = get_left(props), get_right(props)
            if a is None or b is None:
                return None
            try:
                return compare(a, b)
            except TypeError:
                return None

        return comparison

    def _in(self, left: Operand, items: list[Operand], negated: bool) -> Evaluator:
        kind = left.kind if left.column is not None else "str"
        values = (
            {self._typed(item, kind).literal for item in items}
            if left.column is not None
            else {item.literal for item in items}
        )
        get = left.getter()

        def membership(props: Mapping[str, object]) -> Tri:
            value = get(props)
            if value is None:
                return None
            return (value in values) != negated

        return membership

    def _like(self, left: Operand, pattern: str, negated: bool) -> Evaluator:
        regex = _like_regex(pattern)
        get = left.getter()

        def like(props: Mapping[str, object]) -> Tri:
            value = get(props)
            if value is None:
                return None
            return (regex.fullmatch(str(value)) is not None) != negated

        return like


def _as_text(getter: Callable[[Mapping[str, object]], Value]) -> Callable[[Mapping[str, object]], Value]:
    def text(props: Mapping[str, object]) -> Value:
        value = getter(props)
        return None if value is None else str(value)

    return text


@dataclass(frozen=True)
class PropertyFilter:
    """A compiled filter: call :meth:`matches` on a resource's properties."""

    text: str
    columns: frozenset[str] = field(default_factory=frozenset)
    _evaluate: Evaluator | None = None

    def matches(self, props: Mapping[str, object]) -> bool:
        return self._evaluate is None or self._evaluate(props) is True


def compile_filter(text: str | None, columns: Mapping[str, str] | None) -> PropertyFilter:
    """Parse ``text`` against known ``columns`` (name → "int" | "float" | "str").

    ``columns=None`` checks the syntax only (any column name is accepted), for
    clients that do not know the cluster's properties.
    """
    if text is None or not text.strip():
        return PropertyFilter(text or "")
    if "\n" in text or "\r" in text or "\x00" in text:
        raise RequestError("bad property filter: it must be a single line")
    parser = _Parser(text, columns)
    evaluate = parser.parse()
    return PropertyFilter(text, frozenset(parser.used), evaluate)


def columns_of(properties: list[Mapping[str, object]]) -> dict[str, str]:
    """Guess column types from resource property values (int < float < str)."""
    rank = {"int": 0, "float": 1, "str": 2}
    kinds: dict[str, str] = {}
    for props in properties:
        for name, value in props.items():
            if value is None:
                continue
            kind = "int" if isinstance(value, int) else "float" if isinstance(value, float) else "str"
            if name not in kinds or rank[kind] > rank[kinds[name]]:
                kinds[name] = kind
    return kinds
