"""Run-folder helpers for the Fine-tune and Runs pages: archives for download buttons."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent))
    return buffer.getvalue()
