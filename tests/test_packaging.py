"""Packaging: ``build.spec`` is consistent with the source tree, bundled files are found when frozen, the icons
are usable, and (slow) the PyInstaller build really runs its ``--self-check``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

import desktop
from bench._common import isolated_environment
from desktop import paths
from desktop.db.migrate import MIGRATIONS_DIR, head_revision
from desktop.services.notices.templates import default_templates
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]  # the fixture, used by the build test

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "build.spec"
ICONS = ROOT / "resources" / "icons"
LIGHT = (0xF5, 0xF5, 0xF5)
DARK = (0x2B, 0x2B, 0x2B)


# ------------------------------------------------------------------------------------------------ build.spec


def _spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def _spec_list(name: str) -> list[Any]:
    """The literal list assigned to ``name`` at the top of build.spec."""
    for node in _spec_tree().body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"build.spec assigns no literal list {name}")


def _spec_calls(name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(_spec_tree())
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


def _keyword(call: ast.Call, name: str) -> Any:
    for keyword in call.keywords:
        if keyword.arg == name:
            return ast.literal_eval(keyword.value) if isinstance(keyword.value, ast.Constant) else keyword.value
    raise AssertionError(f"{ast.unparse(call.func)}(...) has no {name}=")


def test_spec_is_python_and_reads_the_version_from_the_package() -> None:
    source = SPEC.read_text(encoding="utf-8")
    _spec_tree()
    assert "from desktop import __version__ as VERSION" in source
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", desktop.__version__)
    bundle = _spec_calls("BUNDLE")
    assert len(bundle) == 1
    assert ast.unparse(_keyword(bundle[0], "version")) == "VERSION"
    plist = ast.unparse(_keyword(bundle[0], "info_plist"))
    assert "'NSHighResolutionCapable': True" in plist
    assert "CFBundleShortVersionString" in plist


def test_spec_builds_two_programs_in_one_folder_without_upx() -> None:
    exes = {_keyword(call, "name"): call for call in _spec_calls("EXE")}
    assert set(exes) == {"callslip", "callslip-manager"}
    assert ast.unparse(_keyword(exes["callslip"], "console")) == "CONSOLE"  # windowed unless the debug toggle
    assert _keyword(exes["callslip-manager"], "console") is True
    for call in [*exes.values(), *_spec_calls("COLLECT")]:
        assert _keyword(call, "upx") is False
    for call in exes.values():
        assert _keyword(call, "exclude_binaries") is True  # one folder: libraries beside, not inside, the exe
    assert len(_spec_calls("COLLECT")) == 1
    assert "CALLSLIP_BUILD_CONSOLE" in SPEC.read_text(encoding="utf-8")


def test_spec_bundles_files_that_exist_at_the_paths_the_code_uses() -> None:
    source = SPEC.read_text(encoding="utf-8")
    assert '(str(ROOT / "resources"), "resources")' in source
    assert '(str(ROOT / "templates"), "templates")' in source
    # Frozen, desktop/db/migrate.py sits at _MEIPASS/desktop/db/, so the scripts must land under that folder.
    assert MIGRATIONS_DIR.relative_to(paths.app_root()) == Path("desktop", "db", "migrations")
    assert 'MIGRATIONS = Path("desktop") / "db" / "migrations"' in source
    for name in ("env.py", "script.py.mako"):
        assert (MIGRATIONS_DIR / name).is_file()
    versions = sorted((MIGRATIONS_DIR / "versions").glob("*.py"))
    assert versions and any(p.name.startswith(head_revision()) for p in versions)
    for icon in ("app.ico", "app.icns", "app.svg", "app.png"):
        assert (ICONS / icon).is_file(), icon


def test_spec_hidden_imports_exist() -> None:
    hidden = _spec_list("HIDDEN")
    for needed in (
        "keyring.backends.Windows",
        "keyring.backends.macOS",
        "keyring.backends.SecretService",
        "sqlalchemy.dialects.sqlite",
        "sqlalchemy.dialects.postgresql.psycopg",
        "alembic.op",
        "jinja2",
    ):
        assert needed in hidden
    missing = [name for name in hidden if importlib.util.find_spec(name) is None]
    assert not missing, f"build.spec names modules that do not exist: {missing}"


def _qt_modules_used() -> set[str]:
    used: set[str] = set()
    for path in (ROOT / "desktop").rglob("*.py"):
        used |= set(re.findall(r"PySide6\.(Qt\w+)", path.read_text(encoding="utf-8")))
    return used


def test_spec_excludes_no_qt_module_the_application_uses() -> None:
    excluded = {name.removeprefix("PySide6.") for name in _spec_list("EXCLUDES") if name.startswith("PySide6.")}
    assert {"QtQml", "QtQuick", "QtNetwork", "QtTest"} <= excluded  # the big ones Callslip does not need
    clash = excluded & _qt_modules_used()
    assert not clash, f"desktop/ imports {sorted(clash)}, which build.spec excludes: remove them from EXCLUDES"


# --------------------------------------------------------------------------------------------- desktop.paths


@pytest.fixture
def fake_meipass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Pretend to be a PyInstaller build whose data was unpacked to ``tmp_path/_internal``."""
    bundle = tmp_path / "_internal"
    for folder in ("resources", "templates"):
        shutil.copytree(ROOT / folder, bundle / folder)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    default_templates.cache_clear()
    yield bundle
    default_templates.cache_clear()


