"""The AWS calls a piece of code makes, read from its source (no execution), as IAM actions.

For each module a role runs (its entry files and the repository modules they import), the AST
is searched for boto3 clients and the operations called on them:

- a client is `<anything>client("service", ...)` (boto3.client, session.client, a shell's
  client("s3")), a name assigned from one, a name that is a service's own (`s3`, `sagemaker`,
  `cloudwatch`: the project's convention for clients passed as parameters), or an expression the
  module's entry in CLIENTS names (e.g. `self.client` in a class that wraps one client);
- an operation is an attribute of a client that botocore's service model knows (its snake_case
  method: `describe_endpoint` -> DescribeEndpoint), a paginator's or waiter's operation, or one
  of boto3's S3 transfer methods (upload_file -> PutObject);
- the IAM action is the service's IAM prefix (botocore's signing name, with the few that differ:
  `monitoring` is `cloudwatch`) and the operation name.

What runs is found by name: an entry file runs whole (`file::function`: only that function, one
CLI command of several), an imported module's top level runs, and a function or method runs
once running code names it (a method: its name as an attribute and its class named). An
over-approximation of what the source can do, never an under-approximation of what it says.

What the AST cannot see, the annotations say; a stale annotation (one no call uses) is an error,
and so is an operation-like call on something that is not known to be a client, so that a new
call cannot slip past the permission table.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Where an IAM service prefix differs from botocore's signing name.
IAM_PREFIX = {"monitoring": "cloudwatch"}
# Parameter and variable names that are a service's client by the project's convention.
CONVENTIONAL = ("s3", "sagemaker", "cloudwatch", "dynamodb", "sns", "sqs", "sts", "iam", "kms", "logs",
                "events", "ecr", "eks")
# boto3's S3 transfer manager: the operations it makes (multipart for large objects, aborted on
# failure).
S3_TRANSFERS = {
    "upload_file": ("PutObject", "AbortMultipartUpload"),
    "upload_fileobj": ("PutObject", "AbortMultipartUpload"),
    "download_file": ("GetObject",), "download_fileobj": ("GetObject",),
    "copy": ("GetObject", "PutObject"),
}
# Operations IAM authorizes under another action's name (the S3 and STS service authorization
# references); () for one that needs no permission.
IAM_ACTIONS: dict[str, tuple[str, ...]] = {
    "s3:ListObjectsV2": ("s3:ListBucket",), "s3:ListObjects": ("s3:ListBucket",),
    "s3:HeadBucket": ("s3:ListBucket",), "s3:HeadObject": ("s3:GetObject",),
    "s3:ListObjectVersions": ("s3:ListBucketVersions",),
    "s3:ListMultipartUploads": ("s3:ListBucketMultipartUploads",),
    "s3:CreateMultipartUpload": ("s3:PutObject",), "s3:UploadPart": ("s3:PutObject",),
    "s3:CompleteMultipartUpload": ("s3:PutObject",), "s3:DeleteObjects": ("s3:DeleteObject",),
    "s3:CopyObject": ("s3:GetObject", "s3:PutObject"), "s3:UploadPartCopy": ("s3:GetObject", "s3:PutObject"),
    "sts:GetCallerIdentity": (),
}
# Client attributes that are no AWS call.
NOT_CALLS = frozenset({"exceptions", "meta", "close", "can_paginate"})

# Expressions the AST cannot type, per module (repository-relative path): expression -> service.
CLIENTS: dict[str, dict[str, str]] = {
    "lambdas/shared/control/serving.py": {"self.client": "sagemaker"},
    "lambdas/shared/control/dynamo.py": {"self.client": "dynamodb"},
    "lambdas/shared/drift/job.py": {"self._client": "s3"},  # _ProgressS3 wraps the capture reads
    "mlops/traffic.py": {"runtime": "sagemaker-runtime"},
    "mlops/drift_check.py": {"clients['s3']": "s3"},
}


class ExtractionError(ValueError):
    """The source has a call the extractor cannot attribute (annotate it in CLIENTS)."""


@dataclass(frozen=True)
class Call:
    action: str  # IAM action, e.g. sagemaker:DescribeEndpoint
    module: str  # repository-relative path
    line: int


@dataclass
class Extraction:
    calls: list[Call] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    used_annotations: set[tuple[str, str]] = field(default_factory=set)

    @property
    def actions(self) -> set[str]:
        return {c.action for c in self.calls}


@cache
def _service(name: str) -> tuple[str, dict[str, str]]:
    """(IAM prefix, snake_case method -> operation) of a botocore service."""
    from botocore import xform_name

    model = _session().get_service_model(name)
    prefix = IAM_PREFIX.get(model.signing_name, model.signing_name)
    return prefix, {xform_name(op): op for op in model.operation_names}


@cache
def _session():
    import botocore.session

    return botocore.session.get_session()


@cache
def _services() -> frozenset[str]:
    return frozenset(_session().get_available_services())


def known_actions(pattern: str) -> set[str]:
    """The IAM actions of botocore's operations that `pattern` (`sagemaker:Describe*`) matches, for
    every service whose IAM prefix is the pattern's (sagemaker: sagemaker, sagemaker-runtime, ...)."""
    from stacks.policy import matches

    prefix = pattern.split(":", 1)[0].lower()
    found: set[str] = set()
    for name in _services():
        # A service's IAM prefix is its name's first part (sagemaker, sagemaker-runtime; cloudwatch,
        # which signs as monitoring).
        if name != prefix and not name.startswith(f"{prefix}-"):
            continue
        service_prefix, methods = _service(name)
        if service_prefix != prefix:
            continue
        found |= {a for op in methods.values() for a in IAM_ACTIONS.get(f"{prefix}:{op}", (f"{prefix}:{op}",))
                  if matches(pattern, a)}
    return found


