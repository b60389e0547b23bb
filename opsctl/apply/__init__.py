"""`opsctl apply`: converge a site with Ansible through ansible-runner, and its run history."""
