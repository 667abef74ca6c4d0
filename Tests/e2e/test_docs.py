"""Docs that cannot go stale: what the user docs say is checked against the code they describe.

No server is needed; these tests only read files.

- Every configuration key Sources/Host/HostConfig.swift accepts is in docs/configuration.md, in the
  table of its section, and every key in those tables is one the code accepts; the same for each
  plugin's config keys (Chat, SFU, TURN, Recorder) and the table in its docs/api page.
- Every code block in docs/ marked `<!-- docs:FILE -->` is exactly that example source (hello.c, and
  the Swift example's Entry.swift and MyPlugin.swift, which `swift build` compiles), and every block
  marked `<!-- docs:FILE:NAME -->` is exactly the lines between `/* docs:begin:NAME */` and
  `/* docs:end:NAME */` in it; every marked region is quoted somewhere.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT

HOST_CONFIG = ROOT / "Sources" / "Host" / "HostConfig.swift"
CONFIGURATION_MD = ROOT / "docs" / "configuration.md"
DOCS = ROOT / "docs"
QUOTED_SOURCES = {
    "hello.c": ROOT / "Plugins" / "Examples" / "hello-c" / "hello.c",
    "Entry.swift": ROOT / "Plugins" / "Examples" / "MyPlugin" / "Entry.swift",
    "MyPlugin.swift": ROOT / "Plugins" / "Examples" / "MyPlugin" / "MyPlugin.swift",
}

# --- Configuration keys ---------------------------------------------------------------------------

# Each section's accepted keys are the literal list passed to ConfigReader.object, written as
#     root.object(<json>, path: <path>, keys: ["a", "b", ...])
# The regex relies on that shape: `path:` then `keys: [` in one call, the list holding only string
# literals (no constants, no concatenation; it may span lines), and <path> being either a string
# literal or a name bound earlier in the file by `let <name> = "<literal>"` (the nearest one before
# the call). The section is the leading lower-case word of the path: "" is the top level,
# "plugins[\(i)]" is `plugins`. A list written any other way is not matched, and the count check in
# `accepted_keys` fails rather than letting it pass unchecked.
OBJECT_CALL = re.compile(
    r"\.object\(\s*\w+\s*,\s*path:\s*(?:\"(?P<literal>[^\"]*)\"|(?P<name>\w+))\s*,\s*keys:\s*\[(?P<keys>[^\]]*)\]",
    re.DOTALL,
)
LET_STRING = r"let\s+{name}\s*=\s*\"([^\"]*)\""
STRING_LITERAL = re.compile(r"\"([^\"]*)\"")


def accepted_keys() -> dict[str, set[str]]:
    """Section name ("" for the top level) -> the keys HostConfig.swift accepts there."""
    source = HOST_CONFIG.read_text()
    sections: dict[str, set[str]] = {}
    for call in OBJECT_CALL.finditer(source):
        path = call.group("literal")
        if path is None:
            bindings = re.findall(LET_STRING.format(name=re.escape(call.group("name"))), source[: call.start()])
            assert bindings, f"HostConfig.swift: cannot find what `path: {call.group('name')}` is bound to"
            path = bindings[-1]
        section = re.match(r"[a-z_]*", path).group(0)
        keys = set(STRING_LITERAL.findall(call.group("keys")))
        assert keys, f"HostConfig.swift: the key list of section {section!r} holds no string literal"
        sections.setdefault(section, set()).update(keys)
    lists = len(re.findall(r"keys:\s*\[", source))
    matched = len(OBJECT_CALL.findall(source))
    assert matched == lists, (
        f"HostConfig.swift has {lists} `keys: [...]` lists but only {matched} have the shape this test reads "
        "(root.object(json, path: ..., keys: [\"...\"])); update OBJECT_CALL in Tests/e2e/test_docs.py")
    return sections


def documented_keys() -> dict[str, set[str]]:
    """Section name -> the keys in the first column of its `| key | ... |` table(s) in configuration.md.

    A section is a `## ` heading: "Top level", or one name in backticks (`## \\`http\\``); `###`
    headings belong to the `##` above them. A key cell may name several keys (`a`, `b`)."""
    sections: dict[str, set[str]] = {}
    heading = None
    in_key_table = False
    for line in CONFIGURATION_MD.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            in_key_table = False
            continue
        if not line.startswith("|"):
            in_key_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "key":
            in_key_table = True
            continue
        if not in_key_table or set(cells[0]) <= set("-: "):
            continue
        if heading == "Top level":
            section = ""
        else:
            named = re.fullmatch(r"`([a-z_]+)`", heading or "")
            assert named, f"configuration.md: a key table under the heading {heading!r}, which names no section"
            section = named.group(1)
        keys = re.findall(r"`([^`]+)`", cells[0])
        assert keys, f"configuration.md: a row of section {heading!r} names no key in backticks: {line}"
        sections.setdefault(section, set()).update(keys)
    return sections


def section_title(section: str) -> str:
    return "Top level" if section == "" else f"`{section}`"


def test_every_accepted_configuration_key_is_documented_and_nothing_else():
    code = accepted_keys()
    docs = documented_keys()
    # The sections the code has today: a parse that silently found fewer would check nothing.
    assert {"", "http", "websocket", "sessions", "limits", "admin", "media", "watchdog", "plugins"} <= code.keys()
    problems = []
    for section in sorted(code.keys() | docs.keys()):
        missing = code.get(section, set()) - docs.get(section, set())
        extra = docs.get(section, set()) - code.get(section, set())
        if missing:
            problems.append(f"## {section_title(section)}: accepted by HostConfig.swift but not in the table: {', '.join(sorted(missing))}")
        if extra:
            problems.append(f"## {section_title(section)}: in the table but not accepted by HostConfig.swift: {', '.join(sorted(extra))}")
    assert not problems, "docs/configuration.md does not match Sources/Host/HostConfig.swift:\n" + "\n".join(problems)


# --- Plugin configuration keys -------------------------------------------------------------------

# Each plugin reads its `config` object against one literal set of keys, written as
#     static let keys: Set<String> = [...]      or      let allowed: Set<String> = [...]
# and its API document lists them in the `| key | ... |` table of its "## Configuration" section.
PLUGIN_CONFIGS = {
    "chat": (ROOT / "Plugins" / "Chat" / "ChatConfig.swift", ROOT / "docs" / "api" / "chat.md"),
    "sfu": (ROOT / "Plugins" / "SFU" / "Core" / "SFUConfig.swift", ROOT / "docs" / "api" / "sfu.md"),
    "turn": (ROOT / "Plugins" / "TURN" / "Core" / "TURNConfig.swift", ROOT / "docs" / "api" / "turn.md"),
    "recorder": (ROOT / "Plugins" / "Recorder" / "Core" / "RecorderConfig.swift", ROOT / "docs" / "api" / "recorder.md"),
}
KEY_SET = re.compile(r"(?:static let keys|let allowed): Set<String> = \[(?P<keys>[^\]]*)\]", re.DOTALL)


def plugin_code_keys(source: Path) -> set[str]:
    sets = KEY_SET.findall(source.read_text())
    assert len(sets) == 1, f"{source.relative_to(ROOT)}: expected one `Set<String> = [...]` of config keys, found {len(sets)}"
    keys = set(STRING_LITERAL.findall(sets[0]))
    assert keys, f"{source.relative_to(ROOT)}: the config key set holds no string literal"
    return keys


def plugin_documented_keys(doc: Path) -> set[str]:
    """The keys in the first column of the key table(s) under the doc's "## Configuration" heading."""
    keys: set[str] = set()
    in_section = in_table = False
    for line in doc.read_text().splitlines():
        if line.startswith("## "):
            in_section = line.startswith("## Configuration")
            in_table = False
            continue
        if not in_section:
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].lower() == "key":
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            named = re.findall(r"`([^`]+)`", cells[0])
            assert named, f"{doc.relative_to(ROOT)}: a configuration row names no key in backticks: {line}"
            keys.update(named)
    assert keys, f"{doc.relative_to(ROOT)}: no `| key |` table under a \"## Configuration\" heading"
    return keys


