#!/usr/bin/env bash
# Build a report, check its HTML, and screenshot it in headless Chromium.
#
# Usage: scripts/check_report.sh [RUN_DIR ...]
#   With no RUN_DIR, a two-epoch synaptic run on the built-in digits is made first (seconds).
#   OUT=folder sets where the report and screenshot go (default: a new temporary folder).
# Fails when the page links a missing or external file, loads anything from the network,
# or renders as a (nearly) blank image. Without Chromium the HTML check still runs and the
# screenshot is skipped with a message. Open the printed screenshot to look at the page.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
python="${PYTHON:-python}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

runs=("$@")
if [ ${#runs[@]} -eq 0 ]; then
    "$python" -m neuroprune synaptic --dataset digits --epochs 2 --compare-dense \
        --out "$out/run_digits" > /dev/null
    runs=("$out/run_digits")
fi

"$python" -c 'from neuroprune.cli.report import report_command; report_command()' \
    "${runs[@]}" --out "$out/report"

"$python" - "$out/report/index.html" <<'PY'
import sys
from neuroprune.report.check import page_problems

problems = page_problems(sys.argv[1])
for problem in problems:
    print(f"FAIL: {problem}")
if problems:
    sys.exit(1)
print(f"ok: {sys.argv[1]} links only files of its own folder")
PY

browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
    echo "SKIPPED screenshot: no chromium on PATH (Debian: apt-get install chromium)"
    exit 0
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
shot="$out/screenshot.png"
# --no-sandbox: Chromium refuses to run as root otherwise (containers, CI)
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size=1280,2600 \
    --screenshot="$shot" "file://$out/report/index.html" > "$out/chromium.log" 2>&1 || true
if [ ! -s "$shot" ]; then
    echo "FAIL: chromium wrote no screenshot (log: $out/chromium.log)"
    exit 1
fi
# a blank or unstyled page compresses to a few kilobytes; ours, with figures, to hundreds
size=$(stat -c %s "$shot")
if [ "$size" -lt 40000 ]; then
    echo "FAIL: screenshot $shot is only $size bytes: the page looks blank"
    exit 1
fi
echo "ok: screenshot $shot ($size bytes)"
