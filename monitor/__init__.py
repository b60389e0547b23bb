"""monitor: placeholder package; see ../shared/DESIGN.md for what it will own."""
