"""A static audit of the SQL the package builds: every value interpolated into an `execute(...)` string must be
an identifier/literal helper, our own constant, or an expression reviewed below. Data from Precoro or a
ledger file must be a bound parameter (`?`) or a registered Arrow table, never text in the statement.

The audit follows a statement back through simple local assignments (`sql = f"..."`, `where, params = ...`,
`keys = ", ".join(ident(k) for k in ...)`) in the same function; whatever it cannot prove safe must be listed in
REVIEWED with the reason it is safe, so a new interpolation fails the test until someone has looked at it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SQL_METHODS = {"execute", "executemany", "sql", "query", "create_or_replace_view"}
# Functions that run the statement given as their second argument (after the connection).
SQL_FUNCTIONS = {"one_row"}
# Helpers that turn our own names/text into quoted SQL (tables.ident/qualified/sql_text, store.quote_ident/...),
# or make a value harmless (int()).
HELPERS = {"ident", "qualified", "quote_ident", "sql_text", "quote_literal", "_table_ref", "_check_type", "int",
           "attach_sql"}

# (file relative to the package, expression as written) -> why it is safe.
REVIEWED: dict[tuple[str, str], str] = {
    ("cli.py", "query"): "the `sql` command runs the analyst's own query on a READ_ONLY attach",
    ("warehouse/store.py", "sql_type"): "types DuckDB's DESCRIBE reports for the staged table",
    ("warehouse/store.py", "call"): "maintenance CALLs built from CATALOG_ALIAS and int(days)",
    ("warehouse/store.py", "sql"): "Warehouse.query/create_or_replace_view: SQL text from our own modules",
    ("warehouse/store.py", "column"): "quote_ident(field.name) of the Arrow schema our own code built",
    ("warehouse/tables.py", "sql"): "one_row: runs the statement its caller gives (each call is audited itself)",
    ("warehouse/tables.py", "column.type"): "column types from the catalogue (catalogue.py)",
    ("warehouse/tables.py", "key_type"): "'VARCHAR' or 'BIGINT', chosen by the catalogue's key",
    ("warehouse/tables.py", "c.type"): "column types from the catalogue (catalogue.py)",
    ("warehouse/tables.py", "len(names) - 1"): "collections_not_stored: the index of a child table in our own list",
    ("warehouse/tables.py", "where or ' WHERE true'"): "_day_filter's constant text (its days are bound parameters)",
    ("warehouse/tables.py", "name"): "totals_not_matching_lines: the constant totals written in the function",
    ("warehouse/tables.py", "document"): "totals_not_matching_lines: the constant totals written in the function",
    ("warehouse/tables.py", "summed"): "totals_not_matching_lines: the constant totals written in the function",
    ("warehouse/tables.py", "carrying"): "json_array_length of the raw column at catalogue paths quoted by sql_text",
    ("warehouse/views.py", "column"): "one of four literal column names of column_descriptions",
    ("warehouse/views.py", "view.sql"): "the analyst views' SELECTs, written in views.py",
    ("warehouse/views.py", "sql"): "the analyst views' SELECTs, written in views.py",
    ("soak/inprocess.py", "sql"): "Soak.query: read-only pass-through for precoro_sim.ground_truth.differences",
    ("reconcile/tables.py", "sql"): "SQL text from reconcile/tables.py, values bound as parameters",
    ("runtime/shared_state.py", "sql"): "StateConnection.execute: the stores' own constant statements, values bound",
    ("runtime/shared_state.py", "self._sql(sql)"): "the same statements with their placeholders in psycopg's style",
    ("runtime/shared_state.py", "statement"): "one statement of a store's own constant schema (CREATE TABLE/INDEX)",
    ("warehouse/store.py", "statement"): "CREATE SECRET statements of warehouse/remote.py, every value quoted there",
}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    expression: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {{{self.expression}}} is interpolated into SQL"


def _is_constant_name(name: str) -> bool:
    bare = name.lstrip("_")
    return bool(bare) and bare.upper() == bare and any(c.isalpha() for c in bare)


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


class _Scope:
    """Assignments to plain names inside one function (or module) and the functions around it, for following a
    statement back. `name.append(x)` counts as an assignment of `x` (lists of SQL fragments)."""

    def __init__(self, node: ast.AST, outer: _Scope | None = None):
        self.assigned: dict[str, list[ast.AST | None]] = {}
        self.outer = outer
        for child in ast.walk(node):
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) \
                    and child.func.attr == "append" and isinstance(child.func.value, ast.Name) and child.args:
                self.assigned.setdefault(child.func.value.id, []).append(child.args[0])
            if isinstance(child, ast.Assign):
                for target in child.targets:
                    self._bind(target, child.value)
            elif isinstance(child, ast.AnnAssign | ast.AugAssign) and child.value is not None:
                self._bind(child.target, child.value)
            elif isinstance(child, ast.For | ast.comprehension):
                self._bind(child.target, None)  # loop variables: not followed

    def _bind(self, target: ast.AST, value: ast.AST | None) -> None:
        if isinstance(target, ast.Name):
            self.assigned.setdefault(target.id, []).append(value)
        elif isinstance(target, ast.Tuple | ast.List):
            for index, element in enumerate(target.elts):
                part = value.elts[index] if isinstance(value, ast.Tuple) and len(value.elts) == len(target.elts) \
                    else value  # `where, params = _day_filter(...)`: judge the whole call
                self._bind(element, part)

    def lookup(self, name: str) -> list[ast.AST | None] | None:
        if name in self.assigned:
            return self.assigned[name]
        return self.outer.lookup(name) if self.outer else None


def _unsafe(expr: ast.AST, scope: _Scope, depth: int = 0, following: frozenset[str] = frozenset()) -> list[ast.AST]:
    """The sub-expressions of `expr` that could carry outside data into the SQL text."""
    if depth > 12:
        return [expr]
    if isinstance(expr, ast.Constant):
        return []
    if isinstance(expr, ast.JoinedStr):
        return [bad for value in expr.values if isinstance(value, ast.FormattedValue)
                for bad in _unsafe(value.value, scope, depth + 1, following)]
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _unsafe(expr.left, scope, depth + 1, following) + _unsafe(expr.right, scope, depth + 1, following)
    if isinstance(expr, ast.IfExp):
        return _unsafe(expr.body, scope, depth + 1, following) + _unsafe(expr.orelse, scope, depth + 1, following)
    if isinstance(expr, ast.Call):
        name = _call_name(expr)
        if name in HELPERS:
            return []
        if name == "join" and isinstance(expr.func, ast.Attribute) and isinstance(expr.func.value, ast.Constant) \
                and len(expr.args) == 1:
            parts = expr.args[0]
            if isinstance(parts, ast.GeneratorExp | ast.ListComp):
                return _unsafe(parts.elt, scope, depth + 1, following)
            return _unsafe(parts, scope, depth + 1, following)
        if name == "replace" and isinstance(expr.func, ast.Attribute):  # "...{key}...".replace("{key}", ident(k))
            return _unsafe(expr.func.value, scope, depth + 1, following) + [
                bad for arg in expr.args for bad in _unsafe(arg, scope, depth + 1, following)]
        if name.startswith("_day_filter"):  # (" WHERE partition_day BETWEEN ? AND ?", params): constant text
            return []
        return [expr]
    if isinstance(expr, ast.Name):
        if _is_constant_name(expr.id):
            return []
        if expr.id in following:  # `where = where.replace(...)`: its other assignments are judged anyway
            return []
        values = scope.lookup(expr.id)
        if values and isinstance(values[0], ast.List):  # select = [] ... select.append(f"...")
            values = [element for value in values for element in
                      (value.elts if isinstance(value, ast.List) else [value])]
        if not values or any(v is None for v in values):
            return [expr]
        return [bad for value in values for bad in _unsafe(value, scope, depth + 1, following | {expr.id})]
    return [expr]


def audit_source(source: str, file: str) -> list[Finding]:
    """Interpolations into SQL statements in one module that are neither provably safe nor reviewed."""
    tree = ast.parse(source)
    findings: list[Finding] = []
    scopes: dict[int, _Scope] = {}
    order: list[tuple[ast.AST, _Scope]] = []

    def visit(node: ast.AST, outer: _Scope | None) -> None:
        scope = _Scope(node, outer)
        order.append((node, scope))
        for child in ast.walk(node):
            if child is not node and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) \
                    and id(child) not in scopes:
                scopes[id(child)] = scope
                visit(child, scope)

    visit(tree, None)
    seen: set[int] = set()
    for scope_node, scope in reversed(order):  # innermost functions first: a call is judged in its own function
        for node in ast.walk(scope_node):
            if not isinstance(node, ast.Call) or id(node) in seen:
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS and node.args:
                statement = node.args[0]
            elif _call_name(node) in SQL_FUNCTIONS and len(node.args) > 1:
                statement = node.args[1]
            else:
                continue
            seen.add(id(node))
            for bad in _unsafe(statement, scope):
                text = ast.unparse(bad)
                if (file, text) not in REVIEWED:
                    findings.append(Finding(file, node.lineno, text))
    return findings


def audit_package(root: Path) -> list[Finding]:
    findings = []
    for path in sorted(root.rglob("*.py")):
        findings += audit_source(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix())
    return findings
