"""Where a reproduction page's numbers came from: mode, command, results file, machine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUICK_NOTE = ("Quick mode: one seed or model, few epochs, sometimes a subset of the data, so the numbers show that the "
              "pipeline runs end to end; they are not a reproduction. Run without --quick for the full suite.")


@dataclass(frozen=True)
class Provenance:
    """How a reproduction page's numbers were obtained.

    Attributes:
        mode: ``quick``, ``full`` or ``from an existing results file``.
        command: the benchmark command that was run, or None when the page was built
            from a results file (the file's own ``command`` is used if it has one).
        results: the benchmark's JSON file.
        out: the report folder (paths inside it are shown relative to it).
    """

    mode: str
    command: str | None
    results: Path
    out: Path


def provenance_lines(provenance: Provenance, payload: dict[str, Any]) -> list[str]:
    """Paragraphs for a page's introduction: mode, command, results file and machine."""
    command = payload.get("command") or provenance.command
    if command is None and isinstance(payload.get("settings"), dict):
        command = "settings " + ", ".join(f"{k}={v}" for k, v in payload["settings"].items())
    lines = [(f"Mode: {provenance.mode}. Benchmark: `{command or 'not recorded'}`. "
             f"Results: `{shown_path(provenance.results, provenance.out)}`.")]
    env: dict[str, Any] = payload["environment"] if isinstance(payload.get("environment"), dict) else {}
    versions: dict[str, Any] = env["versions"] if isinstance(env.get("versions"), dict) else {}
    machine = [str(env["processor"]) if env.get("processor") else "",
               f"{env['torch_threads']} thread{'' if env.get('torch_threads') == 1 else 's'}"
               if env.get("torch_threads") else "",
               f"torch {versions['torch']}" if versions.get("torch") else "",
               f"git {str(env['git_revision'])[:12]}" if env.get("git_revision") else ""]
    if any(machine):
        lines.append("Machine: " + ", ".join(m for m in machine if m) + ".")
    if provenance.mode == "quick":
        lines.append(QUICK_NOTE)
    return lines


def shown_path(path: Path, out: Path) -> str:
    """``path`` relative to the report folder when it lies inside it, else as given."""
    try:
        return path.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return str(path)
