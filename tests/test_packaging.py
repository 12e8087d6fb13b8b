"""prompts/ and connectors/ ship inside the wheel and are found from an installed package."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_wheel_ships_prompts_and_connectors(tmp_path: Path) -> None:
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    wheel = next(dist.glob("ragpipe-*.whl"))

    # A venv that sees the already installed dependencies, with only the wheel added.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    probe = (
        "import json, ragpipe; from ragpipe.resources import data_dir; "
        "from ragpipe.prompts import PromptRegistry; from ragpipe.config import connector_names; "
        "print(json.dumps({'pkg': ragpipe.__file__, 'prompts': str(data_dir('prompts')), "
        "'connectors': str(data_dir('connectors')), 'names': PromptRegistry().names(), "
        "'profiles': connector_names()}))"
    )
    # Run outside the checkout so the source tree cannot be picked up by accident.
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    found = json.loads(out)
    site = str(env_dir)
    assert found["pkg"].startswith(site), found["pkg"]
    assert found["prompts"].startswith(site) and found["prompts"].endswith("_prompts")
    assert found["connectors"].startswith(site) and found["connectors"].endswith("_connectors")
    assert "local" in found["profiles"]
    shipped = sorted(p.stem for p in (ROOT / "prompts").glob("*.yaml"))
    assert found["names"] == shipped
