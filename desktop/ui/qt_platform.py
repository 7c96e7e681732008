"""Can Qt open a window here? The platform plugin Callslip will really use, and the system libraries it lacks.

On a plain Linux desktop Qt's ``xcb`` plugin needs X11/xcb libraries that a minimal install may not have (Debian
and Ubuntu do not install ``libxcb-icccm4`` or ``libxcb-keysyms1`` with the desktop). Without them Qt prints a
line about ``libxcb-cursor0`` and aborts the process (exit 134) while the QApplication is built — too late for
a message. So start-up and ``--self-check`` ask first: which plugin will Qt load, is there a display, and which
libraries does ``ldd`` fail to find for the plugin file — named with the Debian/Ubuntu packages that provide them.
Nothing here creates a QApplication.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QLibraryInfo

#: Shared-library names → the Debian/Ubuntu package that provides them (what ``apt install`` needs).
DEBIAN_PACKAGES = {
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
}

#: Platforms that draw on a display server, and the variable that says where it is.
_DISPLAY_VARIABLES = {"xcb": ("DISPLAY",), "wayland": ("WAYLAND_DISPLAY",)}


@dataclass(frozen=True)
class PlatformReport:
    """What Qt will use and what stops it.

    Attributes:
        platform: the platform plugin's name (``xcb``, ``wayland``, ``offscreen``, ``windows``, ``cocoa``…).
        plugin: the plugin file that will be loaded (``None``: not found, or not a separate file here).
        missing: shared libraries the plugin needs that the system does not have.
        problem: one sentence saying why no window can be opened (``""``: none found).
    """

    platform: str
    plugin: Path | None
    missing: tuple[str, ...]
    problem: str

    @property
    def packages(self) -> tuple[str, ...]:
        """The Debian/Ubuntu packages that provide the missing libraries (a library's own name if unknown)."""
        return tuple(dict.fromkeys(DEBIAN_PACKAGES.get(lib, lib) for lib in self.missing))


def chosen_platform(env: Mapping[str, str] | None = None) -> str:
    """The platform plugin Qt will load, as Qt chooses it: ``QT_QPA_PLATFORM`` (its first entry), else the
    system's default (Wayland in a Wayland session, else xcb on Linux)."""
    env = os.environ if env is None else env
    wanted = env.get("QT_QPA_PLATFORM", "").strip()
    if wanted:
        return wanted.split(";")[0].split(":")[0].strip()
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "cocoa"
    if env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "xcb"


def plugin_file(platform: str, env: Mapping[str, str] | None = None) -> Path | None:
    """The platform plugin's file, searched where Qt searches: ``QT_PLUGIN_PATH`` first, then Qt's own folder."""
    env = os.environ if env is None else env
    folders = [Path(p) for p in env.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    folders.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)))
    for folder in folders:
        for candidate in sorted((folder / "platforms").glob(f"*q{platform}.*")):
            if candidate.suffix in {".so", ".dylib", ".dll"}:
                return candidate
    return None


def missing_libraries(path: Path, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Shared libraries ``path`` needs (directly or through its Qt libraries) that the loader cannot find.

    Uses ``ldd`` (Linux); elsewhere, or without ``ldd``, nothing can be said and nothing is reported.
    """
    ldd = shutil.which("ldd")
    if ldd is None or not sys.platform.startswith("linux"):
        return ()
    import subprocess  # only when a platform plug-in fails to load: not on every start

    result = subprocess.run(
        [ldd, str(path)], capture_output=True, text=True, timeout=30, env=dict(env or os.environ), check=False
    )
    missing = [line.split("=>")[0].strip() for line in result.stdout.splitlines() if "not found" in line]
    return tuple(dict.fromkeys(missing))


def check_platform(env: Mapping[str, str] | None = None) -> PlatformReport:
    """Which plugin Qt will use here and whether it can open a window: a display, and every library it needs."""
    env = os.environ if env is None else env
    platform = chosen_platform(env)
    plugin = plugin_file(platform, env)
    if plugin is None:
        # Windows' and macOS' plugins need no extra system libraries; a frozen build may keep its plugins where
        # only Qt's own loader looks: nothing more can be said without loading it.
        if platform in {"windows", "cocoa"} or getattr(sys, "frozen", False):
            return PlatformReport(platform, None, (), "")
        return PlatformReport(
            platform, None, (), f"Qt has no platform plugin named {platform!r} (QT_QPA_PLATFORM={platform!r})."
        )
    missing = missing_libraries(plugin, env)
    if missing:
        packages = tuple(dict.fromkeys(DEBIAN_PACKAGES.get(lib, lib) for lib in missing))
        problem = (
            f"Qt's {platform} platform plugin cannot be loaded: the system lacks {', '.join(missing)}. "
            f"Install them (Debian/Ubuntu): sudo apt install {' '.join(packages)}"
        )
        return PlatformReport(platform, plugin, missing, problem)
    names = _DISPLAY_VARIABLES.get(platform, ())
    if names and not any(env.get(name) for name in names):
        problem = (
            f"There is no display to open windows on ({' and '.join(names)} not set) for Qt's {platform} "
            "platform. Start Callslip from the desktop session; to check a server without one, set "
            "QT_QPA_PLATFORM=offscreen."
        )
        return PlatformReport(platform, plugin, (), problem)
    return PlatformReport(platform, plugin, (), "")


def probe_platform(platform: str, timeout: float = 60.0) -> str:
    """Really load ``platform`` in a child process (a failed load aborts the process that tries it).

    Returns ``""`` when Qt started on it, else Qt's own last words. Only from a source install: a frozen build's
    executable is Callslip itself, not a Python interpreter (the library check above still ran there).
    """
    if getattr(sys, "frozen", False):
        return ""
    code = (
        "import sys\nfrom PySide6.QtGui import QGuiApplication\n"
        "app = QGuiApplication(sys.argv[:1])\nprint(app.platformName())\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM=platform)
    import subprocess  # only when a platform plug-in fails to load: not on every start

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if result.returncode == 0:
        return ""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    said = next((line for line in lines if "plugin" in line.lower()), lines[-1] if lines else "")
    return f"Qt could not start on the {platform} platform (exit {result.returncode}): {said}"
