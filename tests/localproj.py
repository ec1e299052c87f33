"""Hermetic local projects for tests: a PEP 517/660 build backend in a few
lines, shipped inside each project (``backend-path = ["."]``, no build
requirements), so uv builds them with no index and no network."""

import os

BACKEND = '''\
import base64, hashlib, os, zipfile

def _meta():
    name = version = None
    for line in open("pyproject.toml"):
        k, _, v = line.partition("=")
        if k.strip() == "name" and name is None:
            name = v.strip().strip('"')
        elif k.strip() == "version" and version is None:
            version = v.strip().strip('"')
    return name, version

def _wheel(directory, files):
    name, version = _meta()
    dist = f"{name}-{version}.dist-info"
    files = dict(files)
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n"
    files[f"{dist}/WHEEL"] = ("Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
                              "Tag: py3-none-any\\n")
    rec = []
    for p, c in files.items():
        d = base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=").decode()
        rec.append(f"{p},sha256={d},{len(c.encode())}")
    files[f"{dist}/RECORD"] = "\\n".join(rec + [f"{dist}/RECORD,,"]) + "\\n"
    fn = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, fn), "w") as z:
        for p, c in files.items():
            z.writestr(p, c)
    return fn

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, _ = _meta()
    return _wheel(wheel_directory, {f"{name}/{f}": open(os.path.join(name, f)).read()
                                    for f in sorted(os.listdir(name)) if f.endswith(".py")})

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    name, _ = _meta()
    return _wheel(wheel_directory, {f"_{name}_editable.pth": os.path.abspath(".") + "\\n"})
'''

PYPROJECT = '''\
[project]
name = "{name}"
version = "{version}"

[build-system]
requires = []
build-backend = "runx_test_backend"
backend-path = ["."]
'''


def make_project(path, name: str = "demo", version: str = "1.0", where: str = "?") -> str:
    """A project at PATH whose module ``NAME`` has ``WHERE = where``."""
    path = str(path)
    os.makedirs(os.path.join(path, name), exist_ok=True)
    with open(os.path.join(path, "runx_test_backend.py"), "w") as f:
        f.write(BACKEND)
    set_version(path, version, name)
    set_where(path, where, name)
    return path


def set_version(path, version: str, name: str = "demo") -> None:
    with open(os.path.join(str(path), "pyproject.toml"), "w") as f:
        f.write(PYPROJECT.format(name=name, version=version))


def set_where(path, where: str, name: str = "demo") -> None:
    with open(os.path.join(str(path), name, "__init__.py"), "w") as f:
        f.write(f"WHERE = {where!r}\n")


# What a run prints: the installed version and which code it imported.
SHOW = ("import importlib.metadata as m, demo; "
        "print(m.version('demo'), demo.WHERE)")
