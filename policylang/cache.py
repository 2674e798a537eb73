"""A private per-user cache for start-up work: the analysed grammar and compiled policies.

Most of a command's start-up is building the parser and compiling the policy, work
whose result depends only on inputs that rarely change. Both are kept in
``$XDG_CACHE_HOME/policylang`` (by default ``~/.cache/policylang``):

* lark's analysed grammar (see :func:`policylang.parser.parser_cache_path`);
* the module a policy compiles to, for a policy that compiled with no diagnostic at
  all, under a key made of the policy's bytes and a fingerprint of this policylang
  installation (its version, every source file's size and modification time) and of
  the Python running it. Any change to either gives another key, so a cached module
  is always what compiling the policy now would give; a policy with warnings or
  errors is compiled every time, so they are always shown.

The directory is created private (``0700``), and one that another user owns or that
others may write to is never used, since what is in it is executed or unpickled.
``POLICYLANG_NO_CACHE`` (set to anything) turns the cache off; deleting the
directory is always safe. Nothing here ever fails a command: a cache that cannot be
read or written is simply not used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
import tempfile
import types
from pathlib import Path

from policylang import runtime

__all__ = [
    "cache_directory",
    "load_cached_policy",
    "package_fingerprint",
    "store_policy_module",
]

_MODULE_NAME = "policylang.compiled"


def cache_directory() -> str | None:
    """The private cache directory, created if needed; ``None`` when there is none to use."""
    if os.environ.get("POLICYLANG_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "policylang")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.stat(directory)
    except OSError:
        return None
    getuid = getattr(os, "getuid", None)
    if getuid is not None and (info.st_uid != getuid() or info.st_mode & 0o022):
        return None
    if not os.access(directory, os.W_OK):
        return None
    return directory


@functools.cache
def package_fingerprint() -> str:
    """A digest of this installation: Python, the runtime ABI and every package file's
    name, size and modification time (a changed file changes it)."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version}\0{runtime.RUNTIME_ABI}\0".encode())
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*")):
        if path.suffix not in {".py", ".j2", ".lark"} or "__pycache__" in path.parts:
            continue
        info = path.stat()
        digest.update(f"{path.relative_to(root)}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _policy_module_path(source: bytes) -> str | None:
    directory = cache_directory()
    if directory is None:
        return None
    key = hashlib.sha256(package_fingerprint().encode() + b"\0" + source).hexdigest()[:32]
    return os.path.join(directory, f"policy-{key}.py")


def load_cached_policy(source: bytes) -> runtime.Policy | None:
    """The policy compiled from ``source`` by this installation, if the cache holds it."""
    path = _policy_module_path(source)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            code = handle.read()
        module = types.ModuleType(_MODULE_NAME)
        # Written by store_policy_module from a module that passed verification.
        exec(compile(code, f"<policylang module {_MODULE_NAME}>", "exec"), vars(module))
    except Exception:  # absent, unreadable or damaged: compile as usual
        return None
    policy = vars(module).get("POLICY")
    return policy if type(policy) is runtime.Policy else None


def store_policy_module(source: bytes, code: str) -> None:
    """Keep the verified module ``code`` compiled from ``source`` (atomically; best effort)."""
    path = _policy_module_path(source)
    if path is None:
        return
    try:
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(code)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
