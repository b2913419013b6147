"""Generate client/meter/_sync.py from client/meter/_async.py: one client, written once.

    python tools/async_to_sync.py          # write _sync.py (`make sync`)
    python tools/async_to_sync.py --check  # fail when _sync.py is not what _async.py gives (`make sync-check`)

The async file is the source. What differs between the two is written in it as

    if True:  # ASYNC
        <asyncio code>
    else:
        <blocking code>

(at any level: module, class or function body); the sync file keeps only the `else` body, one level
less indented, and drops a full-line comment starting with `# ASYNC:`. Everything else is translated
word by word: `async def/with/for` lose `async`, `await` goes, and the names in RENAMES are replaced,
in code, comments and docstrings alike (so docstrings should read well both ways). The module docstring
is kept as written. ruff then sorts the imports and formats the result, so the output is stable.

The model is psycopg's tools/async_to_sync.py, which does this on the AST; on a file this small, lines
and regular expressions are enough, and the output stays reviewable as a diff of the source.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "client/meter/_async.py"
TARGET = ROOT / "client/meter/_sync.py"

HEADER = "# Generated from _async.py by tools/async_to_sync.py: edit that file, then run `make sync`.\n"

# Longest first where one name contains another.
RENAMES = {
    "AsyncMeterClient": "MeterClient",
    "AsyncAlertStream": "AlertStream",
    "AsyncGuard": "Guard",
    "AsyncIterator": "Iterator",
    "StopAsyncIteration": "StopIteration",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "asyncio.sleep": "time.sleep",
    "grpc.aio.": "grpc.",
}

_IF_ASYNC = re.compile(r"^(?P<indent> *)if True:  # ASYNC\s*$")
_WORDS = [(re.compile(rf"(?<![\w.]){re.escape(old)}" + (r"\b" if old[-1].isalnum() or old[-1] == "_" else "")), new)
          for old, new in RENAMES.items()]  # fmt: skip
_ASYNC_KEYWORD = re.compile(r"\basync (def|with|for)\b")
_AWAIT = re.compile(r"\bawait ")


class SourceError(Exception):
    pass


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], start: int, indent: int) -> int:
    """The index after the block whose body starts at `start` and is indented deeper than `indent`."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    while end > start and not lines[end - 1].strip():  # trailing blank lines belong to what follows
        end -= 1
    return end


def keep_sync_branches(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _IF_ASYNC.match(line)
        if match is None:
            if not line.lstrip().startswith("# ASYNC:"):
                out.append(line)
            i += 1
            continue
        indent = len(match["indent"])
        body_end = _block(lines, i + 1, indent)
        if body_end >= len(lines) or lines[body_end] != " " * indent + "else:\n":
            raise SourceError(f"line {i + 1}: `if True:  # ASYNC` needs an `else:` with the blocking code")
        else_end = _block(lines, body_end + 1, indent)
        # The else body, one level less indented, through this same pass (blocks may nest).
        body = [ln[4:] if ln.strip() else ln for ln in lines[body_end + 1 : else_end]]
        out.extend(keep_sync_branches(body))
        i = else_end
    return out


def _module_docstring_end(text: str) -> int:
    match = re.match(r'\s*"""(?:.|\n)*?"""\n', text)
    return match.end() if match else 0


def translate(text: str) -> str:
    """The sync source for an async one, before formatting."""
    split = _module_docstring_end(text)
    docstring, code = text[:split], text[split:]
    code = "".join(keep_sync_branches(code.splitlines(keepends=True)))
    code = _ASYNC_KEYWORD.sub(r"\1", code)
    code = _AWAIT.sub("", code)
    for pattern, new in _WORDS:
        code = pattern.sub(new, code)
    return HEADER + docstring + code


def _ruff(args: list[str], text: str) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run(
        [str(ruff), *args, "--stdin-filename", str(TARGET), "-"],
        input=text, capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SourceError(f"ruff {' '.join(args)} failed on the generated code:\n{done.stderr}{done.stdout}")
    return done.stdout


def generate(text: str) -> str:
    code = translate(text)
    code = _ruff(["check", "--quiet", "--fix", "--select", "I,F401"], code)
    return _ruff(["format", "--quiet"], code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed _sync.py is stale")
    args = parser.parse_args(argv)
    try:
        wanted = generate(SOURCE.read_text())
    except SourceError as exc:
        print(f"async_to_sync: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if TARGET.read_text() != wanted:
            print(f"{TARGET.relative_to(ROOT)} is stale: run make sync and commit", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
