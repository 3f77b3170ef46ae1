"""A fast lexer for the policy grammar, plugged into Lark's LALR parser.

Lark's own contextual lexer costs about 7 microseconds a token on our machines, half of all
parsing time; a policy set of 10,000 rules has about 300,000 tokens. This lexer scans with one
compiled regex and keeps the contextual behaviour that the grammar relies on: a word is a keyword
only where the parser's current state accepts that keyword (so `resource.action` and
`subject.any` are attribute names), and a rule id (`purchase-alcohol`) is read only right after
`permit` / `forbid`. tests/language/test_lexer.py checks that it yields exactly the tokens of
Lark's contextual lexer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lark import Token
from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters
from lark.lexer import Lexer

# The grammar's terminals this lexer produces, grouped by how they are recognised. The
# constructor checks that the grammar has exactly these, so a change to the grammar cannot
# silently diverge from the lexer.
_REGEX_TERMINALS = ("NAME", "RULE_ID", "STRING", "DECIMAL", "INT", "COMP_OP", "COMMENT", "WS")
_WORD_ALTERNATIVES = {"EFFECT": ("permit", "forbid")}
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")


class PolicyLexer(Lexer):
    __future_interface__ = 2  # lark passes (lexer_state, parser_state) to lex()

    def __init__(self, conf: LexerConf) -> None:
        by_name = {terminal.name: terminal for terminal in conf.terminals}
        self.keywords: dict[str, str] = {}
        symbols: dict[str, str] = {}
        for terminal in conf.terminals:
            pattern = terminal.pattern
            if terminal.name in _REGEX_TERMINALS:
                continue
            if terminal.name in _WORD_ALTERNATIVES:
                for word in _WORD_ALTERNATIVES[terminal.name]:
                    self.keywords[word] = terminal.name
            elif pattern.type == "str" and re.fullmatch(r"[A-Za-z_]\w*", pattern.value):
                self.keywords[pattern.value] = terminal.name
            elif pattern.type == "str":
                symbols[pattern.value] = terminal.name
            else:
                raise ValueError(f"the policy lexer does not know terminal {terminal.name}")
        missing = [name for name in _REGEX_TERMINALS if name not in by_name]
        if missing:
            raise ValueError(f"the grammar lacks terminals {missing}")
        for comparison in _COMPARISONS:
            symbols[comparison] = "COMP_OP"
        self.symbols = symbols
        self.ignore = frozenset(conf.ignore)

        def regex(name: str) -> str:
            return str(by_name[name].pattern.to_regexp())

        # Longer symbols first, so `==` wins over `=` and `??` is one token.
        symbol_regex = "|".join(re.escape(s) for s in sorted(symbols, key=len, reverse=True))
        self.scanner = re.compile(
            "|".join(
                (
                    f"(?P<WS>{regex('WS')})",
                    f"(?P<COMMENT>{regex('COMMENT')})",
                    f"(?P<STRING>{regex('STRING')})",
                    f"(?P<DECIMAL>{regex('DECIMAL')})",
                    f"(?P<INT>{regex('INT')})",
                    f"(?P<WORD>{regex('NAME')})",
                    f"(?P<SYMBOL>{symbol_regex})",
                )
            )
        )
        self.rule_id = re.compile(regex("RULE_ID"))

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Token]:
        text_slice = lexer_state.text
        text: str = getattr(text_slice, "text", text_slice)
        end: int = getattr(text_slice, "end", len(text))
        pos: int = getattr(text_slice, "start", 0)
        line, line_start = 1 + text.count("\n", 0, pos), text.rfind("\n", 0, pos) + 1
        states = parser_state.parse_conf.states
        stack = parser_state.state_stack
        match, keywords, symbols = self.scanner.match, self.keywords, self.symbols
        while pos < end:
            found = match(text, pos)
            if found is None:
                column = pos - line_start + 1
                raise UnexpectedCharacters(text, pos, line, column, state=parser_state)  # type: ignore[no-untyped-call]
            kind: str = found.lastgroup or ""
            value = found.group()
            start = pos
            pos = found.end()
            if kind in ("WS", "COMMENT"):
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = start + value.rindex("\n") + 1
                continue
            accepted = states[stack[-1]]
            if kind == "WORD":
                if "RULE_ID" in accepted:
                    longer = self.rule_id.match(text, start)
                    if longer is not None:
                        value, pos, kind = longer.group(), longer.end(), "RULE_ID"
                if kind == "WORD":
                    # A keyword where the parser accepts it, a name otherwise; where neither fits,
                    # the keyword, so that the syntax error names it as Lark's lexer would.
                    keyword = keywords.get(value)
                    if keyword is not None and (keyword in accepted or "NAME" not in accepted):
                        kind = keyword
                    else:
                        kind = "NAME"
            elif kind == "SYMBOL":
                kind = symbols[value]
            column = start - line_start + 1
            token = Token(kind, value, start, line, column, line, column + len(value), pos)
            lexer_state.last_token = token
            yield token
