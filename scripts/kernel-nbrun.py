"""Execute notebooks headlessly with a Jupyter kernel (nbclient) and optionally export them to HTML (nbconvert).

Driven by `attnlab run` and `attnlab report` (lib/cli/notebooks.ts), which own the command line users see:

    python3 scripts/kernel-nbrun.py --kernel attnlab [--timeout S] [--html-dir DIR] [--executed-dir DIR] [--hide-code]
        NB.ipynb...

Prints one JSON object per notebook on stdout, prefixed with "@@attnlab ", and exits 1 if any cell failed. While a
notebook runs it prints progress lines prefixed with "@@attnlab-progress ": {"cell": i, "cells": n} when cell i (1-based,
among all cells) starts, and {"cell": i, "cells": n, "text": "..."} at most once a second with the last line of the
cell's latest progress display (a training bar) or stream output. --hide-code leaves code cells' source out of the HTML.
The kernel inherits this process's environment (ATTNLAB_QUICK=1 selects the notebooks' quick mode).
"""
import argparse
import json
import os
import sys
import time

import nbformat
import nbformat.sign
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError


def first_line(source):
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:120]
    return ""


def failed_cell(nb):
    """The first code cell with an error output: (1-based index among all cells, the error output, the cell)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return i + 1, out, cell
    return None, None, None


def title_of(nb, fallback):
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def export_html(nb, path, hide_code=False):
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True) if hide_code else HTMLExporter()
    body, _ = exporter.from_notebook_node(nb)
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)


def progress(obj):
    print("@@attnlab-progress " + json.dumps(obj), flush=True)


def last_line(msg):
    """The last non-empty line of a stream or display message's text (progress bars redraw with \\r)."""
    content = msg.get("content", {})
    text = content.get("text") if msg.get("msg_type") == "stream" else content.get("data", {}).get("text/plain")
    if not isinstance(text, str):
        return None
    for line in reversed(text.replace("\r", "\n").splitlines()):
        if line.strip():
            return line.strip()[:200]
    return None


class ProgressClient(NotebookClient):
    """NotebookClient that reports each cell's start and, at most once a second, the cell's latest progress text."""

    def __init__(self, nb, **kw):
        super().__init__(nb, **kw)
        self._cells = len(nb.cells)
        self._last = 0.0
        self.on_cell_start = self._start

    def _start(self, cell, cell_index):
        progress({"cell": cell_index + 1, "cells": self._cells})

    def process_message(self, msg, cell, cell_index):
        if msg.get("msg_type") in ("stream", "display_data", "update_display_data") and time.time() - self._last >= 1:
            text = last_line(msg)
            if text:
                self._last = time.time()
                progress({"cell": cell_index + 1, "cells": self._cells, "text": text})
        return super().process_message(msg, cell, cell_index)


def run_one(path, args):
    nb = nbformat.read(path, as_version=4)
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0]
    client = ProgressClient(
        nb,
        kernel_name=args.kernel,
        timeout=args.timeout,
        startup_timeout=120,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
    )
    result = {"notebook": path, "title": title_of(nb, stem), "ok": True}
    started = time.time()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        result["ok"] = False
        index, out, cell = failed_cell(nb)
        if index is not None:
            result.update(
                cell=index,
                source=first_line(cell.source),
                ename=out.get("ename", ""),
                evalue=out.get("evalue", ""),
            )
        else:
            # A timeout or a dead kernel leaves no error output: name the first cell that did not finish.
            pending = next((i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count") is None), None)
            result.update(cell=pending, ename=type(e).__name__, evalue=str(e).strip().splitlines()[-1] if str(e).strip() else "")
    result["seconds"] = round(time.time() - started, 2)
    if args.executed_dir:
        os.makedirs(args.executed_dir, exist_ok=True)
        nbformat.sign.NotebookNotary().sign(nb)
        out_path = os.path.join(args.executed_dir, name)
        nbformat.write(nb, out_path)
        result["executed"] = out_path
    if args.html_dir:
        os.makedirs(args.html_dir, exist_ok=True)
        html_path = os.path.join(args.html_dir, stem + ".html")
        export_html(nb, html_path, args.hide_code)
        result["html"] = html_path
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--kernel", default="attnlab")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--html-dir")
    parser.add_argument("--executed-dir")
    parser.add_argument("--hide-code", action="store_true", help="leave code cells' source out of the HTML")
    args = parser.parse_args()
    ok = True
    for path in args.notebooks:
        result = run_one(path, args)
        ok = ok and result["ok"]
        print("@@attnlab " + json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