def _waiter_operation(service: str, waiter: str) -> str:
    from botocore import xform_name

    model = _session().get_waiter_model(service)
    for name in model.waiter_names:
        if xform_name(name) == waiter:
            return model.get_waiter(name).operation
    raise ExtractionError(f"{service} has no waiter {waiter}")


def action_of(service: str, method: str) -> tuple[str, ...]:
    """IAM actions of calling `method` on a `service` client; () if it is no AWS call."""
    prefix, methods = _service(service)
    if method in methods:
        operations = (methods[method],)
    elif service == "s3" and method in S3_TRANSFERS:
        operations = S3_TRANSFERS[method]
    else:
        operations = ()
    if operations:
        named = [f"{prefix}:{op}" for op in operations]
        return tuple(dict.fromkeys(a for n in named for a in IAM_ACTIONS.get(n, (n,))))
    if method in NOT_CALLS:
        return ()
    raise ExtractionError(f"{method} is no operation of {service}")


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _text(node.value)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        base = _text(node.value)
        return f"{base}[{node.slice.value!r}]" if base else None
    return None


def _client_call(node: ast.AST) -> str | None:
    """The service of `...client("service")`, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    first = node.args[0]
    if callee.endswith("client") and isinstance(first, ast.Constant) and isinstance(first.value, str) \
            and first.value in _services():
        return first.value
    return None


class _Module:
    def __init__(self, path: str, tree: ast.Module, annotations: Mapping[str, str]):
        self.path, self.tree, self.annotations = path, tree, annotations
        self.imported = {(a.asname or a.name.split(".")[0]) for stmt in ast.walk(tree)
                         if isinstance(stmt, ast.Import | ast.ImportFrom) for a in stmt.names}
        # A conventional name that the module imports (`from ... import events`) is that module.
        self.bindings: dict[str, str] = {n: n for n in CONVENTIONAL if n not in self.imported}
        self.bindings.update(annotations)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and (service := _client_call(node.value)):
                for target in node.targets:
                    if (name := _text(target)) is not None:
                        self.bindings[name] = service

    def receiver(self, node: ast.AST) -> str | None:
        if (service := _client_call(node)) is not None:
            return service
        text = _text(node)
        return self.bindings.get(text) if text is not None else None

    def calls(self, out: Extraction, suspicious: frozenset[str], nodes: Iterable[ast.AST]) -> None:
        if not hasattr(self, "parents"):
            self.parents = {c: p for p in ast.walk(self.tree) for c in ast.iter_child_nodes(p)}
        parents = self.parents
        for node in nodes:
            if not isinstance(node, ast.Attribute):
                continue
            service = self.receiver(node.value)
            if service is None:
                if node.attr in suspicious and isinstance(parents.get(node), ast.Call) \
                        and parents[node].func is node and not self._module_name(node.value):
                    raise ExtractionError(
                        f"{self.path}:{node.lineno}: {ast.unparse(node)}() looks like an AWS call on "
                        "an object the extractor cannot type: name its service in "
                        "mlops/aws_calls.py CLIENTS")
                continue
            text = _text(node.value)
            if text in self.annotations:
                out.used_annotations.add((self.path, text))
            if node.attr in ("get_paginator", "get_waiter"):
                parent = parents.get(node)
                arg = parent.args[0] if isinstance(parent, ast.Call) and parent.args else None
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    raise ExtractionError(f"{self.path}:{node.lineno}: {node.attr} of a computed name")
                method = arg.value
                if node.attr == "get_waiter":
                    from botocore import xform_name

                    method = xform_name(_waiter_operation(service, method))
                actions = action_of(service, method)
            else:
                try:
                    actions = action_of(service, node.attr)
                except ExtractionError as exc:
                    raise ExtractionError(f"{self.path}:{node.lineno}: {exc}") from None
            out.calls += [Call(a, self.path, node.lineno) for a in actions]

    def _module_name(self, node: ast.AST) -> bool:
        """A call on an imported module (`latency_baseline.publish(...)`) is no client call."""
        return isinstance(node, ast.Name) and node.id in self.imported


def imports(path: Path, root: Path = ROOT) -> list[Path]:
    """Repository files `path` imports (modules and packages; inside functions too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(root).parent.parts
    found: list[Path] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = [*base, *(node.module.split(".") if node.module else [])]
            names = [".".join(module)] + [".".join([*module, a.name]) for a in node.names]
        for name in names:
            parts = name.split(".")
            # Step scripts run from their own folder and import their siblings by plain name.
            for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py"),
                              path.parent.joinpath(*parts).with_suffix(".py")):
                if candidate.is_file():
                    found.append(candidate)
    return found


