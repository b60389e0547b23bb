"""`opsctl patch`: rolling OS updates from the offline mirror (issue 14)."""
