"""Property-based fuzzing of the SQL analysis, directly and through the sandbox.

Inputs come from a grammar of SQL fragments (statements, functions from both the allow-list and
outside it, EXPLAIN options, nesting, comments, quotes, casts) plus raw text. Properties:

* every input gets an answer: an Analysis, or an AnalysisError with a message;
* a statement labelled read is one by the allow-list's rules, checked here independently on
  PostgreSQL's own parse tree.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast import ast, parser

from core.analysis import READ, Analysis, AnalysisError, analyse
from core.analysis_sandbox import AnalysisSandbox
from core.pg_functions import SIDE_EFFECT_FREE

GRAMMAR_EXAMPLES = 1_800
SANDBOX_EXAMPLES = 600
RAW_EXAMPLES = 1_500

FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SAFE_FUNCTIONS = sorted(
    {"sum", "count", "lower", "coalesce", "jsonb_build_object", "generate_series", "now"}
    | {"to_tsvector", "array_agg", "row_number", "date_trunc", "format", "abs", "md5"}
)
OTHER_FUNCTIONS = [
    "set_config", "pg_terminate_backend", "pg_cancel_backend", "lo_unlink", "lo_from_bytea",
    "pg_read_file", "pg_ls_dir", "nextval", "setval", "pg_advisory_lock", "pg_notify",
    "dblink_exec", "my_writing_function", "query_to_xml", "txid_current", "pg_reload_conf",
]  # fmt: skip


def qualified(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            name,
            f"pg_catalog.{name}",
            f"public.{name}",
            f'"{name}"',
            name.upper(),
            f"PG_CATALOG.{name}",
        ]
    )


# Allow-listed names twice as often, so that many inputs come out as reads.
function_names = st.sampled_from(SAFE_FUNCTIONS * 2 + OTHER_FUNCTIONS).flatmap(qualified)
literals = st.sampled_from(
    ["1", "0", "-1", "'x'", "'statement_timeout'", "$$lo_unlink(1)$$", "$q$0$q$", "NULL", "true"]
    + ["'{\"a\": 1}'::jsonb", "ARRAY[1, 2]", "interval '1 day'", "E'\\\\x'", "1e308", "'; DROP'"]
)
columns = st.sampled_from(["id", "t.id", "note", '"Note"', "payload"])
comments = st.sampled_from(["", " /* c */ ", " /* nested /* c */ */ ", " -- x\n", "\n"])
types = st.sampled_from(["text", "int", "regclass", "jsonb", "numeric(10, 2)", "date"])
ops = st.sampled_from(["+", "-", "||", "=", "<>", "AND", "OR", "->>", "@>", "IS DISTINCT FROM"])


def expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.builds(
                lambda f, a: f"{f}({', '.join(a)})", function_names, st.lists(inner, max_size=3)
            ),
            st.builds(lambda a, o, b: f"{a} {o} {b}", inner, ops, inner),
            st.builds(lambda a, t: f"{a}::{t}", inner, types),
            st.builds(lambda a, t: f"CAST({a} AS {t})", inner, types),
            st.builds(lambda a, c: f"({a}){c}", inner, comments),
            st.builds(lambda a: f"(SELECT {a})", inner),
            st.builds(lambda a, b: f"CASE WHEN {a} THEN {b} END", inner, inner),
            st.builds(lambda a: f"EXISTS (SELECT {a} FROM t)", inner),
        )

    return st.recursive(st.one_of(literals, columns), extend, max_leaves=12)


def selects() -> st.SearchStrategy[str]:
    return st.builds(
        lambda items, tail, lock, cte, c: f"{cte}SELECT {c}{', '.join(items)} FROM t{tail}{lock}",
        st.lists(expressions(), min_size=1, max_size=3),
        st.sampled_from(
            ["", " WHERE id > 1", " ORDER BY 1", " GROUP BY 1", " LIMIT 1", " WINDOW w AS ()"]
        ).flatmap(
            lambda tail: (
                st.builds(lambda e: tail or f" WHERE {e}", expressions())
                if tail == ""
                else st.just(tail)
            )
        ),
        st.sampled_from(["", "", "", " FOR UPDATE", " FOR SHARE", " FOR KEY SHARE SKIP LOCKED"]),
        st.sampled_from(
            ["", "WITH x AS (SELECT 1) ", "WITH d AS (DELETE FROM t RETURNING *) "]
            + ["WITH RECURSIVE r(n) AS (VALUES (1) UNION SELECT n + 1 FROM r WHERE n < 3) "]
        ),
        comments,
    )


explain_options = st.lists(
    st.sampled_from(
        ["ANALYZE", "ANALYZE on", "ANALYZE off", "ANALYZE true", "ANALYZE false", "ANALYZE 0"]
        + ["ANALYZE 1", "ANALYZE 'on'", "ANALYSE", "VERBOSE", "COSTS off", "FORMAT JSON"]
    ),
    max_size=4,
)


def statements() -> st.SearchStrategy[str]:
    explainable = st.one_of(
        selects(),
        st.builds(lambda e: f"VALUES ({e})", expressions()),
        st.just("TABLE t"),
        st.builds(lambda e: f"UPDATE t SET note = {e}", expressions()),
        st.builds(lambda e: f"DELETE FROM t WHERE {e}", expressions()),
        st.builds(lambda e: f"INSERT INTO t SELECT {e}", expressions()),
        st.builds(lambda e: f"CREATE TABLE x AS SELECT {e}", expressions()),
    )
    others = st.one_of(
        st.sampled_from(
            ["SHOW statement_timeout", "SHOW ALL", "SET statement_timeout = 0", "RESET ALL"]
            + ["SET TRANSACTION READ WRITE", "BEGIN", "SET ROLE x", "DO $$ BEGIN END $$"]
            + ["CALL p()", "LISTEN c", "NOTIFY c", "COMMIT", "LOCK TABLE t", "COPY t TO STDOUT"]
            + ["VACUUM t", "ANALYZE t", "LOAD 'x'", "DECLARE c CURSOR FOR SELECT 1"]
            + ["FETCH ALL c", "PREPARE q AS SELECT 1", "EXECUTE q", "DISCARD PLANS"]
            + ["CHECKPOINT", "SET CONSTRAINTS ALL DEFERRED"]
        ),
        st.builds(lambda e: f"CREATE TABLE x (a int DEFAULT {e})", expressions()),
        st.builds(lambda e: f"DECLARE c CURSOR FOR SELECT {e}", expressions()),
    )
    explained = st.builds(
        lambda options, s: f"EXPLAIN ({', '.join(options)}) {s}" if options else f"EXPLAIN {s}",
        explain_options,
        explainable,
    )
    return st.one_of(explainable, explained, others)


scripts = st.lists(statements(), min_size=1, max_size=4).map(";\n".join)


# --- the properties ---------------------------------------------------------------------------


def answer_of(content: str, submission_type: str = "script") -> Analysis | AnalysisError:
    try:
        return analyse("postgresql", content, submission_type)
    except AnalysisError as exc:
        assert exc.message
        return exc


def functions_called(node: ast.Node) -> Iterator[tuple[str, ...]]:
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, ast.Node):
            if isinstance(item, ast.FuncCall):
                yield tuple(n.sval for n in item.funcname)
            stack.extend(getattr(item, slot, None) for slot in type(item).__slots__)


def nodes(node: ast.Node) -> Iterator[ast.Node]:
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, ast.Node):
            yield item
            stack.extend(getattr(item, slot, None) for slot in type(item).__slots__)


READ_STATEMENTS = (
    ast.SelectStmt,
    ast.ExplainStmt,
    ast.VariableShowStmt,
    ast.DeclareCursorStmt,
    ast.PrepareStmt,
    ast.FetchStmt,
    ast.ClosePortalStmt,
    ast.ListenStmt,
    ast.UnlistenStmt,
    ast.DeallocateStmt,
)


def explain_runs(node: ast.ExplainStmt) -> bool:
    """PostgreSQL's reading of EXPLAIN's options: the last ANALYZE wins."""
    runs = False
    for option in node.options or ():
        if option.defname != "analyze":
            continue
        arg = option.arg
        if isinstance(arg, ast.Boolean):
            runs = bool(arg.boolval)
        elif isinstance(arg, ast.Integer):
            runs = arg.ival != 0
        elif isinstance(arg, ast.String):
            runs = arg.sval.lower() not in ("false", "off")
        else:
            runs = True
    return runs


def assert_reads_are_reads(analysis: Analysis) -> None:
    for statement in analysis.statements:
        if statement.kind != READ:
            assert statement.reasons, statement
            continue
        [raw] = parser.parse_sql(statement.text)
        node = raw.stmt
        assert isinstance(node, READ_STATEMENTS), statement.text
        for names in functions_called(node):
            assert len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog"), names
            assert names[-1] in SIDE_EFFECT_FREE, names
        executed = node
        if isinstance(node, ast.ExplainStmt):
            executed = node.query if explain_runs(node) else None
        for inner in nodes(executed) if executed is not None else ():
            assert not isinstance(inner, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)), inner
            assert not isinstance(inner, (ast.MergeStmt, ast.VariableSetStmt)), inner
            if isinstance(inner, ast.SelectStmt):
                assert not inner.lockingClause and inner.intoClause is None, statement.text


@settings(FUZZ, max_examples=GRAMMAR_EXAMPLES)
@given(scripts)
def test_grammar_inputs_get_an_answer_and_reads_are_reads(content: str) -> None:
    answer = answer_of(content)
    if isinstance(answer, Analysis):
        assert_reads_are_reads(answer)


@settings(FUZZ, max_examples=RAW_EXAMPLES)
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(
            st.sampled_from(
                ["SELECT", "(", ")", "'", '"', "$$", "/*", "*/", "--", ";", "\n", "EXPLAIN"]
                + ["set_config", "FROM", "WITH", ",", "1", "::", "[", "]", "$1", "\\", "E'"]
            ),
            max_size=40,
        ).map(" ".join),
    ),
    st.sampled_from(["query", "script"]),
)
def test_raw_text_gets_an_answer(content: str, submission_type: str) -> None:
    answer = answer_of(content, submission_type)
    if isinstance(answer, Analysis):
        assert_reads_are_reads(answer)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[AnalysisSandbox]:
    with AnalysisSandbox() as pool:
        yield pool


@settings(FUZZ, max_examples=SANDBOX_EXAMPLES)
@given(
    st.one_of(
        scripts.map(lambda s: ("postgresql", s)),
        st.text(max_size=300).map(lambda s: ("mongodb", s)),
        st.lists(
            st.sampled_from(
                ["db.c.find(", "{", "}", "[", "]", "(", ")", "NumberInt(", "NumberDecimal('9')"]
                + ["$where", ":", ",", "'", '"', "9" * 50, "ISODate(", "/re/", ".limit(1)"]
            ),
            max_size=60,
        ).map(lambda parts: ("mongodb", "".join(parts))),
    )
)
def test_through_the_sandbox_every_input_gets_an_answer(
    sandbox: AnalysisSandbox, case: tuple[str, str]
) -> None:
    database_type, content = case
    try:
        analysis = sandbox.analyse(database_type, content, "script")
    except AnalysisError as exc:
        assert exc.message
        return
    if database_type == "postgresql":
        assert analysis == analyse(database_type, content, "script")
        assert_reads_are_reads(analysis)