def test_paths_from_source() -> None:
    assert not hasattr(sys, "_MEIPASS")
    assert paths.app_root() == ROOT
    assert paths.resource_path("icons", "app.svg") == ICONS / "app.svg"
    assert paths.template_path("loan_pickup.toml").is_file()


def test_paths_when_frozen_point_into_the_bundle(fake_meipass: Path) -> None:
    assert paths.app_root() == fake_meipass
    assert paths.resource_path("icons", "app.svg") == fake_meipass / "resources" / "icons" / "app.svg"
    assert paths.resource_path("icons", "app.svg").is_file()
    assert paths.template_path() == fake_meipass / "templates"
    # The templates really come from the bundle: change one there and the loaded default changes.
    loan = fake_meipass / "templates" / "loan_pickup.toml"
    loan.write_text(loan.read_text(encoding="utf-8").replace("has arrived", "is waiting", 1), encoding="utf-8")
    assert "is waiting" in default_templates()["Loan Pickup"].subject


def test_icon_loader_reads_from_the_bundle(fake_meipass: Path, qtbot: QtBot) -> None:
    from desktop.ui.widgets import icons

    icons.icon.cache_clear()
    try:
        (fake_meipass / "resources" / "icons" / "bundle-only.svg").write_text(
            (ICONS / "add.svg").read_text(encoding="utf-8"), encoding="utf-8"
        )
        assert not icons.icon("bundle-only").isNull()
    finally:
        icons.icon.cache_clear()


# ----------------------------------------------------------------------------------------------------- icons


def _make_icons() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_icons", ROOT / "tools" / "make_icons.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


SVGS = sorted(p.name for p in ICONS.glob("*.svg"))


def test_the_action_icons_this_project_needs_exist() -> None:
    for name in ("app", "refresh", "open", "search", "contact-customers", "send", "print", "call", "settings",
                 "templates", "locations", "route", "next", "previous", "add", "remove"):  # fmt: skip
        assert f"{name}.svg" in SVGS, name


@pytest.mark.parametrize("name", SVGS)
def test_icon_renders_at_1x_and_2x_and_reads_on_light_and_dark(name: str, qtbot: QtBot) -> None:
    make_icons = _make_icons()
    for pixels in (16, 24, 32, 48):  # 1x and 2x of the small and toolbar sizes
        image = make_icons.render_svg(ICONS / name, pixels)
        assert image.width() == pixels
        opaque = [
            image.pixelColor(x, y) for x in range(pixels) for y in range(pixels) if image.pixelColor(x, y).alpha() > 128
        ]
        assert len(opaque) >= pixels, f"{name} is (nearly) empty at {pixels} px"
    if name == "app.svg":
        return  # the application icon carries its own tile
    # Enough of the icon's ink (here: 40 %, weighted by opacity) must stand out 2:1 from the window background of
    # a light and of a dark palette; a pale fill is fine as long as the outline carries the shape.
    weight = sum(c.alpha() for c in opaque)
    for background, palette in ((LIGHT, "light"), (DARK, "dark")):
        visible = sum(c.alpha() for c in opaque if _contrast((c.red(), c.green(), c.blue()), background) >= 2.0)
        assert visible / weight >= 0.4, f"{name} fades into a {palette} palette ({visible / weight:.0%} of it shows)"