@pytest.mark.parametrize("plugin", sorted(PLUGIN_CONFIGS))
def test_every_plugin_configuration_key_is_documented_and_nothing_else(plugin):
    source, doc = PLUGIN_CONFIGS[plugin]
    code, docs = plugin_code_keys(source), plugin_documented_keys(doc)
    assert code == docs, (f"{doc.relative_to(ROOT)} does not match {source.relative_to(ROOT)}: "
                          f"accepted but not documented: {sorted(code - docs)}; "
                          f"documented but not accepted: {sorted(docs - code)}")


# --- Quoted source ----------------------------------------------------------------------------------

MARKER = re.compile(r"^<!-- docs:(?P<file>[\w.-]+)(?::(?P<region>[\w-]+))? -->\s*$")
REGION_BEGIN = re.compile(r"^\s*/\* docs:begin:(?P<name>[\w-]+) \*/\s*$")
REGION_END = re.compile(r"^\s*/\* docs:end:(?P<name>[\w-]+) \*/\s*$")


def regions(path: Path) -> dict[str, str]:
    """Region name -> the lines strictly between its begin and end comments (each ending in \\n)."""
    found: dict[str, str] = {}
    open_name, start = None, 0
    lines = path.read_text().splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if m := REGION_BEGIN.match(line):
            assert open_name is None, f"{path.name}:{number}: docs:begin:{m['name']} inside region {open_name}"
            assert m["name"] not in found, f"{path.name}:{number}: region {m['name']} marked twice"
            open_name, start = m["name"], number
        elif m := REGION_END.match(line):
            assert m["name"] == open_name, f"{path.name}:{number}: docs:end:{m['name']} does not close {open_name}"
            found[open_name] = "".join(lines[start:number - 1])
            open_name = None
    assert open_name is None, f"{path.name}: region {open_name} is never closed"
    return found


