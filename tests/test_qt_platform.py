"""Starting on a plain Linux desktop: ``--self-check`` and start-up name the platform plugin's missing libraries
(with their Debian/Ubuntu packages) and a missing display, instead of Qt aborting the process (exit 134).

Real, not mocked: a platform plugin file built here with the system's C compiler, linked against a library that
is then deleted, found by Qt's own search path (``QT_PLUGIN_PATH``); the app runs as a subprocess as a person
would start it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.ui.qt_platform import chosen_platform, missing_libraries

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd and xcb are Linux's")


def build_plugin(folder: Path, *, lacking: str | None) -> Path:
    """``folder/platforms/libqxcb.so``; when ``lacking`` is a soname, linked against it, which is then deleted."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("a C compiler is needed to build the stand-in plugin")
    source = folder / "stub.c"
    source.write_text("int callslip_stub(void) { return 1; }\n")
    plugin = folder / "plugins" / "platforms" / "libqxcb.so"
    plugin.parent.mkdir(parents=True)
    command = [cc, "-shared", "-fPIC", "-o", str(plugin), str(source)]
    if lacking is not None:
        dependency = folder / "deps" / lacking
        dependency.parent.mkdir()
        subprocess.run([cc, "-shared", "-fPIC", f"-Wl,-soname,{lacking}", "-o", str(dependency), str(source)],
                       check=True)  # fmt: skip
        command += ["-Wl,--no-as-needed", str(dependency)]
        subprocess.run(command, check=True)
        dependency.unlink()  # the library is not installed on this "workstation"
    else:
        subprocess.run(command, check=True)
    return plugin


def run_app(*args: str, env: dict[str, str], database: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop", "--database", str(database), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def desktop_env(plugins: Path, **changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"}}
    env.update(QT_PLUGIN_PATH=str(plugins), QT_QPA_PLATFORM="xcb", **changes)
    return env


def test_self_check_and_start_up_name_the_missing_library_and_its_package(tmp_path: Path) -> None:
    plugin = build_plugin(tmp_path, lacking="libxcb-keysyms.so.1")
    assert missing_libraries(plugin) == ("libxcb-keysyms.so.1",)
    env = desktop_env(plugin.parent.parent, DISPLAY=":0")

    check = run_app("--self-check", env=env, database=tmp_path / "a.sqlite3")
    assert check.returncode == 1, check.stdout + check.stderr
    assert (
        "FAIL  platform: Qt's xcb platform plugin cannot be loaded: the system lacks libxcb-keysyms.so.1. "
        "Install them (Debian/Ubuntu): sudo apt install libxcb-keysyms1" in check.stdout
    )
    assert "ok    main window:" in check.stdout  # the rest of the installation is checked all the same

    start = run_app(env=env, database=tmp_path / "b.sqlite3")
    assert start.returncode == 1  # a clear refusal, not Qt's abort (134)
    assert "Callslip cannot open its window: Qt's xcb platform plugin cannot be loaded" in start.stderr
    assert "sudo apt install libxcb-keysyms1" in start.stderr


def test_no_display_is_named(tmp_path: Path) -> None:
    plugin = build_plugin(tmp_path, lacking=None)
    env = desktop_env(plugin.parent.parent)  # no DISPLAY
    check = run_app("--self-check", env=env, database=tmp_path / "a.sqlite3")
    assert check.returncode == 1
    assert "FAIL  platform: There is no display to open windows on (DISPLAY not set)" in check.stdout
    start = run_app(env=env, database=tmp_path / "b.sqlite3")
    assert start.returncode == 1 and "There is no display to open windows on" in start.stderr


def test_offscreen_passes_the_platform_check(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "QT_PLUGIN_PATH"} | {"QT_QPA_PLATFORM": "offscreen"}
    check = run_app("--self-check", env=env, database=tmp_path / "a.sqlite3")
    assert check.returncode == 0, check.stdout
    assert "ok    platform: offscreen (libqoffscreen.so): no display needed" in check.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"QT_QPA_PLATFORM": "xcb;wayland"}, "xcb"),
        ({"QT_QPA_PLATFORM": "offscreen:fontengine=freetype"}, "offscreen"),
        ({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, "wayland"),
        ({"XDG_SESSION_TYPE": "x11", "DISPLAY": ":0"}, "xcb"),
        ({}, "xcb"),
    ],
)
def test_the_platform_is_chosen_as_qt_chooses_it(env: dict[str, str], expected: str) -> None:
    assert chosen_platform(env) == expected
