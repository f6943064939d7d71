"""QR batch throughput through the HTTP endpoint: `.venv/bin/python tests/bench/qr_batch_bench.py`.

POST /api/v1/qr/batch with 200 new placements per format, in process (Starlette's TestClient) on
a fresh SQLite database: link creation, commit, rendering and the streamed ZIP, end to end. Then
the same batch again, which reuses the links (nothing created): the ZIP without link creation.
Compare with tests/bench/qr_bench.py, which renders alone.
"""

from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from dataclasses import replace
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from starlette.testclient import TestClient

from acquisition import apikeys, channels, qr
from acquisition.config import Settings
from acquisition.db import connect, migrate
from acquisition.web.app import create_app

COUNT = 200
CASES: list[tuple[str, dict[str, Any]]] = [
    ("SVG 50 mm", {"format": "svg"}),
    ("PNG flyer 50 mm @ 300 dpi (591 px)", {"format": "png"}),
    ("PNG billboard 1500 mm @ 72 dpi (4252 px)", {"format": "png", "size_mm": 1500, "dpi": 72}),
    ("PDF 50 mm", {"format": "pdf"}),
    ("PNG flyer + caption", {"format": "png", "caption": "Scan to subscribe in Telegram"}),
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            base_url="https://go.example.com",
            secret_key="bench-secret-key-0123456789",
            spool_dir=f"{tmp}/spool",
        )
        db = connect(settings)
        migrate(db.engine)
        with db.writer.begin() as s:
            channel_id = channels.create(
                s, channels.parse({"messenger": "telegram", "handle": "shop_bot"})
            ).id
            _key, token = apikeys.create(s, "bench")
        app = create_app(replace(settings), db)
        print(
            f"{'batch of ' + str(COUNT) + ' placements, POST /api/v1/qr/batch':<46} "
            f"{'new':>8} {'again':>8} {'MB':>6}"
        )
        print(f"{'':<46} {'codes/s':>8} {'codes/s':>8}")
        with TestClient(app, base_url=settings.base_url) as client:
            client.headers["authorization"] = f"Bearer {token}"
            for n, (name, options) in enumerate(CASES):
                body = {
                    "campaign": f"bench-{n}",
                    "channels": [channel_id],
                    "placements": [
                        {"name": f"Billboard {i}", "kind": "outdoor", "address": f"Street {i}"}
                        for i in range(COUNT)
                    ],
                    **options,
                }
                rates = []
                for _ in range(2):  # new links, then the same batch reusing them
                    qr.encode.cache_clear()  # every code is encoded afresh, as in real batches
                    start = time.perf_counter()
                    r = client.post("/api/v1/qr/batch", json=body)
                    elapsed = time.perf_counter() - start
                    assert r.status_code == 200, r.text
                    assert len(zipfile.ZipFile(BytesIO(r.content)).namelist()) == COUNT + 1
                    rates.append(COUNT / elapsed)
                size = len(r.content) / 1e6
                print(f"{name:<46} {rates[0]:>8.0f} {rates[1]:>8.0f} {size:>6.1f}")
        db.dispose()


if __name__ == "__main__":
    main()
