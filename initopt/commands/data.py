"""``initopt data``: where a dataset comes from, its sizes, classes, checksum and pixel statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from initopt.config import Config


def run(cfg: Config, data_dir: Path | None, download: bool = False,
        on_download: Callable[[str], None] | None = None) -> dict:
    """The summary of the configured dataset; with ``download`` its files are fetched into the cache
    first (TFDS's download manager, sha256-checked; ``on_download(title)`` hears of it)."""
    from initopt import data as data_lib

    name = cfg.data.dataset
    if download and not data_lib.is_file_dataset(name):
        if on_download is not None:
            on_download(data_lib.DATASETS[name].title)
        data_lib.fetch(name)
    return data_lib.load(data_dir, download=False, dataset=name).summary()
