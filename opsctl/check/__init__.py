"""`opsctl check`: run the security collector, evaluate the catalog, hand back results."""
