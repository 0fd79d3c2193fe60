"""bench_api's list of OCR candidates (kept literal there, so its client process loads no torch)
names each reference candidate the workload trains."""

from benchmarks.bench_api import CANDIDATE, OCR_CANDIDATES
from workloads.ocr.candidates import CANDIDATES


def test_bench_api_offers_every_ocr_candidate() -> None:
    assert tuple(CANDIDATES) == OCR_CANDIDATES and CANDIDATE in OCR_CANDIDATES