def quotes() -> list[tuple[str, int, str, str | None, str]]:
    """Every marked code block under docs/: (doc file, line of the marker, source, region or None, block text)."""
    out = []
    for doc in sorted(DOCS.rglob("*.md")):
        lines = doc.read_text().splitlines()
        for i, line in enumerate(lines):
            m = MARKER.match(line)
            if not m:
                continue
            where = f"{doc.relative_to(ROOT)}:{i + 1}"
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            assert j < len(lines) and lines[j].startswith("```"), f"{where}: the marker is not followed by a code block"
            end = j + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            assert end < len(lines), f"{where}: the code block is never closed"
            block = "".join(text + "\n" for text in lines[j + 1:end])
            out.append((str(doc.relative_to(ROOT)), i + 1, m["file"], m["region"], block))
    return out


def test_quoted_source_is_the_source():
    found = quotes()
    for source in QUOTED_SOURCES:
        assert any(file == source for _, _, file, _, _ in found), \
            f"docs/ no longer quotes {source} (<!-- docs:{source}[:NAME] --> before a code block)"
    marked = {name: regions(path) for name, path in QUOTED_SOURCES.items()}
    quoted: set[tuple[str, str]] = set()
    problems = []
    for doc, line, file, region, block in found:
        where = f"{doc}:{line}"
        if file not in QUOTED_SOURCES:
            problems.append(f"{where}: unknown source {file!r} (known: {', '.join(sorted(QUOTED_SOURCES))})")
            continue
        if region is None:
            expected = QUOTED_SOURCES[file].read_text()
            what = f"the whole of {file}"
        elif region in marked[file]:
            expected = marked[file][region]
            quoted.add((file, region))
            what = f"region {region} of {file}"
        else:
            problems.append(f"{where}: {file} has no region {region!r} (marked: {', '.join(sorted(marked[file]))})")
            continue
        if block != expected:
            problems.append(f"{where}: the code block is not {what}; first difference at block line "
                            f"{first_difference(block, expected)}")
    for file, names in marked.items():
        for name in sorted(names):
            if (file, name) not in quoted:
                problems.append(f"{file}: region {name} is quoted nowhere in docs/ (remove its markers or quote it)")
    assert not problems, "\n".join(problems)


def first_difference(a: str, b: str) -> int:
    left, right = a.splitlines(), b.splitlines()
    for n, (x, y) in enumerate(zip(left, right), start=1):
        if x != y:
            return n
    return min(len(left), len(right)) + 1
