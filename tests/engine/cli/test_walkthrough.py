"""The README's walkthroughs run exactly as written, so they cannot rot: each ```sh block after a
``<!-- walkthrough: NAME -->`` marker is run by bash, in a fresh folder, with the installed
`slmgate` on PATH. The imported-eval walkthrough (demo, lm-eval results imported through
imports.yaml, signed, promoted) must end in APPROVE; the review walkthrough takes the demo's
serving change from REVIEW to APPROVE with `slmgate approve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def walkthrough(name: str) -> str:
    """The shell block that follows ``<!-- walkthrough: name -->`` in the README."""
    found = re.search(rf"<!-- walkthrough: {re.escape(name)} -->\s*```sh\n(.*?)```",
                      README.read_text(), re.S)
    assert found, f"README has no walkthrough {name!r}"
    return found.group(1)


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_the_readme_walkthroughs_run_as_written(tmp_path: Path) -> None:
    imported = bash(walkthrough("imported-eval"), tmp_path)
    assert imported.returncode == 0, imported.stdout[-3000:] + imported.stderr[-3000:]
    last = imported.stdout[imported.stdout.rindex("lm-eval/candidate.json:"):]
    assert "[support_triage_regression,accuracy]" in last  # the key imports.yaml maps it by
    assert "APPROVE: support-triage 1.1.0" in last
    statement = tmp_path / "out/demo/promotions/my-lm-eval-retrain/evidence/eval-result.dsse.json"
    assert statement.is_file()

    # What the README says next: a value below the gate, re-imported, is denied by that gate.
    demo = tmp_path / "out" / "demo"
    results = json.loads((demo / "lm-eval" / "candidate.json").read_text())
    results["results"]["support_triage_regression"]["accuracy,none"] = 0.5
    (demo / "lm-eval" / "candidate.json").write_text(json.dumps(results))
    last_two = walkthrough("imported-eval").split("slmgate evidence import", 1)[1]
    setup = walkthrough("imported-eval").split("cp -r", 1)[0].split("\n", 1)[1]  # no demo re-run
    denied = bash(setup + "slmgate evidence import" + last_two, tmp_path)
    assert denied.returncode == 1, denied.stdout[-2000:] + denied.stderr[-2000:]
    assert "gate.regression.accuracy.min" in denied.stdout

    review = bash(walkthrough("review"), tmp_path)
    assert review.returncode == 0, review.stdout[-3000:] + review.stderr[-3000:]
    assert "REVIEW" in review.stdout and review.stdout.rstrip().count("APPROVE") >= 1
    assert (tmp_path / "approvals" / "release-manager.json").is_file()
