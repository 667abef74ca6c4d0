"""`make install`: the installed tree runs on its own, and its systemd unit is one systemd accepts.

Installs the debug build (INSTALL_FROM: the release build would take a quarter of an hour) under
a temporary PREFIX and SYSCONFDIR, then checks the installed configuration with the installed
binary (which loads every installed plugin from the installed plugins_dir), and verifies the
unit with `systemd-analyze verify`, which names unknown keys and missing executables.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import BUILD_DIR, ROOT, require_build


def test_make_install_gives_a_tree_that_runs_and_a_unit_systemd_accepts(tmp_path):
    require_build(BUILD_DIR / "atrium")
    prefix, sysconf = tmp_path / "usr", tmp_path / "etc" / "atrium"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATRIUM_", "MAKE"))}
    done = subprocess.run(["make", "-s", "install", f"PREFIX={prefix}", f"SYSCONFDIR={sysconf}", f"INSTALL_FROM={BUILD_DIR}"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    config_path = sysconf / "config.json"
    config = json.loads(config_path.read_text())
    assert config["plugins_dir"] == f"{prefix}/lib/atrium" and config["http"]["web_root"] == f"{prefix}/share/atrium/web"
    assert (prefix / "share" / "atrium" / "web" / "index.html").exists()
    assert oct(config_path.stat().st_mode & 0o777) == "0o640", "the config may hold secrets"

    # The installed binary, run from elsewhere, finds its plugins and web app through the config.
    check = subprocess.run([str(prefix / "bin" / "atrium"), "check-config", str(config_path)], cwd=tmp_path,
                           capture_output=True, text=True, env=env, timeout=60)
    enabled = sum(1 for p in config["plugins"] if p["enabled"])
    assert check.returncode == 0 and f"OK ({enabled} plugins enabled)" in check.stdout, check.stdout + check.stderr

    # A second install keeps the configuration an operator edited.
    config_path.write_text(config_path.read_text().replace('"Atrium"', '"Edited"'))
    again = subprocess.run(["make", "-s", "install", f"PREFIX={prefix}", f"SYSCONFDIR={sysconf}", f"INSTALL_FROM={BUILD_DIR}"],
                           cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "kept" in again.stdout and '"Edited"' in config_path.read_text()

    unit = prefix / "lib" / "systemd" / "system" / "atrium.service"
    text = unit.read_text()
    assert f"ExecStart={prefix}/bin/atrium --config {sysconf}/config.json" in text and "@" not in text.replace("$MAINPID", "")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (make test installs it)", pytrace=False)
    verify = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (verify.stdout + verify.stderr).splitlines() if "atrium.service" in line]
    assert verify.returncode == 0 and not complaints, verify.stdout + verify.stderr
