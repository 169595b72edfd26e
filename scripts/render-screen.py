#!/usr/bin/env python3
"""Renders a captured terminal screen (plain text, e.g. `tmux capture-pane -p`) as a PNG.

Usage: scripts/render-screen.py SCREEN.txt OUT.png   (needs Pillow: pip install pillow)
Used for the progress-bar screenshot in the README (scripts/progress-screenshot.sh).
"""
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def main() -> None:
    raw = open(sys.argv[1], encoding="utf-8").read().rstrip("\n").split("\n")
    # The spinner's braille dots are not in the font: one frame of it as a plain star.
    text = ["".join("*" if 0x2800 <= ord(c) <= 0x28FF else c for c in line) for line in raw]
    font = ImageFont.truetype(FONT, 14)
    cell_h = 19
    width = max(font.getlength(line) for line in text)
    pad = 14
    img = Image.new("RGB", (int(width) + 2 * pad, len(text) * cell_h + 2 * pad), "#1e1e2e")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(text):
        # The bar's lines stand out from the log lines above them.
        colour = "#a6e3a1" if ("full copy [" in line or "keys parsed" in line) else "#cdd6f4"
        draw.text((pad, pad + i * cell_h), line, font=font, fill=colour)
    img.save(sys.argv[2])


if __name__ == "__main__":
    main()
