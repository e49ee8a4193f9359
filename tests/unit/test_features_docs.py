"""docs/features.md has one ``## <column>`` section per feature column (the dashboard reads them)."""

from __future__ import annotations

import re
from pathlib import Path

from microstream.features.schema import FEATURE_COLUMNS

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_every_feature_column_has_a_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    sections = re.findall(r"^## (\S+)\s*$", text, flags=re.MULTILINE)
    missing = [c for c in FEATURE_COLUMNS if c not in sections]
    assert not missing, f"docs/features.md lacks sections for {missing}"
    assert "bars_1m" in sections
    for col in FEATURE_COLUMNS:
        body = text.split(f"## {col}\n", 1)[1].split("\n## ", 1)[0].strip()
        assert len(body) > 40, col
