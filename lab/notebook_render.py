"""Rendering an executed notebook as one self-contained HTML report: outputs only, no
prompts, images inline, stderr and stray figure reprs left out, headed by the run's
parameters, seed and code version (papermill executes, nbconvert renders).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lab.run_index import TEMPLATES, duration, when

if TYPE_CHECKING:
    from lab.notebook_run import RunRecord


def _report_preprocessor():
    from nbconvert.preprocessors import Preprocessor

    class DropNoise(Preprocessor):
        """Leave out what a reader should not see: stderr (warnings included), stray
        ``<matplotlib...>`` reprs and code cells left with no output."""

        def preprocess(self, nb, resources):
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = [o for o in cell.get("outputs", []) if _shown(o)]
            nb.cells = [c for c in nb.cells if c.cell_type != "code" or c.outputs]
            return nb, resources

    return DropNoise()


_STRAY_REPR = re.compile(r"^\[?<(matplotlib|Figure)\b")


def _shown(output) -> bool:
    if output.get("output_type") == "stream":
        return output.get("name") != "stderr"
    if output.get("output_type") == "execute_result":
        data = output.get("data", {})
        return not (set(data) == {"text/plain"} and _STRAY_REPR.match(data["text/plain"]))
    return True


def render_html(nb, record: RunRecord, parameters: list[dict] | None = None) -> str:
    """One self-contained HTML page of an executed notebook: outputs only, no prompts,
    images inline, stderr left out, headed by the run's parameters, seed and code version.

    Cells tagged ``remove-cell`` are dropped and ``remove-output`` cells lose their outputs.
    """
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(
        template_name="report", extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        embed_images=True)
    exporter.register_preprocessor(TagRemovePreprocessor(
        remove_cell_tags={"remove-cell", "remove_cell"},
        remove_all_outputs_tags={"remove-output", "remove_output"}), enabled=True)
    exporter.register_preprocessor(_report_preprocessor(), enabled=True)
    header = {"title": f"{record.notebook} · {record.hint}", "notebook": record.notebook,
              "hint": record.hint, "run_id": record.run_id, "started": when(record.started),
              "duration": duration(record.duration_s), "code_version": record.code_version,
              "seed": record.seed, "parameters": parameters or []}
    body, _ = exporter.from_notebook_node(nb, resources={"lab_run": header})
    return body
