"""The site's admin account: the login opsctl itself uses on every host."""
