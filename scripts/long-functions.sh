#!/usr/bin/env bash
# Functions in src/ longer than the project allows (80 lines), outside #[cfg(test)] code.
#
#   scripts/long-functions.sh [--max N] [--exclude DIR]...
#
# A function's length counts its lines from the `fn` line to its closing brace, both
# included. Items under #[cfg(test)] (a `mod tests { ... }`, or a `mod tests;` whose file
# is then skipped) are not counted. Each offender is printed as `path:line name length`,
# longest first; the exit status is 1 when there is any, 0 when there is none.
# --exclude DIR skips every file under DIR (a path from the checkout's root, e.g. src/sim).
set -euo pipefail
cd "$(dirname "$0")/.."

max=80
excludes=()
while [ $# -gt 0 ]; do
    case "$1" in
        --max) max="$2"; shift 2 ;;
        --exclude) excludes+=("${2%/}"); shift 2 ;;
        -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "long-functions: unknown argument $1" >&2; exit 64 ;;
    esac
done

exec python3 - "$max" "${excludes[@]}" <<'PY'
import os, re, sys

MAX = int(sys.argv[1])
EXCLUDES = [e.rstrip("/") for e in sys.argv[2:]]


def strip(text):
    """The source with comments, strings and char literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)

    def blank(s):
        return re.sub(r"[^\n]", " ", s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j])); i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j): depth += 1; j += 2
                elif text.startswith("*/", j): depth -= 1; j += 2
                else: j += 1
            out.append(blank(text[i:j])); i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(text[i:j])); i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(blank(text[i:j])); i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}'), or else a lifetime / label.
            m = re.compile(r"'(\\.[^']*|[^\\'\n])'").match(text, i)
            if m:
                out.append(blank(m.group(0))); i = m.end()
            else:
                out.append(c); i += 1
        else:
            out.append(c); i += 1
    return "".join(out)


def line_of(starts, pos):
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= pos: lo = mid
        else: hi = mid - 1
    return lo + 1


def matching(code, open_pos):
    """Position of the brace closing the one at open_pos."""
    depth = 0
    for j in range(open_pos, len(code)):
        if code[j] == "{": depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0: return j
    return len(code) - 1


def item_end(code, pos):
    """End of the item starting at pos: its `;`, or the brace closing its first `{`."""
    paren = 0
    for j in range(pos, len(code)):
        ch = code[j]
        if ch in "([": paren += 1
        elif ch in ")]": paren -= 1
        elif paren == 0 and ch == ";": return j, None
        elif paren == 0 and ch == "{": return matching(code, j), j
    return len(code) - 1, None


CFG_TEST = re.compile(r"#\[cfg\(test\)\]")
MOD_FILE = re.compile(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
FN = re.compile(r"\bfn\s+(r#)?([A-Za-z_]\w*)")


def scan(path, skipped_files):
    text = open(path, encoding="utf-8").read()
    code = strip(text)
    starts = [0] + [m.end() for m in re.finditer("\n", code)]
    # Spans under #[cfg(test)]: the item the attribute is on.
    hidden = []
    for m in CFG_TEST.finditer(code):
        end, _ = item_end(code, m.end())
        hidden.append((m.start(), end))
        mf = MOD_FILE.match(code, m.end())
        if mf:
            base = os.path.dirname(path)
            stem = os.path.basename(path)[:-3]
            if stem not in ("mod", "lib", "main"):
                base = os.path.join(base, stem)
            for cand in (os.path.join(base, mf.group(1) + ".rs"), os.path.join(base, mf.group(1), "mod.rs")):
                skipped_files.add(os.path.normpath(cand))
    found = []
    for m in FN.finditer(code):
        if any(a <= m.start() <= b for a, b in hidden):
            continue
        end, body = item_end(code, m.end())
        if body is None:
            continue  # a declaration without a body
        first, last = line_of(starts, m.start()), line_of(starts, end)
        length = last - first + 1
        if length > MAX:
            found.append((length, path, first, m.group(2)))
    return found


files = []
for root, dirs, names in os.walk("src"):
    dirs.sort()
    for name in sorted(names):
        if name.endswith(".rs"):
            p = os.path.normpath(os.path.join(root, name))
            if not any(p == e or p.startswith(e + "/") for e in EXCLUDES):
                files.append(p)

skipped, found = set(), []
for p in files:
    found.extend(scan(p, skipped))
found = [f for f in found if f[1] not in skipped]
found.sort(key=lambda f: (-f[0], f[1], f[2]))
for length, path, line, name in found:
    print(f"{path}:{line} {name} {length}")
sys.exit(1 if found else 0)
PY
