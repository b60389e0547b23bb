"""The platform's components as artifacts: building the reference ones, verifying any."""
