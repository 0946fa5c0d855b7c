"""Benchmark: the cost of making payloads storable, against plain ``json`` in the same run.

    .venv/bin/python benchmarks/bench_payloads.py

For three bodies (the documented Gen A example, a Gen B session, and a session of 200 steps
with long texts, about 1 MB), it times:

* ``parse_json_body`` (depth measured before decoding) against ``json.loads``;
* ``storable_json`` (a cleaned copy) against ``json.loads(json.dumps(value))``, the cheapest
  way to copy a JSON value;
* ``parse_session`` (clean copy plus field reading) against the same copy.

Pure Python, no database: the figures are microseconds per call (best of 5 runs).
"""

from __future__ import annotations

import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verilock_django.payloads import parse_session  # noqa: E402
from verilock_django.storable import parse_json_body, storable_json  # noqa: E402


def bodies() -> dict[str, bytes]:
    seed = json.loads((ROOT / "tests" / "fixtures" / "seed-session.json").read_text())
    gen_b = {
        "id": "ses_b",
        "status": "completed",
        "decision": "approved",
        "risk_score": 12.5,
        "applicant_name": "Ana María Pérez López",
        "documents": [
            {"side": side, "ocr_status": "completed", "ocr_confidence": 0.9, "extracted_data": {}}
            for side in ("front", "back")
        ],
        "selfie": {"face_match_score": 96.4, "liveness_score": 91.2, "liveness_passed": True},
        "aml_screening": {"status": "clear", "highest_score": 0.1, "matches": []},
    }
    large = {
        "id": "ses_large",
        "status": "review",
        "results": {
            f"step_{index}": {
                "status": "approved",
                "score": index / 200,
                "details": {"note": "é" * 2000, "items": [{"n": n} for n in range(50)]},
            }
            for index in range(200)
        },
    }
    return {
        name: json.dumps(value).encode()
        for name, value in (("Gen A seed", seed), ("Gen B", gen_b), ("200 steps", large))
    }


def best(function: Callable[[], Any], number: int) -> float:
    """Microseconds per call, best of 5 repeats."""
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def main() -> None:
    print(
        f"{'body':<12} {'size':>9} {'operation':<28} {'ours µs':>10} {'json µs':>10} {'ratio':>6}"
    )
    for name, body in bodies().items():
        value = json.loads(body)
        number = 20 if len(body) > 100_000 else 2000
        rows = [
            (
                "parse_json_body / loads",
                lambda body=body: parse_json_body(body, max_depth=64),
                lambda body=body: json.loads(body),
            ),
            (
                "storable_json / copy",
                lambda value=value: storable_json(value),
                lambda value=value: json.loads(json.dumps(value)),
            ),
            (
                "parse_session / copy",
                lambda value=value: parse_session(value),
                lambda value=value: json.loads(json.dumps(value)),
            ),
        ]
        for label, ours, baseline in rows:
            mine, theirs = best(ours, number), best(baseline, number)
            print(
                f"{name:<12} {len(body):>9,} {label:<28} {mine:>10.1f} {theirs:>10.1f}"
                f" {mine / theirs:>6.1f}"
            )


if __name__ == "__main__":
    main()
