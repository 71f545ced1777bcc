"""Build the packet fonts: DejaVu Sans, Sans Bold and Sans Mono cut down to the scripts and
symbols a packet prints, without OpenType layout tables (GSUB, GPOS, kern) or hinting, and
renamed "slmgate Sans" / "slmgate Mono".

Why: WeasyPrint subsets every embedded font with fontTools on each render, and fontTools
decompiles a font's whole GSUB/GPOS to do it; with the system DejaVu that was a third of a
packet's render time. Shipping the fonts also makes the packet bytes independent of the fonts a
machine happens to have installed. Characters outside these ranges fall back to the system's
DejaVu (see packet.css). The DejaVu licence (Bitstream Vera terms, DejaVu changes in the public
domain) allows modified copies under a name without "Bitstream" or "Vera"; it is in LICENSE.

    .venv/bin/python templates/fonts/build_fonts.py [/usr/share/fonts/truetype/dejavu]
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

HERE = Path(__file__).resolve().parent
FONTS = {  # output -> (DejaVu file, family, style)
    "slmgate-sans.ttf": ("DejaVuSans.ttf", "slmgate Sans", "Regular"),
    "slmgate-sans-bold.ttf": ("DejaVuSans-Bold.ttf", "slmgate Sans", "Bold"),
    "slmgate-mono.ttf": ("DejaVuSansMono.ttf", "slmgate Mono", "Regular"),
}
UNICODES = [
    (0x0020, 0x007E), (0x00A0, 0x024F),  # Latin, Latin-1, Latin Extended-A and -B
    (0x0370, 0x03FF), (0x0400, 0x04FF),  # Greek, Cyrillic
    (0x2010, 0x205E), (0x20A0, 0x20C0),  # punctuation, currency
    (0x2100, 0x214F), (0x2190, 0x21FF), (0x2200, 0x22FF),  # letterlike, arrows, maths
    (0x2500, 0x25FF), (0x2713, 0x2718),  # box drawing, blocks, shapes; check and ballot marks
]


def build(source_dir: Path) -> None:
    for out, (source, family, style) in FONTS.items():
        options = subset.Options(hinting=False, layout_features=[], name_IDs=["*"],
                                 recalc_timestamp=False)
        options.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "FFTM"]
        font = TTFont(source_dir / source, recalcTimestamp=False)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=[c for lo, hi in UNICODES for c in range(lo, hi + 1)])
        subsetter.subset(font)
        names = font["name"]
        full = f"{family} {style}" if style != "Regular" else family
        for name_id, value in ((1, family), (2, style), (3, f"{full};slmgate"), (4, full),
                               (6, full.replace(" ", "-")), (16, family), (17, style)):
            names.setName(value, name_id, 3, 1, 0x409)
            names.setName(value, name_id, 1, 0, 0)
        font.save(HERE / out)
        print(f"{out}: {(HERE / out).stat().st_size} bytes from {source}")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/usr/share/fonts/truetype/dejavu"))
