"""The offline apt mirror: what goes in it, building it, describing it."""
