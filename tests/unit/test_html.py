"""report.html: the report's Markdown as one page that needs nothing else (charts embedded,
text escaped, nothing referenced outside the file)."""

from __future__ import annotations

import re
from pathlib import Path

from harness import html

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)

REPORT = """# Run r-1: FAIL

Scenario `retail-day` (seed 7), ended complete.

## Thresholds

| metric | condition | measured | verdict |
|---|---|---|---|
| lost | == 0 | 3 | FAIL |

- problem: <script>alert(1)</script> & more
- second item

## Charts

![throughput.png](throughput.png)
![lag.png](lag.png)
![escape](../../etc/passwd.png)
"""


def test_the_report_is_one_page_with_its_charts_inside(tmp_path: Path) -> None:
    (tmp_path / "throughput.png").write_bytes(PNG)
    page = html.write(REPORT, tmp_path, "r-1 <fail>").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>r-1 &lt;fail&gt;</title>" in page
    assert '<span class="fail">FAIL</span>' in page and "<code>retail-day</code>" in page
    assert page.count("<tr>") == 2 and "<td>== 0</td>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page and "<script" not in page
    assert page.count("<li>") == 2
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")
    assert "lag.png: not drawn" in page  # a chart that is missing is said, not referenced
    assert "escape: not drawn" in page  # nothing outside the result's folder is read
    assert not re.search(r"(href|src)=\"(?!data:)", page)