def modules_of(entries: Iterable[str], within: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """The entry files and every repository module they import, transitively, under `within`."""
    todo = [root / e for e in entries]
    seen: dict[str, None] = {}
    while todo:
        path = todo.pop()
        rel = path.relative_to(root).as_posix()
        if rel in seen:
            continue
        seen[rel] = None
        todo += [p for p in imports(path, root) if p.relative_to(root).as_posix().startswith(within)]
    return sorted(seen)


def extract(entries: Iterable[str], within: tuple[str, ...], *, root: Path = ROOT,
            annotations: Mapping[str, Mapping[str, str]] = CLIENTS) -> Extraction:
    """Every AWS call the code a role runs can make, with where it is made.

    Reachability is by name: everything in the entry files runs; in an imported module, its top
    level runs, and a function or method runs when some running code names it (a call, an
    attribute, a reference), a class's dunder methods when the class is named. An
    over-approximation (two methods of one name are one), never an under-approximation of what
    the source says."""
    # `path::function`: of that file, only what the function reaches (one CLI command of several).
    split = [e.partition("::") for e in entries]
    whole = {path for path, _, function in split if not function}
    out = Extraction(modules=modules_of([path for path, _, _ in split], within, root))
    parsed = [(m, ast.parse((root / m).read_text(), m)) for m in out.modules]
    units = [u for m, tree in parsed for u in _units(m, tree, always=m in whole)]
    seeds = {(path, function) for path, _, function in split if function}
    # A seeded method's class is in use: its other methods are reached through `self`.
    names: set[str] = {u.owner for u in units if (u.module, u.name) in seeds and u.owner}
    attrs: set[str] = set()  # attribute names it uses
    changed = True
    while changed:
        changed = False
        for unit in units:
            if not unit.reachable and ((unit.module, unit.name) in seeds or unit.called_by(names, attrs)):
                unit.reachable = True
            if unit.reachable and not unit.counted:
                unit.counted, changed = True, True
                names |= unit.names
                attrs |= unit.attrs
    modules = {m: _Module(m, tree, annotations.get(m, {})) for m, tree in parsed}
    services = {s for mod in modules.values() for s in mod.bindings.values()}
    services |= {s for _, tree in parsed for node in ast.walk(tree) if (s := _client_call(node))}
    suspicious = frozenset(m for s in services for m in _service(s)[1]) - _GENERIC
    for unit in units:
        if unit.reachable:
            modules[unit.module].calls(out, suspicious, unit.nodes)
    return out


@dataclass(eq=False)
class _Unit:
    """A function's own body (nested functions are their own units), or a module's top level."""
    module: str
    name: str  # "" for the top level
    owner: str  # the enclosing class, if a method
    nodes: list[ast.AST]
    names: set[str]
    attrs: set[str]
    reachable: bool
    counted: bool = False

    def called_by(self, names: set[str], attrs: set[str]) -> bool:
        """A method runs when its class is named and its name used as an attribute (dunders: when
        its class is named); a function when its name is used (`f(...)`, `module.f`)."""
        if not self.owner:
            return self.name in names or self.name in attrs
        named = self.owner in names or self.owner in attrs
        return named and (self.name in attrs or (self.name.startswith("__") and self.name.endswith("__")))


def _units(module: str, tree: ast.Module, *, always: bool) -> list[_Unit]:
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    units: list[_Unit] = []

    def own_nodes(body: list[ast.stmt], owner: str) -> list[ast.AST]:
        """The nodes of `body` outside nested functions (those become units of their own)."""
        nodes: list[ast.AST] = []
        todo: list[tuple[ast.AST, str]] = [(b, owner) for b in body]
        while todo:
            node, cls = todo.pop()
            if isinstance(node, functions):
                inner = own_nodes(node.body, "")
                # Decorators and defaults run where the function is defined.
                nodes += [n for d in (*node.decorator_list, *node.args.defaults) for n in ast.walk(d)]
                units.append(_unit(node.name, cls, inner))
                continue
            nodes.append(node)
            child_owner = node.name if isinstance(node, ast.ClassDef) else cls
            todo += [(c, child_owner) for c in ast.iter_child_nodes(node)]
        return nodes

    def _unit(name: str, owner: str, nodes: list[ast.AST]) -> _Unit:
        return _Unit(module, name, owner, nodes, {n.id for n in nodes if isinstance(n, ast.Name)},
                     {n.attr for n in nodes if isinstance(n, ast.Attribute)}, reachable=always or not name)

    units.append(_unit("", "", own_nodes(tree.body, "")))
    return units


def stale_annotations(extractions: Iterable[Extraction],
                      annotations: Mapping[str, Mapping[str, str]] = CLIENTS) -> list[str]:
    """Annotated expressions no extracted call was made on."""
    used = set().union(*(e.used_annotations for e in extractions))
    return [f"{m}: {expr}" for m, exprs in annotations.items() for expr in exprs if (m, expr) not in used]


# Operation method names that are also everyday Python method names: no evidence of an AWS call.
_GENERIC = frozenset({"publish", "query", "scan", "list_tags", "get", "delete", "update"})
