"""Rolling deploys of the platform's components (`opsctl deploy`, `rollback`, `releases`)."""