def test_app_icon_files_hold_every_size() -> None:
    png = (ICONS / "app.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (512, 512)
    ico = (ICONS / "app.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1)
    sizes = {ico[6 + 16 * i] or 256 for i in range(count)}
    assert {16, 24, 32, 48, 256} <= sizes
    icns = (ICONS / "app.icns").read_bytes()
    assert icns[:4] == b"icns"
    assert struct.unpack(">I", icns[4:8])[0] == len(icns)
    types, offset = set(), 8
    while offset < len(icns):
        kind_bytes, length = icns[offset : offset + 4], struct.unpack(">I", icns[offset + 4 : offset + 8])[0]
        types.add(kind_bytes.decode("ascii"))
        offset += length
    assert {"ic07", "ic08", "ic09", "ic10"} <= types  # 128, 256, 512 and 512@2x for Retina


def test_make_icons_regenerates_the_app_icon_files(tmp_path: Path, qtbot: QtBot) -> None:
    pytest.importorskip("PIL", reason="Pillow is in the build extra")
    written = _make_icons().write_app_icons(ICONS / "app.svg", tmp_path)
    assert sorted(p.name for p in written) == ["app.icns", "app.ico", "app.png"]
    for path in written:
        assert path.stat().st_size > 1000
    preview = _make_icons().write_preview(tmp_path / "preview.png")
    assert preview.stat().st_size > 1000


# --------------------------------------------------------------------------------------------- the real build


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pyinstaller_build_passes_its_self_check(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """``pyinstaller build.spec``, then the built programs run headless against a new database: the manager
    seeds it, the client passes ``--self-check``, and the headless System Manager sends the due notices through a
    real SMTP server (so smtplib, the e-mail package and the dispatch code are all in the bundle).
    """
    if importlib.util.find_spec("PyInstaller") is None:
        if os.environ.get("CI"):
            pytest.fail("PyInstaller is not installed; .ci/run installs the build extra")
        pytest.skip("PyInstaller is not installed (pip install -e '.[build]')")
    dist, work = tmp_path / "dist", tmp_path / "work"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--distpath",
            str(dist),
            "--workpath",
            str(work),
            str(SPEC),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    folder = dist / "callslip"
    suffix = ".exe" if sys.platform == "win32" else ""
    gui, manager = folder / f"callslip{suffix}", folder / f"callslip-manager{suffix}"
    assert gui.is_file() and manager.is_file()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"bundle size: {size / 1e6:.0f} MB in {folder}")

    env = isolated_environment(tmp_path)  # offscreen, private config/data folders, no real keyring
    database = tmp_path / "frozen.sqlite3"
    created = subprocess.run(  # seed-demo, like every command but init-db, refuses a file that does not exist
        [str(manager), "--database", str(database), "init-db"], capture_output=True, text=True, timeout=120, env=env
    )
    assert created.returncode == 0, created.stderr
    init = subprocess.run(
        [str(manager), "--database", str(database), "seed-demo", "--patrons", "20", "--requests", "100"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert init.returncode == 0, init.stderr
    assert "seeded 20 patrons and 100 requests" in init.stdout

    check = subprocess.run(
        [str(gui), "--self-check", "--database", str(database)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    output = check.stdout + check.stderr
    assert check.returncode == 0, output
    assert "self-check passed" in output
    assert "built application" in output  # the frozen code path, not a Python from the build machine
    for name in ("installation", "libraries", "icons", "templates", "database", "main window"):
        assert f"  ok    {name}:" in output, output

    env.update(
        CALLSLIP_SMTP_HOST=smtp_sink.host,
        CALLSLIP_SMTP_PORT=str(smtp_sink.port),
        CALLSLIP_SMTP_SECURITY="none",
        CALLSLIP_SMTP_FROM="ill@library.example.org",
    )
    run = subprocess.run(
        [str(manager), "--database", str(database), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    sent = int(re.search(r"sent (\d+)", run.stdout).group(1))  # type: ignore[union-attr]
    assert sent > 0, run.stdout
    # One message may carry several of a patron's items (the digest, on by default): never more messages than
    # notices sent, and each message distinct.
    ids = {str(m.message["Message-ID"]) for m in smtp_sink.messages}
    assert 0 < len(smtp_sink.messages) == len(ids) <= sent, run.stdout
